"""Console pages for 订单与售后: the order list and detail (ship, cancel, refund, remark), after-sales requests
and complaints. Operators and admins act; service staff see their own customers' orders; analysts read with
the address masked. Views parse and authorise only: every change goes through the order services."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.commerce.orders import domain, selectors, services
from siyu.commerce.orders.aftersales import COMPLAINT_CATEGORIES
from siyu.commerce.orders.models import (
    AfterSaleKind,
    AfterSaleStatus,
    ComplaintStatus,
    FulfilmentStatus,
    OrderStatus,
    PaymentStatus,
)
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError

PAGE_SIZE = 30
MAX_YUAN = Decimal("10000000")


def _page_number(request) -> int:
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 100_000 else 1


def _choice(value: str, choices) -> str:
    return value if value in {key for key, _label in choices} else ""


def _filter_from(request) -> selectors.OrderFilter:
    customer = request.GET.get("customer", "").strip()
    return selectors.OrderFilter(
        order_status=_choice(request.GET.get("status", ""), OrderStatus.choices),
        payment_status=_choice(request.GET.get("payment", ""), PaymentStatus.choices),
        fulfilment_status=_choice(request.GET.get("fulfilment", ""), FulfilmentStatus.choices),
        date_from=selectors.parse_day(request.GET.get("from", "")),
        date_to=selectors.parse_day(request.GET.get("to", "")),
        customer_id=int(customer) if customer.isdigit() and len(customer) < 12 else None,
        number=request.GET.get("number", "").strip()[:32],
    )


@console_view()
def order_list(request):
    search = _filter_from(request)
    queryset = selectors.orders_list(workspace=request.workspace, membership=request.membership, search=search)
    page_obj = Paginator(queryset, PAGE_SIZE).get_page(_page_number(request))
    query = request.GET.copy()
    query.pop("page", None)
    return page(request, "console/commerce/orders/list.html", {
        "page_obj": page_obj, "search": search, "query_string": query.urlencode(),
        "counts": selectors.open_counts(workspace=request.workspace, membership=request.membership),
        "order_statuses": OrderStatus.choices, "payment_statuses": PaymentStatus.choices,
        "fulfilment_statuses": FulfilmentStatus.choices,
        "customer_text": request.GET.get("customer", ""), "date_from": request.GET.get("from", ""),
        "date_to": request.GET.get("to", ""),
    }, active="orders")


def _staff_order(request, order_id: int):
    return selectors.order_for_staff(workspace=request.workspace, membership=request.membership, order_id=order_id)


@console_view()
def order_detail(request, order_id: int):
    order = _staff_order(request, order_id)
    context = selectors.order_detail(order=order, membership=request.membership)
    can_act = request.membership.role in MANAGER_ROLES
    context.update({
        "can_act": can_act,
        "can_ship": can_act and order.order_status == domain.CONFIRMED and order.fulfilment_status == domain.UNFULFILLED
        and order.payment_status in {domain.PAID, domain.PARTIALLY_REFUNDED},
        "can_cancel": can_act and (order.order_status == domain.PENDING_PAYMENT or (
            order.order_status == domain.CONFIRMED and order.fulfilment_status == domain.UNFULFILLED
            and context["refundable_fen"] > 0)),
        "can_refund": can_act and order.payment_status in {domain.PAID, domain.PARTIALLY_REFUNDED}
        and context["refundable_fen"] > 0,
        "can_deliver": can_act and order.fulfilment_status == domain.SHIPPED,
        "refundable_yuan": domain.yuan(context["refundable_fen"]),
    })
    return page(request, "console/commerce/orders/detail.html", context, active="orders")


def _fen(text: str, *, field: str) -> int:
    """"12.30" yuan → 1230 fen; a clear 400 for anything else."""
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0 or value > MAX_YUAN or value != value.quantize(Decimal("0.01")):
        raise SiyuError("amount_invalid", "金额须大于 0 且最多两位小数（元）", "The amount must be positive with at most "
                        "two decimals (yuan)", details={"field": field})
    return int(value * 100)


def _back(order_id: int):
    return redirect("console:commerce_order_detail", order_id=order_id)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def order_ship(request, order_id: int):
    order = _staff_order(request, order_id)
    services.order_ship(order=order, carrier=request.POST.get("carrier", ""),
                        tracking_number=request.POST.get("tracking_number", ""), actor=request.user)
    messages.success(request, _("已发货"))
    return _back(order.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def order_deliver(request, order_id: int):
    order = _staff_order(request, order_id)
    services.order_deliver(order=order, actor=request.user)
    messages.success(request, _("已标记为签收"))
    return _back(order.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def order_cancel(request, order_id: int):
    order = _staff_order(request, order_id)
    order = services.order_cancel(order=order, by="operator", actor=request.user, reason=request.POST.get("reason", ""))
    if order.order_status == "cancelled":
        messages.success(request, _("订单已取消，库存、优惠券和积分已退回"))
    else:
        messages.success(request, _("已全额退款，退款成功后订单自动取消"))
    return _back(order.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def order_refund(request, order_id: int):
    order = _staff_order(request, order_id)
    quantities = {}
    for line in order.lines.all():
        raw = request.POST.get(f"qty_{line.pk}", "").strip()
        if raw in {"", "0"}:
            continue
        if not raw.isdigit() or len(raw) > 6:
            raise SiyuError("order_invalid", "退款数量必须是非负整数", "Refund quantities must be whole numbers",
                            details={"field": f"qty_{line.pk}"})
        quantities[line.pk] = int(raw)
    amount_text = request.POST.get("amount_yuan", "").strip()
    amount = _fen(amount_text, field="amount_yuan") if amount_text else None
    if amount is None and not quantities:
        raise SiyuError("order_invalid", "请填写退款金额或选择退款商品", "Give an amount or choose items to refund")
    refund = services.order_refund(order=order, amount_fen=amount, lines=quantities or None,
                                   reason=request.POST.get("reason", ""), actor=request.user,
                                   restock=request.POST.get("restock") == "1" if "restock_choice" in request.POST
                                   else None)
    if refund.status == "failed":
        messages.error(request, _("微信支付拒绝了退款：%(reason)s") % {"reason": refund.failure})
    else:
        messages.success(request, _("已提交退款 %(amount)s 元（%(no)s）") % {"amount": domain.yuan(refund.amount_fen),
                                                                       "no": refund.out_refund_no})
    return _back(order.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def order_remark(request, order_id: int):
    order = _staff_order(request, order_id)
    services.order_remark(order=order, text=request.POST.get("remark", ""), actor=request.user)
    messages.success(request, _("备注已保存"))
    return _back(order.pk)


# --- after-sales and complaints ---------------------------------------------------------------------------
@console_view()
def aftersales(request):
    status = request.GET.get("status", "open")
    status = status if status in {"open", ""} | set(AfterSaleStatus.values) else "open"
    complaint_status = _choice(request.GET.get("complaints", "open"), ComplaintStatus.choices)
    return page(request, "console/commerce/orders/aftersales.html", {
        "requests": selectors.aftersales_list(workspace=request.workspace, membership=request.membership,
                                              status=status)[:200],
        "complaints": selectors.complaints_list(workspace=request.workspace, membership=request.membership,
                                                status=complaint_status)[:200],
        "status": status, "statuses": AfterSaleStatus.choices, "kinds": AfterSaleKind.choices,
        "complaint_status": complaint_status, "complaint_statuses": ComplaintStatus.choices,
        "categories": COMPLAINT_CATEGORIES,
        "can_act": request.membership.role in MANAGER_ROLES,
    }, active="aftersales")


AFTERSALE_ACTIONS = {"approve", "reject", "receive", "refund", "close"}


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def aftersale_action(request, aftersale_id: int):
    aftersale = selectors.aftersale_for_staff(workspace=request.workspace, membership=request.membership,
                                              aftersale_id=aftersale_id)
    action = request.POST.get("action", "")
    note_text = request.POST.get("note", "")
    if action not in AFTERSALE_ACTIONS:
        raise SiyuError("order_invalid", "未知的售后操作", "Unknown after-sales action", details={"field": "action"})
    if action == "approve":
        services.aftersale_approve(aftersale=aftersale, actor=request.user, note_text=note_text)
    elif action == "reject":
        services.aftersale_reject(aftersale=aftersale, actor=request.user, note_text=note_text)
    elif action == "receive":
        services.aftersale_receive_return(aftersale=aftersale, actor=request.user)
    elif action == "refund":
        services.aftersale_refund(aftersale=aftersale, actor=request.user)
    else:
        services.aftersale_close(aftersale=aftersale, actor=request.user, carrier=request.POST.get("carrier", ""),
                                 tracking_number=request.POST.get("tracking_number", ""), note_text=note_text)
    messages.success(request, _("售后单 #%(id)s 已更新") % {"id": aftersale.pk})
    return redirect("console:commerce_aftersales")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def complaint_resolve(request, complaint_id: int):
    complaint = selectors.complaint_for_staff(workspace=request.workspace, membership=request.membership,
                                              complaint_id=complaint_id)
    services.complaint_resolve(complaint=complaint, actor=request.user, resolution=request.POST.get("resolution", ""))
    messages.success(request, _("投诉 #%(id)s 已处理") % {"id": complaint.pk})
    return redirect("console:commerce_aftersales")


urlpatterns = [
    path("orders/", order_list, name="commerce_orders"),
    path("orders/<int:order_id>/", order_detail, name="commerce_order_detail"),
    path("orders/<int:order_id>/ship", order_ship, name="commerce_order_ship"),
    path("orders/<int:order_id>/deliver", order_deliver, name="commerce_order_deliver"),
    path("orders/<int:order_id>/cancel", order_cancel, name="commerce_order_cancel"),
    path("orders/<int:order_id>/refund", order_refund, name="commerce_order_refund"),
    path("orders/<int:order_id>/remark", order_remark, name="commerce_order_remark"),
    path("aftersales/", aftersales, name="commerce_aftersales"),
    path("aftersales/<int:aftersale_id>/action", aftersale_action, name="commerce_aftersale_action"),
    path("complaints/<int:complaint_id>/resolve", complaint_resolve, name="commerce_complaint_resolve"),
]
