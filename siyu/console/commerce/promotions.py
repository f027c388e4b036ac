"""Console pages for 营销与定价: 满减 rules, limited-time discounts and flash sales (create / edit / end, with
sold and stock), and coupons (templates, issuing to a tag or a list, claimed / used / expired bars).

Admins and operators edit; analysts read; service staff get 403. Bad input is refused with a clear message
and nothing is written (the services validate everything first).
"""

from __future__ import annotations

import re
from datetime import datetime

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.commerce.catalog.models import Category, Product, Sku
from siyu.commerce.promotions import campaigns, selectors
from siyu.commerce.promotions.models import (
    CouponKind,
    CouponTemplate,
    FlashSale,
    FullReductionRule,
    LimitedTimeDiscount,
    Scope,
)
from siyu.commerce.promotions.services import coupon_issue
from siyu.console.access import MANAGER_ROLES, console_view, posted_object
from siyu.console.commerce.catalog import fen_to_yuan, yuan_to_fen
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.customers.models import CustomerTag, Tag

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})
_TIER = re.compile(r"满?\s*([0-9]+(?:\.[0-9]{1,2})?)\s*(?:-|减|/|:)\s*([0-9]+(?:\.[0-9]{1,2})?)")
MAX_ISSUE = 5000


# --- form parsing ------------------------------------------------------------------------------------------

def _when(raw: str | None, *, zh: str, en: str, required: bool = True) -> datetime | None:
    """A ``datetime-local`` value, read as Beijing time."""
    text = (raw or "").strip()
    if not text:
        if required:
            raise SiyuError("invalid_window", f"请填写{zh}", f"{en} is required")
        return None
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
    raise SiyuError("invalid_window", f"{zh}格式无效", f"{en} is not a valid time")


def _local(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") if moment else ""


def _whole(raw: str | None, *, zh: str, en: str, default: int | None = None) -> int:
    text = (raw or "").strip()
    if not text and default is not None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise SiyuError("invalid_number", f"{zh}必须是非负整数", f"{en} must be a whole number")
    return int(text)


def _ids(values) -> list[int]:
    return sorted({int(v) for v in values if str(v).strip().isdigit()})


def _tiers(raw: str) -> list[tuple[int, int]]:
    """"满100减10, 200-25" → [(10000, 1000), (20000, 2500)]."""
    parts = [p for p in re.split(r"[,，;；\n、]+", raw or "") if p.strip()]
    if not parts:
        raise SiyuError("invalid_tiers", "请填写满减档位，如「满100减10, 满200减25」",
                        "Enter tiers such as “100-10, 200-25”")
    tiers = []
    for part in parts:
        match = _TIER.fullmatch(part.strip())
        if not match:
            raise SiyuError("invalid_tiers", f"无法识别的档位「{part.strip()}」", f"Cannot read the tier “{part.strip()}”")
        tiers.append((yuan_to_fen(match.group(1), field_zh="门槛", field_en="Threshold"),
                      yuan_to_fen(match.group(2), field_zh="减免", field_en="Reduction")))
    return tiers


def _tiers_text(tiers) -> str:
    return ", ".join(f"满{threshold / 100:g}减{amount / 100:g}" for threshold, amount in tiers)


def _edit_target(request, model, key: str):
    raw = request.GET.get(key, "")
    return model.objects.filter(workspace=request.workspace, pk=raw).first() if raw.isdigit() else None


# --- promotions ------------------------------------------------------------------------------------------

@console_view(roles=VIEW_ROLES)
def commerce_promotions(request):
    workspace = request.workspace
    overview = selectors.promotions_overview(workspace=workspace)
    for rule in overview["rules"]:
        rule.tiers_text = _tiers_text(rule.tiers)
    for sale in overview["sales"]:
        sale.price_yuan = fen_to_yuan(sale.price_fen)
    for discount in overview["discounts"]:
        discount.price_yuan = fen_to_yuan(discount.price_fen)
    rule = _edit_target(request, FullReductionRule, "rule")
    discount = _edit_target(request, LimitedTimeDiscount, "discount")
    sale = _edit_target(request, FlashSale, "sale")
    return page(request, "console/commerce/promotions/promotions.html", {
        **overview,
        "can_manage": request.membership.role in MANAGER_ROLES,
        "categories": Category.objects.filter(workspace=workspace)[:300],
        "products": Product.objects.filter(workspace=workspace).order_by("sort", "-id")[:300],
        "skus": Sku.objects.filter(workspace=workspace, active=True).select_related("product")
                   .order_by("product__sort", "product_id", "sort")[:500],
        "scopes": Scope.choices,
        "edit_rule": rule, "edit_rule_tiers": _tiers_text(rule.tiers) if rule else "",
        "edit_discount": discount, "edit_discount_price": fen_to_yuan(discount.price_fen) if discount else "",
        "edit_sale": sale, "edit_sale_price": fen_to_yuan(sale.price_fen) if sale else "",
        "edit_window": {name: (_local(row.starts_at), _local(row.ends_at)) for name, row in
                        (("rule", rule), ("discount", discount), ("sale", sale)) if row},
    }, active="promotions")


def _optional_id(raw: str | None) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise SiyuError("not_found", "活动不存在", "Promotion not found", status=404)
    return int(text)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_promotion_save(request):
    post, workspace = request.POST, request.workspace
    kind = post.get("kind", "")
    starts_at = _when(post.get("starts_at"), zh="开始时间", en="Start time")
    ends_at = _when(post.get("ends_at"), zh="结束时间", en="End time")
    if kind == "full_reduction":
        scope = post.get("scope", Scope.ALL)
        ids = _ids(post.getlist("category_ids" if scope == Scope.CATEGORIES else "product_ids"))
        rule = campaigns.full_reduction_save(
            workspace=workspace, actor=request.user, rule_id=_optional_id(post.get("id")), name=post.get("name"),
            tiers=_tiers(post.get("tiers", "")), scope=scope, scope_ids=ids, starts_at=starts_at, ends_at=ends_at)
        messages.success(request, _("已保存满减活动：%(name)s") % {"name": rule.name})
    elif kind == "limited_discount":
        price = yuan_to_fen(post.get("price", ""), field_zh="活动价", field_en="Sale price", required=False)
        percent = _whole(post.get("percent_off"), zh="减免百分比", en="Percent off", default=0)
        discount = campaigns.limited_discount_save(
            workspace=workspace, actor=request.user, discount_id=_optional_id(post.get("id")), name=post.get("name"),
            product_ids=_ids(post.getlist("product_ids")), sku_ids=_ids(post.getlist("sku_ids")),
            percent_off=percent, price_fen=price, starts_at=starts_at, ends_at=ends_at)
        messages.success(request, _("已保存限时折扣：%(name)s") % {"name": discount.name})
    elif kind == "flash_sale":
        sku_ids = _ids([post.get("sku_id", "")])
        sale = campaigns.flash_sale_save(
            workspace=workspace, actor=request.user, sale_id=_optional_id(post.get("id")),
            sku_id=sku_ids[0] if sku_ids else None, name=post.get("name"),
            price_fen=yuan_to_fen(post.get("price", ""), field_zh="秒杀价", field_en="Flash price"),
            stock_total=_whole(post.get("stock_total"), zh="秒杀库存", en="Flash stock"),
            per_customer_limit=_whole(post.get("per_customer_limit"), zh="每人限购", en="Per-customer limit",
                                      default=1),
            starts_at=starts_at, ends_at=ends_at)
        messages.success(request, _("已保存秒杀活动：%(name)s") % {"name": sale.name})
    else:
        raise SiyuError("invalid_kind", "未知的活动类型", "Unknown promotion kind")
    return redirect("console:commerce_promotions")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_promotion_end(request):
    kind = request.POST.get("kind", "")
    if kind not in campaigns.PROMOTION_MODELS:
        raise SiyuError("invalid_kind", "未知的活动类型", "Unknown promotion kind")
    row = posted_object(request, campaigns.PROMOTION_MODELS[kind], "id", "活动", "Promotion")
    if campaigns.promotion_end(workspace=request.workspace, actor=request.user, kind=kind, promotion_id=row.pk):
        messages.success(request, _("已结束：%(name)s") % {"name": row.name})
    return redirect("console:commerce_coupons" if kind == "coupon_template" else "console:commerce_promotions")


# --- coupons ---------------------------------------------------------------------------------------------

@console_view(roles=VIEW_ROLES)
def commerce_coupons(request):
    workspace = request.workspace
    templates = selectors.coupon_template_stats(workspace=workspace)
    for template in templates:
        template.amount_yuan = fen_to_yuan(template.amount_fen)
        template.threshold_yuan = fen_to_yuan(template.threshold_fen)
        template.cap_yuan = fen_to_yuan(template.cap_fen)
    edit = _edit_target(request, CouponTemplate, "edit")
    return page(request, "console/commerce/promotions/coupons.html", {
        "templates": templates,
        "can_manage": request.membership.role in MANAGER_ROLES,
        "kinds": CouponKind.choices, "scopes": Scope.choices,
        "categories": Category.objects.filter(workspace=workspace)[:300],
        "products": Product.objects.filter(workspace=workspace).order_by("sort", "-id")[:300],
        "tags": Tag.objects.filter(workspace=workspace).order_by("name")[:300],
        "edit": edit,
        "edit_values": {
            "amount": fen_to_yuan(edit.amount_fen), "threshold": fen_to_yuan(edit.threshold_fen),
            "cap": fen_to_yuan(edit.cap_fen), "valid_from": _local(edit.valid_from),
            "valid_until": _local(edit.valid_until),
        } if edit else {},
    }, active="coupons")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_coupon_save(request):
    post = request.POST
    kind = post.get("coupon_kind", "")
    scope = post.get("scope", Scope.ALL)
    template = campaigns.coupon_template_save(
        workspace=request.workspace, actor=request.user, template_id=_optional_id(post.get("id")),
        name=post.get("name"), kind=kind,
        threshold_fen=yuan_to_fen(post.get("threshold", ""), field_zh="使用门槛", field_en="Threshold",
                                  required=False) or 0,
        amount_fen=yuan_to_fen(post.get("amount", ""), field_zh="面额", field_en="Amount", required=False) or 0,
        percent_off=_whole(post.get("percent_off"), zh="减免百分比", en="Percent off", default=0),
        cap_fen=yuan_to_fen(post.get("cap", ""), field_zh="最高优惠", field_en="Cap", required=False) or 0,
        scope=scope, scope_ids=_ids(post.getlist("category_ids" if scope == Scope.CATEGORIES else "product_ids")),
        valid_days=_whole(post.get("valid_days"), zh="领取后有效天数", en="Days valid", default=0),
        valid_from=_when(post.get("valid_from"), zh="有效期开始", en="Valid from", required=False),
        valid_until=_when(post.get("valid_until"), zh="有效期结束", en="Valid until", required=False),
        total_quantity=_whole(post.get("total_quantity"), zh="发放总量", en="Total quantity", default=0),
        per_customer_limit=_whole(post.get("per_customer_limit"), zh="每人限领", en="Per-customer limit", default=1),
        newcomer_only=post.get("newcomer_only") == "on", stackable=post.get("stackable") == "on",
    )
    messages.success(request, _("已保存优惠券：%(name)s") % {"name": template.name})
    return redirect("console:commerce_coupons")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_coupon_issue(request):
    """Send one coupon to every customer with a tag, or to a list of customer ids."""
    template = posted_object(request, CouponTemplate, "template_id", "优惠券", "Coupon")
    tag_raw = request.POST.get("tag_id", "").strip()
    if tag_raw:
        tag = posted_object(request, Tag, "tag_id", "标签", "Tag")
        customer_ids = list(CustomerTag.objects.filter(workspace=request.workspace, tag=tag)
                            .values_list("customer_id", flat=True)[:MAX_ISSUE + 1])
    else:
        raw = request.POST.get("customer_ids", "")
        tokens = [t for t in re.split(r"[\s,，;；]+", raw) if t]
        if any(not t.isdigit() for t in tokens):
            raise SiyuError("invalid_input", "客户编号只能是数字，用逗号或换行分隔",
                            "Customer ids are numbers separated by commas or new lines")
        customer_ids = [int(t) for t in tokens]
    if not customer_ids:
        raise SiyuError("invalid_input", "请选择标签或填写客户编号", "Choose a tag or enter customer ids")
    if len(customer_ids) > MAX_ISSUE:
        raise SiyuError("too_many", f"一次最多发放给 {MAX_ISSUE} 位客户", f"At most {MAX_ISSUE} customers at once")
    report = coupon_issue(workspace=request.workspace, template_id=template.pk, customer_ids=customer_ids)
    skipped = sum(report["skipped"].values())
    messages.success(request, _("已发放 %(issued)s 张「%(name)s」，跳过 %(skipped)s 位（已达限领、已领完、非新客或不存在）")
                     % {"issued": report["issued"], "name": template.name, "skipped": skipped})
    return redirect("console:commerce_coupons")


urlpatterns = [
    path("promotions/", commerce_promotions, name="commerce_promotions"),
    path("promotions/save/", commerce_promotion_save, name="commerce_promotion_save"),
    path("promotions/end/", commerce_promotion_end, name="commerce_promotion_end"),
    path("coupons/", commerce_coupons, name="commerce_coupons"),
    path("coupons/save/", commerce_coupon_save, name="commerce_coupon_save"),
    path("coupons/issue/", commerce_coupon_issue, name="commerce_coupon_issue"),
]
