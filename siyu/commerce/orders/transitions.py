"""The only code that moves an order's statuses: under the order's row lock, checked against the
transition table (``domain.TRANSITIONS``), with one OrderHistory row per move. Refused moves are 409s."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from siyu.commerce.orders import domain
from siyu.commerce.orders.models import AfterSale, Order, OrderHistory
from siyu.core.errors import SiyuError

STATUS_LABELS_ZH = {
    domain.PENDING_PAYMENT: "待付款", domain.CONFIRMED: "已确认", domain.COMPLETED: "已完成", domain.CANCELLED: "已取消",
    domain.UNPAID: "未支付", domain.PAID: "已支付", domain.PARTIALLY_REFUNDED: "部分退款", domain.REFUNDED: "已退款",
    domain.UNFULFILLED: "待发货", domain.SHIPPED: "已发货", domain.DELIVERED: "已签收", domain.RETURNED: "已退货",
    domain.AS_REQUESTED: "待审核", domain.AS_APPROVED: "已同意", domain.AS_REJECTED: "已拒绝",
    domain.AS_RETURNED: "已收到退货", domain.AS_REFUNDED: "已退款", domain.AS_CLOSED: "已关闭",
}


def order_locked(order_id: int) -> Order:
    """The order row, locked until the surrounding transaction ends (call inside ``transaction.atomic``)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("order_locked needs a transaction")
    return Order.objects.select_for_update().get(pk=order_id)


def refused(field: str, current: str, target: str) -> SiyuError:
    return SiyuError("order_transition_refused",
                     f"订单当前状态为「{STATUS_LABELS_ZH.get(current, current)}」，不能变为「{STATUS_LABELS_ZH.get(target, target)}」",
                     f"The order's {field.replace('_', ' ')} is {current}; it cannot become {target}",
                     status=409, details={"field": field, "from": current, "to": target})


def actor_fields(actor: Any) -> dict[str, Any]:
    """A staff user (recorded as such) or a label: customer | system | wechat_pay."""
    if actor is not None and getattr(actor, "is_authenticated", False):
        return {"actor": actor, "actor_label": ""}
    return {"actor": None, "actor_label": str(actor or "system")[:32]}


def _step(order: Order, field: str, target: str, *, actor: Any, reason: str) -> OrderHistory:
    """Check and apply one status move of a LOCKED order; return its (unsaved) history row."""
    current = getattr(order, field)
    try:
        domain.transition_check(field, current, target)
    except domain.TransitionRefused:
        raise refused(field, current, target) from None
    setattr(order, field, target)
    return OrderHistory(order=order, field=field, from_value=current, to_value=target,
                        reason=(reason or "")[:200], **actor_fields(actor))


def move(order: Order, field: str, target: str, *, actor: Any = None, reason: str = "") -> None:
    """Move one status field of a LOCKED order and record it. The caller saves the order."""
    _step(order, field, target, actor=actor, reason=reason).save(force_insert=True)


def moves(order: Order, steps: list[tuple[str, str, str]], *, actor: Any = None) -> None:
    """Several ``move``s of a LOCKED order at once — (field, target, reason) each, checked in order — with
    their history rows written in one INSERT. The caller saves the order."""
    OrderHistory.objects.bulk_create([_step(order, field, target, actor=actor, reason=reason)
                                      for field, target, reason in steps])


def note(order: Order, reason: str, *, actor: Any = None) -> None:
    """A history row that is not a status move (remark, shipping details changed, automatic refund …)."""
    OrderHistory.objects.create(order=order, field="note", reason=(reason or "")[:200], **actor_fields(actor))


def aftersale_move(aftersale: AfterSale, target: str, *, actor: Any = None, reason: str = "") -> None:
    """Move a LOCKED after-sales request; its history goes on the order's history."""
    current = aftersale.status
    try:
        domain.aftersale_transition_check(current, target)
    except domain.TransitionRefused:
        raise SiyuError("aftersale_transition_refused",
                        f"售后单当前为「{STATUS_LABELS_ZH.get(current, current)}」，不能变为「{STATUS_LABELS_ZH.get(target, target)}」",
                        f"The after-sales request is {current}; it cannot become {target}", status=409,
                        details={"from": current, "to": target}) from None
    aftersale.status = target
    OrderHistory.objects.create(order_id=aftersale.order_id, field="note", from_value=current, to_value=target,
                                reason=f"售后#{aftersale.pk} {(reason or '')}"[:200], **actor_fields(actor))
