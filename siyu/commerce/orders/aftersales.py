"""Refunds, after-sales requests (仅退款 / 退货退款 / 换货) and complaints.

A refund is reserved on the order first (under its row lock: counted against paid − refunded − refunds in
flight, and against each line's payable amount), committed, then sent to WeChat Pay outside the lock. Its
effects on the order — payment status, stock back, points back, a full refund before shipping cancelling the
order — happen when WeChat Pay confirms it (the provider's ``refund_succeeded`` event), exactly once.
The rules of what comes back are in :mod:`siyu.commerce.orders.domain`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from siyu.commerce.catalog import inventory
from siyu.commerce.catalog.models import Sku
from siyu.commerce.orders import domain, events
from siyu.commerce.orders.models import (
    AfterSale,
    AfterSaleLine,
    Complaint,
    ComplaintStatus,
    Order,
    OrderLine,
    OrderRefund,
    RefundStatus,
)
from siyu.commerce.orders.transitions import aftersale_move, move, note, order_locked
from siyu.commerce.promotions import services as promotions
from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.loyalty import points as loyalty_points

logger = logging.getLogger(__name__)
HOLDING = (RefundStatus.REQUESTED, RefundStatus.SUCCEEDED)
SHIPPING_KEY = "shipping"


def _invalid(field: str, zh: str, en: str) -> SiyuError:
    return SiyuError("order_invalid", zh, en, status=400, details={"field": field})


def _services():
    from siyu.commerce.orders import services  # the provider and customer-event helpers live there

    return services


def refundable_fen(order: Order) -> int:
    held = order.refunds.filter(status__in=HOLDING).aggregate(total=Sum("amount_fen"))["total"] or 0
    return max(order.paid_fen - held, 0)


def _shipping_room(order: Order) -> int:
    held = sum(int((refund.lines or {}).get(SHIPPING_KEY, 0))
               for refund in order.refunds.filter(status__in=HOLDING).only("lines"))
    return max(order.shipping_fen - held, 0)


def _parse_quantities(order: Order, lines: Any) -> dict[int, int]:
    """{line_id: quantity} from a dict or (line_id, qty) pairs, every line of this order, within what remains."""
    pairs = lines.items() if isinstance(lines, dict) else lines
    if not isinstance(pairs, (list, tuple)) and not isinstance(lines, dict):
        raise _invalid("lines", "退款商品格式错误", "Lines must be (line_id, quantity) pairs")
    wanted: dict[int, int] = {}
    for pair in pairs:
        try:
            line_id, quantity = pair
            line_id, quantity = int(line_id), quantity
        except (TypeError, ValueError):
            raise _invalid("lines", "退款商品格式错误", "Lines must be (line_id, quantity) pairs") from None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise _invalid("quantity", "数量必须是正整数", "Quantities must be positive integers")
        wanted[line_id] = wanted.get(line_id, 0) + quantity
    if not wanted:
        raise _invalid("lines", "请选择商品", "Choose at least one item")
    known = {line.pk: line for line in order.lines.all()}
    for line_id, quantity in wanted.items():
        line = known.get(line_id)
        if line is None:
            raise SiyuError("not_found", "订单中没有该商品", "That item is not part of this order", status=404,
                            details={"line_id": line_id})
        if quantity > line.quantity - line.refunded_quantity:
            raise SiyuError("refund_quantity_exceeded", f"「{line.title}」最多还能退 {line.quantity - line.refunded_quantity} 件",
                            f"At most {line.quantity - line.refunded_quantity} of {line.title} may still be refunded",
                            status=409, details={"line_id": line_id})
    return wanted


def _money_for_quantities(order: Order, wanted: dict[int, int]) -> dict[int, int]:
    lines = {line.pk: line for line in order.lines.filter(pk__in=list(wanted))}
    money = {}
    for line_id, quantity in wanted.items():
        line = lines[line_id]
        share = domain.line_refund_for_quantity(payable_fen=line.payable_fen, quantity=line.quantity,
                                                refunded_quantity=line.refunded_quantity, returning=quantity,
                                                refunded_fen=line.refunded_fen)
        money[line_id] = max(0, min(share, line.payable_fen - line.refunded_fen))
    return money


def order_refund(*, order: Order, amount_fen: int | None = None, lines: Any = None, reason: str = "",
                 actor: Any = None, restock: bool | None = None, aftersale: AfterSale | None = None) -> OrderRefund:
    """Refund money of a paid order: ``lines`` ({line_id: quantity}) and/or ``amount_fen``.

    Never more than paid − refunded − refunds in flight, nor more than a line's payable amount. ``restock``
    (default: only when nothing has shipped) puts the refunded units back into stock when the refund succeeds.
    """
    if amount_fen is not None and (isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0):
        raise _invalid("amount_fen", "退款金额须为正整数（分）", "The refund must be a positive number of fen")
    if amount_fen is None and not lines:
        raise _invalid("amount_fen", "请填写退款金额或选择退款商品", "Give an amount or choose items to refund")
    reason = " ".join(str(reason or "").split())[:80] or "商家退款"
    with transaction.atomic():
        order = order_locked(order.pk)
        if order.payment_status not in {domain.PAID, domain.PARTIALLY_REFUNDED} or order.paid_fen <= 0:
            raise SiyuError("order_not_refundable", "订单未支付或已全额退款，不能退款",
                            "This order is not paid, or already fully refunded", status=409)
        room = refundable_fen(order)
        all_lines = list(order.lines.order_by("pk"))
        quantities: dict[int, int] = {}
        if lines:
            quantities = _parse_quantities(order, lines)
            money = _money_for_quantities(order, quantities)
            computed = sum(money.values())
            amount = computed if amount_fen is None else amount_fen
            if amount > computed:
                raise SiyuError("refund_exceeds_lines", f"退款金额超过所选商品的可退金额（{domain.yuan(computed)} 元）",
                                f"The refund exceeds what the chosen items may refund ({domain.yuan(computed)} yuan)",
                                status=409, details={"refundable_fen": computed})
            allocation = domain.allocate_refund(amount, [domain.LineRoom(k, v) for k, v in money.items() if v > 0]) \
                if amount else {}
        else:
            amount = amount_fen
            rooms = [domain.LineRoom(line.pk, line.payable_fen - line.refunded_fen) for line in all_lines]
            shipping_room = _shipping_room(order)
            if shipping_room:
                rooms.append(domain.LineRoom(0, shipping_room))
            if amount > sum(r.refundable_fen for r in rooms) or amount > room:
                raise _exceeds(min(room, sum(r.refundable_fen for r in rooms)))
            allocation = domain.allocate_refund(amount, [r for r in rooms if r.refundable_fen > 0])
            if amount == room:  # everything left goes back: so do the units not yet refunded
                quantities = {line.pk: line.quantity - line.refunded_quantity for line in all_lines
                              if line.quantity > line.refunded_quantity}
        if amount <= 0 or amount > room:
            raise _exceeds(room)
        if aftersale is not None and aftersale.refunds.filter(status=RefundStatus.REQUESTED).exists():
            raise SiyuError("refund_in_flight", "该售后单的退款正在处理中", "A refund of this request is in progress",
                            status=409)
        sequence = order.refunds.count() + 1
        refund = OrderRefund.objects.create(
            order=order, aftersale=aftersale, out_refund_no=f"{order.number}R{sequence:02d}", amount_fen=amount,
            lines={(SHIPPING_KEY if k == 0 else str(k)): v for k, v in allocation.items()},
            quantities={str(k): v for k, v in quantities.items()},
            restock=(order.fulfilment_status == domain.UNFULFILLED) if restock is None else bool(restock),
            reason=reason, created_by=actor if getattr(actor, "is_authenticated", False) else None)
        for line in all_lines:
            share, units = allocation.get(line.pk, 0), quantities.get(line.pk, 0)
            if share or units:
                OrderLine.objects.filter(pk=line.pk).update(refunded_fen=line.refunded_fen + share,
                                                            refunded_quantity=line.refunded_quantity + units)
        note(order, f"申请退款 {domain.yuan(amount)} 元（{refund.out_refund_no}）：{reason}", actor=actor)
    _submit(refund)
    refund.refresh_from_db()
    return refund


def _exceeds(room: int) -> SiyuError:
    return SiyuError("refund_exceeds_paid", f"退款金额超过可退金额（可退 {domain.yuan(room)} 元）",
                     f"The refund exceeds what may still be refunded ({domain.yuan(room)} yuan)", status=409,
                     details={"refundable_fen": room})


def _submit(refund: OrderRefund) -> None:
    """Send the reserved refund to WeChat Pay (outside the order's lock). A refusal releases the reservation."""
    order = Order.objects.select_related("workspace").get(pk=refund.order_id)
    try:
        state = _services().payment_provider().refund(
            workspace=order.workspace, out_trade_no=order.number, amount_fen=refund.amount_fen, reason=refund.reason,
            out_refund_no=refund.out_refund_no)
    except SiyuError as error:
        if error.status >= 500 or error.code == "wechat_pay_rate_limited":
            return  # outcome unknown: the pay provider's reconciliation settles it
        order_refund_failed(out_refund_no=refund.out_refund_no, failure=f"{error.code} {error.message_zh}")
        return
    if state.status in {"failed", "closed"}:
        order_refund_failed(out_refund_no=refund.out_refund_no, failure=state.status)


def order_refund_failed(*, out_refund_no: str, failure: str = "") -> bool:
    """WeChat Pay refused or closed the refund: its reservation on the order and lines is released."""
    order_id = OrderRefund.objects.filter(out_refund_no=out_refund_no).values_list("order_id", flat=True).first()
    if order_id is None:
        return False
    with transaction.atomic():
        order = order_locked(order_id)
        refund = OrderRefund.objects.select_for_update().get(out_refund_no=out_refund_no)
        if refund.status != RefundStatus.REQUESTED:
            return False
        refund.status = RefundStatus.FAILED
        refund.failure = (failure or "")[:200]
        refund.save(update_fields=["status", "failure"])
        for key, share in (refund.lines or {}).items():
            if key == SHIPPING_KEY:
                continue
            units = int((refund.quantities or {}).get(key, 0))
            line = OrderLine.objects.get(pk=int(key))
            OrderLine.objects.filter(pk=line.pk).update(refunded_fen=line.refunded_fen - int(share),
                                                        refunded_quantity=line.refunded_quantity - units)
        for key, units in (refund.quantities or {}).items():
            if key not in (refund.lines or {}):
                line = OrderLine.objects.get(pk=int(key))
                OrderLine.objects.filter(pk=line.pk).update(refunded_quantity=line.refunded_quantity - int(units))
        note(order, f"退款失败 {domain.yuan(refund.amount_fen)} 元（{out_refund_no}）：{failure}", actor="wechat_pay")
    return True


def order_refund_settle(*, workspace_id: int, number: str, out_refund_no: str, amount_fen: int,
                        automatic: bool = False) -> str:
    """WeChat Pay confirmed a refund: apply it to the order exactly once. Returns accepted | duplicate | unknown."""
    order_id = Order.objects.filter(workspace_id=workspace_id, number=number).values_list("pk", flat=True).first()
    if order_id is None:
        return "unknown"
    with transaction.atomic():
        order = order_locked(order_id)
        refund = OrderRefund.objects.select_for_update().filter(out_refund_no=out_refund_no).first()
        if refund is None:  # made elsewhere (the merchant platform, the payments console): recorded as it is
            refund = OrderRefund.objects.create(order=order, out_refund_no=out_refund_no, amount_fen=amount_fen,
                                                automatic=automatic, reason="微信支付后台退款")
        if refund.status == RefundStatus.SUCCEEDED:
            return "duplicate"
        if refund.status == RefundStatus.FAILED:  # refused earlier, succeeded after all: hold its lines again
            logger.warning("refund %s reported failed then succeeded", out_refund_no)
        refund.status = RefundStatus.SUCCEEDED
        refund.settled_at = timezone.now()
        refund.save(update_fields=["status", "settled_at"])
        order.refunded_fen = min(order.refunded_fen + refund.amount_fen, order.paid_fen)
        target = domain.payment_status_after_refunds(paid_fen=order.paid_fen, refunded_fen=order.refunded_fen)
        move(order, domain.PAYMENT_STATUS, target, actor="wechat_pay",
             reason=f"退款成功 {domain.yuan(refund.amount_fen)} 元（{out_refund_no}）")
        if refund.restock and refund.quantities:
            _restock(order, refund.quantities)
        if target == domain.REFUNDED:
            if order.points_used and order.points_returned_at is None:
                loyalty_points.points_refund(ref=order.reservation_ref, workspace=order.workspace)
                order.points_returned_at = timezone.now()
            if order.order_status == domain.CONFIRMED and order.fulfilment_status == domain.UNFULFILLED:
                move(order, domain.ORDER_STATUS, domain.CANCELLED, actor="system", reason="未发货全额退款")
                if order.coupon_ids:
                    promotions.coupons_release(ref=order.reservation_ref)
                order.cancelled_at = timezone.now()
                order.cancel_reason = "未发货全额退款"
                domain_events.publish(events.ORDER_CANCELLED, **_services()._payload(order), by="system",
                                      reason=order.cancel_reason, was_paid=True)
        order.save(update_fields=["refunded_fen", "payment_status", "order_status", "points_returned_at",
                                  "cancelled_at", "cancel_reason", "updated_at"])
        if refund.aftersale_id:
            aftersale = AfterSale.objects.select_for_update().get(pk=refund.aftersale_id)
            if aftersale.status in {domain.AS_APPROVED, domain.AS_RETURNED}:
                aftersale_move(aftersale, domain.AS_REFUNDED, actor="wechat_pay", reason="退款成功")
                aftersale.save(update_fields=["status", "updated_at"])
        domain_events.publish(events.ORDER_REFUNDED, **_services()._payload(order), amount_fen=refund.amount_fen,
                              refunded_fen=order.refunded_fen, payment_status=order.payment_status,
                              out_refund_no=out_refund_no, automatic=refund.automatic)
        transaction.on_commit(lambda: _services()._customer_event(order, "order_refunded", refund.amount_fen,
                                                                 suffix=f":{out_refund_no}"))
    return "accepted"


def _restock(order: Order, quantities: dict[str, int]) -> None:
    """Units back to stock for the order's regular lines (flash-sale units were sold from the sale's own stock)."""
    lines = {line.pk: line for line in order.lines.filter(pk__in=[int(k) for k in quantities], flash_sale=False)}
    back = [(lines[int(k)].sku_id, int(v)) for k, v in quantities.items() if int(k) in lines and int(v) > 0]
    if back:
        inventory.stock_return(ref=order.reservation_ref, lines=back)


# --- after-sales ----------------------------------------------------------------------------------------
AFTERSALE_KINDS = {domain.REFUND_ONLY, domain.RETURN_REFUND, domain.EXCHANGE}


def _aftersale_locked(aftersale: AfterSale) -> tuple[Order, AfterSale]:
    order = order_locked(aftersale.order_id)
    return order, AfterSale.objects.select_for_update().get(pk=aftersale.pk)


def aftersale_request(*, order: Order, customer: Customer | None, kind: str, reason: str, lines: Any,
                      description: str = "", amount_fen: int | None = None, actor: Any = "customer") -> AfterSale:
    """The customer (or service staff on their behalf) asks for a refund, a return or an exchange."""
    if customer is not None and not order.belongs_to(customer):
        raise SiyuError("not_found", "订单不存在", "Order not found", status=404)
    if kind not in AFTERSALE_KINDS:
        raise _invalid("kind", "售后类型无效", "Unknown after-sales kind")
    reason = " ".join(str(reason or "").split())
    if not reason or len(reason) > 80:
        raise _invalid("reason", "请填写售后原因（最多 80 字）", "A reason is required (at most 80 characters)")
    description = " ".join(str(description or "").split())[:500]
    if amount_fen is not None and (isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen < 0):
        raise _invalid("amount_fen", "退款金额须为非负整数（分）", "The amount must be a non-negative number of fen")
    with transaction.atomic():
        order = order_locked(order.pk)
        if order.payment_status not in {domain.PAID, domain.PARTIALLY_REFUNDED}:
            raise SiyuError("aftersale_not_allowed", "订单未支付或已全额退款，不能申请售后",
                            "This order is not paid, or already fully refunded", status=409)
        if kind in {domain.RETURN_REFUND, domain.EXCHANGE} and order.fulfilment_status not in {domain.SHIPPED,
                                                                                               domain.DELIVERED}:
            raise SiyuError("aftersale_not_shipped", "订单尚未发货，请申请仅退款", "Nothing has shipped yet: ask for a "
                            "refund only", status=409)
        if order.aftersales.filter(status__in=domain.AFTERSALE_OPEN).exists():
            raise SiyuError("aftersale_open", "该订单已有处理中的售后申请", "This order already has an open request",
                            status=409)
        quantities = _parse_quantities(order, lines)
        if kind == domain.EXCHANGE:
            amount = 0
        else:
            computed = min(sum(_money_for_quantities(order, quantities).values()), refundable_fen(order))
            amount = computed if amount_fen is None else amount_fen
            if amount <= 0 or amount > computed:
                raise SiyuError("refund_exceeds_lines", f"退款金额须在 0.01–{domain.yuan(computed)} 元之间",
                                f"The refund must be between 0.01 and {domain.yuan(computed)} yuan", status=409,
                                details={"refundable_fen": computed})
        try:
            with transaction.atomic():
                aftersale = AfterSale.objects.create(workspace_id=order.workspace_id, order=order, kind=kind,
                                                     amount_fen=amount, reason=reason, description=description)
        except IntegrityError:
            raise SiyuError("aftersale_open", "该订单已有处理中的售后申请", "This order already has an open request",
                            status=409) from None
        AfterSaleLine.objects.bulk_create([AfterSaleLine(aftersale=aftersale, line_id=line_id, quantity=quantity)
                                           for line_id, quantity in sorted(quantities.items())])
        note(order, f"售后#{aftersale.pk} 申请：{aftersale.get_kind_display()} {domain.yuan(amount)} 元，{reason}",
             actor=actor)
    return aftersale


def aftersale_approve(*, aftersale: AfterSale, actor: Any, note_text: str = "") -> AfterSale:
    with transaction.atomic():
        _, aftersale = _aftersale_locked(aftersale)
        aftersale_move(aftersale, domain.AS_APPROVED, actor=actor, reason=note_text or "同意")
        aftersale.decided_by = actor if getattr(actor, "is_authenticated", False) else None
        aftersale.decision_note = " ".join(str(note_text or "").split())[:200]
        aftersale.save(update_fields=["status", "decided_by", "decision_note", "updated_at"])
    return aftersale


def aftersale_reject(*, aftersale: AfterSale, actor: Any, note_text: str) -> AfterSale:
    note_text = " ".join(str(note_text or "").split())
    if not note_text or len(note_text) > 200:
        raise _invalid("note", "拒绝时请说明原因（最多 200 字）", "Say why the request is rejected (at most 200 characters)")
    with transaction.atomic():
        _, aftersale = _aftersale_locked(aftersale)
        aftersale_move(aftersale, domain.AS_REJECTED, actor=actor, reason=note_text)
        aftersale.decided_by = actor if getattr(actor, "is_authenticated", False) else None
        aftersale.decision_note = note_text
        aftersale.save(update_fields=["status", "decided_by", "decision_note", "updated_at"])
    return aftersale


def aftersale_receive_return(*, aftersale: AfterSale, actor: Any) -> AfterSale:
    """The returned goods arrived: they go back into stock (exactly once: the request moves once)."""
    with transaction.atomic():
        order, aftersale = _aftersale_locked(aftersale)
        if aftersale.kind not in {domain.RETURN_REFUND, domain.EXCHANGE}:
            raise SiyuError("aftersale_no_return", "仅退款的售后单没有退货", "A refund-only request has no goods to "
                            "receive", status=409)
        aftersale_move(aftersale, domain.AS_RETURNED, actor=actor, reason="收到退货")
        aftersale.save(update_fields=["status", "updated_at"])
        units = {str(row.line_id): row.quantity for row in aftersale.lines.all()}
        _restock(order, units)
        if aftersale.kind == domain.RETURN_REFUND:
            lines = list(order.lines.all())
            if all(line.refunded_quantity + units.get(str(line.pk), 0) >= line.quantity for line in lines):
                move(order, domain.FULFILMENT_STATUS, domain.RETURNED, actor=actor, reason="全部商品已退回")
                order.save(update_fields=["fulfilment_status", "updated_at"])
    return aftersale


def aftersale_refund(*, aftersale: AfterSale, actor: Any) -> OrderRefund:
    """Pay back an approved refund-only request or a received return (the money follows the request's lines)."""
    aftersale.refresh_from_db()
    ready = domain.AS_APPROVED if aftersale.kind == domain.REFUND_ONLY else domain.AS_RETURNED
    if aftersale.kind == domain.EXCHANGE or aftersale.status != ready:
        raise SiyuError("aftersale_not_refundable", "该售后单当前不能退款（仅退款须先同意，退货退款须先收到退货）",
                        "This request cannot be refunded now (approve a refund first; receive a return first)",
                        status=409, details={"status": aftersale.status})
    units = {row.line_id: row.quantity for row in aftersale.lines.all()}
    return order_refund(order=aftersale.order, lines=units, amount_fen=aftersale.amount_fen,
                        reason=f"售后#{aftersale.pk} {aftersale.reason}", actor=actor,
                        restock=None if aftersale.kind == domain.REFUND_ONLY else False, aftersale=aftersale)


def aftersale_close(*, aftersale: AfterSale, actor: Any, carrier: str = "", tracking_number: str = "",
                    note_text: str = "") -> AfterSale:
    """Close a request: the customer withdraws it, or (exchange) the replacement has been sent out."""
    with transaction.atomic():
        order, aftersale = _aftersale_locked(aftersale)
        if aftersale.kind == domain.EXCHANGE and aftersale.status == domain.AS_RETURNED:
            carrier = " ".join(str(carrier or "").split())
            tracking_number = str(tracking_number or "").strip()
            if not carrier or not tracking_number:
                raise _invalid("tracking_number", "换货发出时请填写快递公司和单号", "Give the replacement's carrier and "
                               "tracking number")
            for row in aftersale.lines.select_related("line"):
                if not row.line.flash_sale:
                    sku = Sku.objects.filter(pk=row.line.sku_id, workspace_id=order.workspace_id).first()
                    if sku is not None:
                        inventory.stock_adjust(sku=sku, delta=-row.quantity, reason=f"换货发出 售后#{aftersale.pk}",
                                               actor=actor if getattr(actor, "is_authenticated", False) else None)
            reason = f"换货已发出 {carrier} {tracking_number}"
        else:
            reason = " ".join(str(note_text or "").split())[:120] or "关闭"
        aftersale_move(aftersale, domain.AS_CLOSED, actor=actor, reason=reason)
        aftersale.save(update_fields=["status", "updated_at"])
    return aftersale


# --- complaints -----------------------------------------------------------------------------------------
COMPLAINT_CATEGORIES = {"product": "商品质量", "delivery": "物流配送", "service": "服务态度", "price": "价格与优惠",
                        "other": "其他"}


def complaint_file(*, workspace: Workspace, customer: Customer, category: str, content: str,
                   order: Order | None = None) -> Complaint:
    if customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    if order is not None and (order.workspace_id != workspace.pk or not order.belongs_to(customer)):
        raise SiyuError("not_found", "订单不存在", "Order not found", status=404)
    if category not in COMPLAINT_CATEGORIES:
        raise _invalid("category", "投诉类型无效", "Unknown complaint category")
    content = " ".join(str(content or "").split())
    if not content or len(content) > 1000:
        raise _invalid("content", "请填写投诉内容（最多 1000 字）", "Describe the complaint (at most 1000 characters)")
    with transaction.atomic():
        complaint = Complaint.objects.create(workspace=workspace, customer=customer, order=order, category=category,
                                             content=content)
        if order is not None:
            note(order, f"投诉#{complaint.pk}：{COMPLAINT_CATEGORIES[category]}", actor="customer")
    return complaint


def complaint_resolve(*, complaint: Complaint, actor: Any, resolution: str) -> Complaint:
    resolution = " ".join(str(resolution or "").split())
    if not resolution or len(resolution) > 500:
        raise _invalid("resolution", "请填写处理结果（最多 500 字）", "Describe the resolution (at most 500 characters)")
    with transaction.atomic():
        complaint = Complaint.objects.select_for_update().get(pk=complaint.pk)
        if complaint.status != ComplaintStatus.OPEN:
            raise SiyuError("complaint_closed", "该投诉已处理", "This complaint is already resolved", status=409)
        complaint.status = ComplaintStatus.RESOLVED
        complaint.resolution = resolution
        complaint.handled_by = actor if getattr(actor, "is_authenticated", False) else None
        complaint.resolved_at = timezone.now()
        complaint.save(update_fields=["status", "resolution", "handled_by", "resolved_at"])
        if complaint.order_id:
            note(Order.objects.get(pk=complaint.order_id), f"投诉#{complaint.pk} 已处理：{resolution}"[:200],
                 actor=actor)
    return complaint
