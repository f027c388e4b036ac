"""Console page for 积分与会员: tier configuration, customers per tier, points per month, a customer's ledger,
and admins' manual adjustments (with a reason, audited).

Roles: admins adjust points; admins and operators configure tiers; analysts read; service staff get 403.
Bad input is refused with a clear message and nothing is written.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.customers.models import Customer
from siyu.loyalty import points as loyalty_points
from siyu.loyalty import selectors
from siyu.loyalty.tier_rules import TIER_CODES
from siyu.loyalty.tiers import tier_basis, tier_config_update, tier_levels, tier_of

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})
ADJUST_ROLES = frozenset({"admin"})


def _yuan_to_fen(raw: str | None, *, label_zh: str, label_en: str) -> int:
    text = (raw or "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation as error:
        raise SiyuError("tier_value_invalid", f"{label_zh}必须是金额（元）", f"{label_en} must be an amount in yuan"
                        ) from error
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")) or value > 10**10:
        raise SiyuError("tier_value_invalid", f"{label_zh}必须是非负金额，最多两位小数",
                        f"{label_en} must be a non-negative amount with at most two decimals")
    return int(value * 100)


def _whole(raw: str | None, *, label_zh: str, label_en: str) -> int:
    text = (raw or "").strip()
    if not text.isdigit() or len(text) > 12:
        raise SiyuError("tier_value_invalid", f"{label_zh}必须是非负整数", f"{label_en} must be a whole number ≥ 0")
    return int(text)


def _lookup_customer(request, raw: str) -> tuple[Customer | None, str]:
    text = (raw or "").strip()
    if not text:
        return None, ""
    if not text.isdigit() or len(text) > 18:
        return None, _("客户编号必须是数字")
    customer = Customer.objects.filter(workspace=request.workspace, pk=int(text)).first()
    if customer is None:
        return None, _("客户不存在")
    return customer, ""


@console_view(roles=VIEW_ROLES)
def loyalty_members(request):
    workspace = request.workspace
    english = not (get_language() or "zh").startswith("zh")
    tiers = tier_levels(workspace=workspace)
    basis, window = tier_basis(workspace=workspace)
    distribution = selectors.tier_distribution(workspace=workspace)
    monthly = selectors.points_monthly(workspace=workspace)
    tier_rows = [{"tier": tier, "name": tier.name_en if english else tier.name_zh, "count": distribution[tier.code],
                  "spend_yuan": f"{tier.spend_threshold_fen / 100:.2f}"} for tier in tiers]
    charts = {
        "tier_distribution": {"x": [row["name"] for row in tier_rows] if any(distribution.values()) else [],
                              "series": [{"name": _("客户数"), "y": [row["count"] for row in tier_rows]}]},
        "points_monthly": {"x": monthly["months"] if any(monthly["issued"] + monthly["redeemed"]
                                                         + monthly["expired"]) else [],
                           "series": [{"name": _("发放"), "y": monthly["issued"]},
                                      {"name": _("使用"), "y": monthly["redeemed"]},
                                      {"name": _("过期"), "y": monthly["expired"]}]},
    }
    customer, lookup_error = _lookup_customer(request, request.GET.get("customer", ""))
    ledger = None
    if customer is not None:
        ledger = selectors.customer_ledger(workspace=workspace, customer=customer)
        ledger["tier"] = tier_of(customer=customer)
        ledger["spendable"] = loyalty_points.points_balance(customer=customer)
        ledger["tier_name"] = ledger["tier"].name_en if english else ledger["tier"].name_zh
    role = request.membership.role
    return page(request, "console/commerce/loyalty/members.html", {
        "tier_rows": tier_rows,
        "monthly_rows": list(zip(monthly["months"], monthly["issued"], monthly["redeemed"], monthly["expired"],
                                 strict=True)), "basis": basis, "window": window, "charts": charts, "monthly": monthly,
        "totals": selectors.points_totals(workspace=workspace), "customer": customer, "ledger": ledger,
        "lookup": request.GET.get("customer", "").strip(), "lookup_error": lookup_error,
        "can_configure": role in MANAGER_ROLES, "can_adjust": role in ADJUST_ROLES,
    }, active="points")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def loyalty_tiers_save(request):
    levels = {}
    for code in TIER_CODES:
        fields = {
            "discount_percent": _whole(request.POST.get(f"{code}_discount_percent"), label_zh="折扣",
                                       label_en="Discount"),
            "free_shipping": request.POST.get(f"{code}_free_shipping") == "on",
            "priority_service": request.POST.get(f"{code}_priority_service") == "on",
            "exclusive_items": request.POST.get(f"{code}_exclusive_items") == "on",
        }
        if code != "normal":
            fields["growth_threshold"] = _whole(request.POST.get(f"{code}_growth_threshold"), label_zh="成长值门槛",
                                                label_en="Growth threshold")
            fields["spend_threshold_fen"] = _yuan_to_fen(request.POST.get(f"{code}_spend_threshold"),
                                                         label_zh="消费金额门槛", label_en="Spend threshold")
        levels[code] = fields
    window = _whole(request.POST.get("window_days"), label_zh="统计周期", label_en="Window")
    tier_config_update(workspace=request.workspace, levels=levels, basis=request.POST.get("basis", ""),
                       window_days=window, actor=request.user)
    messages.success(request, _("已保存会员等级设置；下一次评估（支付后或每日凌晨）按新规则升降级"))
    return redirect("console:loyalty_members")


@require_POST
@console_view(edit=True, roles=ADJUST_ROLES)
def loyalty_points_adjust(request):
    raw_id = request.POST.get("customer_id", "").strip()
    customer = (Customer.objects.filter(workspace=request.workspace, pk=int(raw_id)).first()
                if raw_id.isdigit() and len(raw_id) <= 18 else None)
    if customer is None:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    raw_amount = request.POST.get("amount", "").strip()
    sign, digits = (-1, raw_amount[1:]) if raw_amount.startswith("-") else (1, raw_amount.lstrip("+"))
    if not digits.isdigit() or len(digits) > 12:
        raise SiyuError("points_amount_invalid", "调整的积分必须是整数（负数为扣减）",
                        "The adjustment must be a whole number (negative to deduct)")
    loyalty_points.points_adjust(workspace=request.workspace, customer=customer, amount=sign * int(digits),
                                 reason_text=request.POST.get("reason", ""), actor=request.user)
    messages.success(request, _("已调整客户 %(id)s 的积分：%(amount)s") % {"id": customer.pk,
                                                                     "amount": f"{sign * int(digits):+d}"})
    return redirect(reverse("console:loyalty_members") + f"?customer={customer.pk}#ledger")


urlpatterns = [
    path("loyalty/", loyalty_members, name="loyalty_members"),
    path("loyalty/tiers/", loyalty_tiers_save, name="loyalty_tiers_save"),
    path("loyalty/adjust/", loyalty_points_adjust, name="loyalty_points_adjust"),
]
