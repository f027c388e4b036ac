"""Writes of orders: checkout, payment (WeChat Pay), cancellation and auto-cancel, shipping, delivery, remarks.

Refunds, after-sales and complaints live in :mod:`siyu.commerce.orders.aftersales` (re-exported here).

Checkout is one transaction: quote → stock (or flash stock) reserved → coupons locked → points spent →
order, lines and history. Any refusal on the way rolls everything back: nothing is held for an order that
does not exist. Everything an order holds elsewhere is held under one reference (``order.reservation_ref``),
and given back by its owner's exactly-once ``*_release`` / ``points_refund``.

Payments arrive as domain events of the pay provider (``siyu.wechat.pay.provider``), each published once per
fact; ``order_mark_paid`` is idempotent on top of that (the order's row lock and its payment status). Calls
to WeChat Pay (prepay, close, refund) never run inside a transaction that holds an order's lock.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from siyu.commerce.catalog import inventory
from siyu.commerce.orders import domain, events
from siyu.commerce.orders.models import Order, OrderLine, OrderRefund, OrderSource
from siyu.commerce.orders.transitions import move, moves, note, order_locked
from siyu.commerce.promotions import services as promotions
from siyu.commerce.promotions.models import FlashSale
from siyu.core import domain_events
from siyu.core.crypto import encrypt_text
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Customer, Identity
from siyu.loyalty import points as loyalty_points
from siyu.loyalty.benefits import exclusive_items_check
from siyu.wechat.pay.provider import PaymentProvider, WeChatPayProvider

logger = logging.getLogger(__name__)

MAX_LINES = 50
MAX_QUANTITY = 999
ADDRESS_FIELDS = {"name": 32, "phone": 20, "province": 16, "city": 16, "district": 16, "detail": 120}
TRACKING = re.compile(r"[0-9A-Za-z\-]{4,40}")
RESERVATION_GRACE = timedelta(minutes=10)  # stock outlives the payment window: auto-cancel releases it first


def payment_provider() -> PaymentProvider:
    """The provider orders pay through (one place to swap it)."""
    return WeChatPayProvider()


def pay_timeout() -> timedelta:
    """How long an unpaid order waits before it is cancelled (setting SIYU_ORDER_PAY_MINUTES, default 30)."""
    return timedelta(minutes=int(getattr(settings, "SIYU_ORDER_PAY_MINUTES", 30)))


def _invalid(field: str, zh: str, en: str, status: int = 400) -> SiyuError:
    return SiyuError("order_invalid", f"{zh}", f"{en}", status=status, details={"field": field})


def _new_number() -> str:
    """A human order number that is also a valid WeChat Pay out_trade_no: 20261123 + 10 random digits."""
    return timezone.localtime().strftime("%Y%m%d") + "".join(secrets.choice("0123456789") for _ in range(10))


# --- checkout -------------------------------------------------------------------------------------------
def _clean_lines(lines: Any) -> list[tuple[int, int]]:
    if not isinstance(lines, (list, tuple)) or not lines:
        raise _invalid("lines", "请选择要购买的商品", "Choose at least one item")
    if len(lines) > MAX_LINES:
        raise _invalid("lines", f"一次最多购买 {MAX_LINES} 种商品", f"At most {MAX_LINES} different items per order")
    merged: dict[int, int] = {}
    for line in lines:
        try:
            sku_id, quantity = line
        except (TypeError, ValueError):
            raise _invalid("lines", "商品行格式错误", "Each line must be (sku_id, quantity)") from None
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (sku_id, quantity)):
            raise _invalid("lines", "商品与数量必须是整数", "SKU ids and quantities must be integers")
        if quantity <= 0 or quantity > MAX_QUANTITY:
            raise _invalid("quantity", f"购买数量须在 1–{MAX_QUANTITY} 之间", f"Quantities must be 1–{MAX_QUANTITY}")
        merged[sku_id] = merged.get(sku_id, 0) + quantity
    if any(quantity > MAX_QUANTITY for quantity in merged.values()):
        raise _invalid("quantity", f"每种商品最多购买 {MAX_QUANTITY} 件", f"At most {MAX_QUANTITY} of one item")
    return sorted(merged.items())


def _clean_address(address: Any) -> dict[str, str]:
    if not isinstance(address, dict):
        raise _invalid("address", "请填写收货地址", "A delivery address is required")
    clean: dict[str, str] = {}
    for name, limit in ADDRESS_FIELDS.items():
        value = address.get(name)
        if not isinstance(value, str) or not value.strip():
            raise _invalid(f"address.{name}", "收货地址不完整", f"The address lacks {name}")
        value = " ".join(value.split())
        if len(value) > limit:
            raise _invalid(f"address.{name}", "收货地址内容过长", f"The address {name} is too long")
        clean[name] = value
    if not re.fullmatch(r"\+?[0-9\- ]{6,20}", clean["phone"]):
        raise _invalid("address.phone", "收货人电话格式不正确", "The phone number is not valid")
    return clean


def _clean_ids(values: Any, field: str) -> tuple[int, ...]:
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise _invalid(field, "优惠券编号必须是整数", "Coupon ids must be integers")
    return tuple(sorted(set(values)))


def checkout(*, workspace: Workspace, customer: Customer, lines: list[tuple[int, int]], coupon_ids=(),
             points: int = 0, address: dict, source: str = "h5", flash_sale_id: int | None = None,
             buyer_note: str = "") -> Order:
    """Place an order in one transaction; a refusal at any step leaves nothing held and no order."""
    wanted = _clean_lines(lines)
    coupons = _clean_ids(coupon_ids, "coupon_ids")
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise _invalid("points", "积分数量必须是非负整数", "Points must be a non-negative integer")
    clean_address = _clean_address(address)
    if source not in OrderSource.values:
        raise _invalid("source", "下单来源无效", "Unknown order source")
    if flash_sale_id is not None and (isinstance(flash_sale_id, bool) or not isinstance(flash_sale_id, int)):
        raise _invalid("flash_sale_id", "秒杀活动编号无效", "Invalid flash sale id")
    buyer_note = " ".join(str(buyer_note or "").split())[:200]
    if customer.workspace_id != workspace.pk or not customer.is_live:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)

    sale = None
    if flash_sale_id is not None:
        sale = FlashSale.objects.filter(workspace=workspace, pk=flash_sale_id).first()
        if sale is not None and sale.stock_left == 0:
            # Fast path for the crowd after a sale sells out (the conditional UPDATE in flash_take still decides).
            raise SiyuError("flash_sold_out", "秒杀商品已抢光", "The flash sale is sold out", status=409)
    with transaction.atomic():
        quote, context = promotions.checkout_quote(workspace=workspace, customer=customer, lines=wanted,
                                                   coupon_ids=coupons, points=points, flash_sale_id=flash_sale_id,
                                                   flash_sale=sale)
        # 会员专享: products for a tier above the customer's are refused before anything is held.
        min_tiers = {sku.product_id: sku.product.min_tier for sku in context.skus.values() if sku.product.min_tier}
        if min_tiers:
            exclusive_items_check(customer=customer, min_tiers=min_tiers)
        unapplied = dict(getattr(quote, "unapplied", ()) or ())
        if unapplied:
            coupon_id, reason = next(iter(unapplied.items()))
            raise SiyuError("coupon_not_applicable", "所选优惠券不满足使用条件", "A chosen coupon does not apply to this order",
                            status=409, details={"coupon_id": coupon_id, "reason": reason})
        flash_lines = [line for line in quote.lines if line.price_kind == "flash"]
        if flash_sale_id is not None and not any(line.sale_id == flash_sale_id for line in flash_lines):
            raise SiyuError("flash_sale_unavailable", "秒杀活动未开始、已结束或不含所选商品",
                            "The flash sale is not running or does not include this item", status=409,
                            details={"flash_sale_id": flash_sale_id})
        number = _new_number()
        ref = f"order:{number}"
        now = timezone.now()
        expires = now + pay_timeout()
        regular = [(line.sku_id, line.quantity) for line in quote.lines if line.price_kind != "flash"]
        if regular:
            inventory.stock_reserve(workspace=workspace, lines=regular, ref=ref,
                                    ttl_seconds=int((pay_timeout() + RESERVATION_GRACE).total_seconds()))
        flash_sales = {}
        for line in flash_lines:
            held = sale if sale is not None and sale.pk == line.sale_id else \
                FlashSale.objects.get(workspace=workspace, pk=line.sale_id)
            promotions.flash_hold(sale=held, customer=customer, qty=line.quantity, ref=ref)
            flash_sales[line.sale_id] = flash_sales.get(line.sale_id, 0) + line.quantity
        if quote.applied_coupon_ids:
            promotions.coupons_lock(workspace=workspace, customer=customer, coupon_ids=list(quote.applied_coupon_ids),
                                    ref=ref)
        if quote.points_used:
            loyalty_points.points_spend(workspace=workspace, customer=customer, amount=quote.points_used, ref=ref)
        order = Order.objects.create(
            workspace=workspace, customer=customer, number=number, subtotal_fen=quote.subtotal_fen,
            discount_fen=quote.discount_fen, points_used=quote.points_used, points_fen=quote.points_fen,
            shipping_fen=quote.shipping_fen, total_fen=quote.total_fen, price_explanation=quote_snapshot(quote),
            coupon_ids=list(quote.applied_coupon_ids), flash_sale_id=flash_sale_id or (
                flash_lines[0].sale_id if flash_lines else None),
            address_enc=encrypt_text(json.dumps(clean_address, ensure_ascii=False)), source=source,
            buyer_note=buyer_note, pay_expires_at=expires)
        skus = context.skus
        OrderLine.objects.bulk_create([
            OrderLine(order=order, sku_id=line.sku_id, product_id=line.product_id,
                      title=skus[line.sku_id].product.title[:120] if line.sku_id in skus else f"SKU {line.sku_id}",
                      specs=skus[line.sku_id].specs if line.sku_id in skus else {},
                      unit_price_fen=line.unit_price_fen, quantity=line.quantity,
                      discount_fen=line.subtotal_fen - line.payable_fen, payable_fen=line.payable_fen,
                      flash_sale=line.price_kind == "flash")
            for line in quote.lines])
        note(order, f"下单，应付 {domain.yuan(order.total_fen)} 元", actor="customer")
        domain_events.publish(events.ORDER_PLACED, **_payload(order), total_fen=order.total_fen, source=source,
                              flash_sale_id=order.flash_sale_id)
        transaction.on_commit(lambda: _customer_event(order, "order_placed", order.total_fen))
        if order.total_fen == 0:  # fully paid by points and discounts: nothing to collect
            order = order_locked(order.pk)
            _apply_paid(order, transaction_id="", amount_fen=0, paid_at=now, actor="system")
        # The flash sale's hot row last: its lock is held only from this UPDATE to the commit just below.
        for sale_id, quantity in sorted(flash_sales.items()):
            promotions.flash_take(sale_id=sale_id, qty=quantity)
    return order


def quote_snapshot(quote: Any) -> dict[str, Any]:
    """The price explanation as the customer saw it at checkout (kept on the order, never recomputed)."""
    return {
        "adjustments": [{"kind": a.kind, "label_zh": a.label_zh, "label_en": a.label_en, "amount_fen": a.amount_fen,
                         "ref_id": a.ref_id} for a in quote.adjustments],
        "lines": [{"sku_id": line.sku_id, "quantity": line.quantity, "unit_price_fen": line.unit_price_fen,
                   "item_price_fen": line.item_price_fen, "price_kind": line.price_kind,
                   "payable_fen": line.payable_fen,
                   "allocations": [{"kind": a.kind, "ref_id": a.ref_id, "amount_fen": a.amount_fen}
                                   for a in line.allocations]} for line in quote.lines],
        "subtotal_fen": quote.subtotal_fen, "discount_fen": quote.discount_fen, "points_used": quote.points_used,
        "points_fen": quote.points_fen, "shipping_fen": quote.shipping_fen, "total_fen": quote.total_fen,
    }


def _payload(order: Order) -> dict[str, Any]:
    return {"workspace_id": order.workspace_id, "order_id": order.pk, "number": order.number,
            "customer_id": order.customer_id}


# --- payment --------------------------------------------------------------------------------------------
def order_prepay(*, order: Order, openid: str, appid: str | None = None) -> dict[str, Any]:
    """Client parameters for WeChat Pay (JSAPI / mini-program). Safe to retry: same intent, same prepay_id.

    Runs outside any transaction: the order is only read here; its payment arrives as a domain event.
    """
    order = Order.objects.select_related("workspace").get(pk=order.pk)
    if order.order_status != domain.PENDING_PAYMENT or order.payment_status != domain.UNPAID:
        raise SiyuError("order_not_payable", "订单已支付、已取消或已关闭，不能再支付", "This order cannot be paid any more",
                        status=409, details={"order_status": order.order_status, "payment_status": order.payment_status})
    if order.pay_expires_at <= timezone.now():
        raise SiyuError("order_pay_expired", "订单已超过支付时限，请重新下单", "The time to pay this order is over",
                        status=409)
    if not isinstance(openid, str) or not openid.strip():
        raise _invalid("openid", "缺少支付用户的 openid", "The payer's openid is required")
    titles = list(order.lines.order_by("pk").values_list("title", flat=True))  # at most MAX_LINES
    title, count = (titles[0] if titles else "订单"), len(titles)
    description = (f"{title} 等{count}件商品" if count > 1 else title)[:127]
    prepay = payment_provider().prepay(workspace=order.workspace, out_trade_no=order.number,
                                       amount_fen=order.total_fen, description=description, payer_openid=openid,
                                       appid=appid, expires_at=order.pay_expires_at)
    return {"order_number": order.number, "prepay_id": prepay.prepay_id, "pay_params": dict(prepay.client_params)}


def order_mark_paid(*, workspace_id: int, number: str, transaction_id: str, amount_fen: int,
                    paid_at: datetime | None = None, payer_openid: str = "", appid: str = "") -> str:
    """Apply a successful payment to its order exactly once. Returns accepted | duplicate | refunding | unknown.

    A payment for an order that is no longer payable (cancelled, or its stock no longer held) is recorded and
    refunded in full automatically.
    """
    refund_no = None
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(workspace_id=workspace_id, number=number).first()
        if order is None:
            return "unknown"
        order_id = order.pk
        if order.payment_status != domain.UNPAID:
            return "duplicate"
        if order.order_status == domain.PENDING_PAYMENT and amount_fen == order.total_fen:
            try:
                with transaction.atomic():
                    _apply_paid(order, transaction_id=transaction_id, amount_fen=amount_fen, paid_at=paid_at,
                                actor="wechat_pay")
                outcome = "accepted"
            except SiyuError as error:
                logger.warning("order %s paid but cannot be fulfilled (%s): refunding", number, error.code)
                order = order_locked(order_id)
                refund_no = _paid_but_refused(order, transaction_id=transaction_id, amount_fen=amount_fen,
                                              paid_at=paid_at, why=f"库存或优惠已失效（{error.code}），自动退款")
                outcome = "refunding"
        else:
            why = "订单已取消后到账，自动退款" if order.order_status == domain.CANCELLED else "支付金额与订单不符，自动退款"
            refund_no = _paid_but_refused(order, transaction_id=transaction_id, amount_fen=amount_fen,
                                          paid_at=paid_at, why=why)
            outcome = "refunding"
        if outcome == "accepted":
            transaction.on_commit(lambda: _customer_event(order, "order_paid", order.paid_fen, payer_openid, appid))
    if refund_no:
        _submit_automatic_refund(order_id, refund_no)
    return outcome


def _apply_paid(order: Order, *, transaction_id: str, amount_fen: int, paid_at: datetime | None, actor: str) -> None:
    ref = order.reservation_ref
    # An order has flash lines exactly when it names its flash sale (checkout); only then can some be regular.
    if order.flash_sale_id is None or _has_regular_lines(order):
        inventory.stock_commit(ref=ref)
    if order.flash_sale_id is not None and not promotions.flash_commit(ref=ref):
        raise SiyuError("flash_reservation_lost", "秒杀名额已释放", "The flash-sale units were released", status=409)
    if order.coupon_ids:
        promotions.coupons_consume(ref=ref)
    moves(order, [(domain.PAYMENT_STATUS, domain.PAID, f"微信支付 {transaction_id}".strip()),
                  (domain.ORDER_STATUS, domain.CONFIRMED, "支付成功")], actor=actor)
    order.paid_fen = amount_fen
    order.transaction_id = transaction_id
    order.paid_at = paid_at or timezone.now()
    order.save(update_fields=["payment_status", "order_status", "paid_fen", "transaction_id", "paid_at",
                              "updated_at"])
    domain_events.publish(events.ORDER_PAID, **_payload(order), total_fen=order.total_fen, paid_fen=order.paid_fen,
                          transaction_id=transaction_id, paid_at=order.paid_at.isoformat())


def _has_regular_lines(order: Order) -> bool:
    """Whether an order has lines at a regular price (stock reserved in the catalogue): from the price
    snapshot checkout kept on the order row (already loaded), else from its lines."""
    lines = (order.price_explanation or {}).get("lines") if isinstance(order.price_explanation, dict) else None
    if isinstance(lines, list) and lines and all(isinstance(line, dict) and "price_kind" in line for line in lines):
        return any(line["price_kind"] != "flash" for line in lines)
    return order.lines.filter(flash_sale=False).exists()


def _paid_but_refused(order: Order, *, transaction_id: str, amount_fen: int, paid_at: datetime | None,
                      why: str, out_refund_no: str | None = None) -> str | None:
    """Record money that arrived for an order that will not be fulfilled, and reserve its full refund.
    Returns the out_refund_no to submit (None when the provider refunds by itself)."""
    if order.order_status == domain.PENDING_PAYMENT:
        _cancel_locked(order, by="system", reason=why, actor="system")
    amount = min(amount_fen, order.total_fen)
    move(order, domain.PAYMENT_STATUS, domain.PAID, actor="wechat_pay", reason=why)
    order.paid_fen = amount
    order.transaction_id = transaction_id
    order.paid_at = paid_at or timezone.now()
    order.save(update_fields=["payment_status", "paid_fen", "transaction_id", "paid_at", "updated_at"])
    number = out_refund_no or f"AUTO{order.number}"
    _, created = OrderRefund.objects.get_or_create(
        out_refund_no=number, defaults={"order": order, "amount_fen": amount_fen, "automatic": True,
                                        "reason": why[:80]})
    if created:
        note(order, f"{why}：{domain.yuan(amount_fen)} 元（{number}）", actor="wechat_pay")
    return None if out_refund_no else number


def _submit_automatic_refund(order_id: int, out_refund_no: str) -> None:
    refund = OrderRefund.objects.select_related("order__workspace").get(out_refund_no=out_refund_no)
    try:
        payment_provider().refund(workspace=refund.order.workspace, out_trade_no=refund.order.number,
                                  amount_fen=refund.amount_fen, reason=refund.reason, out_refund_no=out_refund_no)
    except SiyuError as error:  # reconciled later by the pay provider; the reservation stays
        logger.warning("automatic refund %s not submitted: %s", out_refund_no, error)


def order_paid_after_close(*, workspace_id: int, number: str, transaction_id: str, amount_fen: int,
                           out_refund_no: str, paid_at: datetime | None = None) -> str:
    """The provider received money for a closed intent and is refunding it: record both on the order."""
    order_id = Order.objects.filter(workspace_id=workspace_id, number=number).values_list("pk", flat=True).first()
    if order_id is None:
        return "unknown"
    with transaction.atomic():
        order = order_locked(order_id)
        if OrderRefund.objects.filter(out_refund_no=out_refund_no).exists():
            return "duplicate"
        if order.payment_status != domain.UNPAID:
            return "duplicate"
        _paid_but_refused(order, transaction_id=transaction_id, amount_fen=amount_fen, paid_at=paid_at,
                          why="订单关闭后到账，微信支付自动退款", out_refund_no=out_refund_no)
    return "accepted"


def _customer_identity(order: Order, payer_openid: str, appid: str) -> dict[str, str] | None:
    if payer_openid and appid:
        return {"kind": "openid", "namespace": appid, "value": payer_openid}
    identity = (Identity.objects.filter(customer_id=order.customer_id).exclude(kind="phone")
                .order_by("kind", "pk").values("kind", "namespace", "value").first())
    return dict(identity) if identity else None


def _customer_event(order: Order, event_type: str, amount_fen: int, payer_openid: str = "", appid: str = "",
                    suffix: str = "") -> None:
    """The order on the customer's timeline, queued when the order's transaction commits (off the checkout and
    payment paths; ``orders.tasks.order_timeline_task``). If the queue cannot take it, it is recorded here."""
    from siyu.commerce.orders.tasks import order_timeline_task

    at = timezone.now().isoformat()
    try:
        order_timeline_task(order.pk, event_type, amount_fen, payer_openid, appid, suffix, at)
    except Exception:
        logger.exception("order %s: %s could not be queued, recorded in place", order.number, event_type)
        try:
            customer_event_record(order, event_type, amount_fen, payer_openid, appid, suffix, at)
        except Exception:  # never undoes the order; the timeline misses this one entry
            logger.exception("order %s: %s not added to the customer timeline", order.number, event_type)


def customer_event_record(order: Order, event_type: str, amount_fen: int, payer_openid: str = "", appid: str = "",
                          suffix: str = "", occurred_at: str = "") -> None:
    """Record the order on the customer's timeline (deterministic event id, so a replay is a duplicate).
    Raises on failure (the queued task is retried); see ``_customer_event`` for the in-place fallback."""
    identity = _customer_identity(order, payer_openid, appid)
    if identity is None:
        return
    events_ingest(workspace=order.workspace, events=[{
        "event_id": f"order:{order.number}:{event_type}{suffix}", "type": event_type,
        "occurred_at": occurred_at or timezone.now().isoformat(), "identities": [identity],
        "properties": {"order_id": order.number, "amount_fen": amount_fen},
    }])


# --- cancellation ---------------------------------------------------------------------------------------
def _close_payment(order: Order) -> None:
    """Stop the order's WeChat Pay intent before cancelling (outside any transaction).

    No intent (never prepaid) or no merchant: nothing to close. Already paid: the payment is applied to
    the order and the cancellation refused. A payment that still arrives after this is refunded automatically.
    """
    provider = payment_provider()
    try:
        provider.close(workspace=order.workspace, out_trade_no=order.number)
    except SiyuError as error:
        if error.code in {"not_found", "wechat_pay_not_connected"}:
            return
        if error.code == "payment_not_closable":
            state = provider.query(workspace=order.workspace, out_trade_no=order.number)
            if state.transaction_id:
                order_mark_paid(workspace_id=order.workspace_id, number=order.number,
                                transaction_id=state.transaction_id, amount_fen=state.amount_fen,
                                paid_at=state.paid_at, payer_openid=state.payer_openid)
            raise SiyuError("order_already_paid", "订单已支付，不能取消；如需退款请申请售后",
                            "This order is already paid; ask for a refund instead", status=409) from error
        raise


def _release_holds(order: Order) -> None:
    """Give back, exactly once, what an unpaid order holds: stock, flash stock, coupons, points."""
    if order.holds_released_at is not None:
        return
    ref = order.reservation_ref
    inventory.stock_release(ref=ref)
    if order.flash_sale_id is not None:
        promotions.flash_release(ref=ref)
    if order.coupon_ids:
        promotions.coupons_release(ref=ref)
    if order.points_used:
        loyalty_points.points_refund(ref=ref, workspace=order.workspace)
        order.points_returned_at = timezone.now()
    order.holds_released_at = timezone.now()


def _cancel_locked(order: Order, *, by: str, reason: str, actor: Any) -> None:
    move(order, domain.ORDER_STATUS, domain.CANCELLED, actor=actor, reason=reason)
    _release_holds(order)
    order.cancelled_at = timezone.now()
    order.cancel_reason = reason[:120]
    order.save(update_fields=["order_status", "cancelled_at", "cancel_reason", "holds_released_at",
                              "points_returned_at", "updated_at"])
    domain_events.publish(events.ORDER_CANCELLED, **_payload(order), by=by, reason=reason,
                          was_paid=order.payment_status != domain.UNPAID)


CANCEL_BY = {"customer", "operator", "system"}


def order_cancel(*, order: Order, by: str, actor: Any = None, reason: str = "", customer: Customer | None = None
                 ) -> Order:
    """Cancel an order before payment (the customer, an operator, or the system when the time to pay is over)
    or, for an operator, before shipping: a paid order is then refunded in full and becomes cancelled when the
    refund succeeds. Stock, flash stock, coupons and points come back exactly once.
    """
    if by not in CANCEL_BY:
        raise _invalid("by", "取消来源无效", "Unknown canceller")
    if customer is not None and not order.belongs_to(customer):
        raise SiyuError("not_found", "订单不存在", "Order not found", status=404)
    reason = " ".join(str(reason or "").split())[:120] or {"customer": "买家取消", "operator": "商家取消",
                                                             "system": "超时未支付，自动取消"}[by]
    order.refresh_from_db()
    if order.order_status == domain.CANCELLED:
        return order  # already cancelled: a repeated request changes nothing
    if by == "operator" and order.order_status == domain.CONFIRMED and order.fulfilment_status == domain.UNFULFILLED:
        # Paid, nothing shipped: the shop cancels by refunding everything; the order becomes cancelled (and its
        # stock, points and coupons come back) when WeChat Pay confirms the refund.
        from siyu.commerce.orders.aftersales import order_refund, refundable_fen

        if refundable_fen(order) <= 0:
            raise SiyuError("refund_in_flight", "该订单的退款正在处理中", "A refund of this order is in progress", status=409)
        order_refund(order=order, amount_fen=refundable_fen(order), reason=f"商家取消：{reason}"[:80], actor=actor,
                     restock=True)
        order.refresh_from_db()
        return order
    if order.order_status != domain.PENDING_PAYMENT or order.payment_status != domain.UNPAID:
        raise SiyuError("order_not_cancellable", "订单已支付，不能直接取消；如需退款请申请售后",
                        "This order is paid; it cannot be cancelled, only refunded", status=409)
    _close_payment(order)
    with transaction.atomic():
        order = order_locked(order.pk)
        if order.order_status == domain.CANCELLED:
            return order
        if order.order_status != domain.PENDING_PAYMENT or order.payment_status != domain.UNPAID:
            raise SiyuError("order_not_cancellable", "订单已支付，不能直接取消；如需退款请申请售后",
                            "This order is paid; it cannot be cancelled, only refunded", status=409)
        _cancel_locked(order, by=by, reason=reason, actor=actor if actor is not None else by)
    return order


def orders_expire_unpaid(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Cancel unpaid orders whose time to pay is over (periodic). Each is cancelled exactly once."""
    now = now or timezone.now()
    due = list(Order.objects.filter(order_status=domain.PENDING_PAYMENT, payment_status=domain.UNPAID,
                                    pay_expires_at__lte=now).order_by("pay_expires_at").values_list("pk", flat=True)[:limit])
    counts = {"cancelled": 0, "paid": 0, "errors": 0}
    for order_id in due:
        order = Order.objects.select_related("workspace").get(pk=order_id)
        try:
            order_cancel(order=order, by="system")
            counts["cancelled"] += 1
        except SiyuError as error:
            counts["paid" if error.code in {"order_already_paid", "order_not_cancellable"} else "errors"] += 1
        except Exception:  # one order's trouble never stops the others; it is retried next round
            logger.exception("auto-cancel of order %s failed", order.number)
            counts["errors"] += 1
    return counts


def orders_reconcile_payments(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Catch up with payment facts whose domain event never reached the order (a subscriber that failed or a
    process that died after the provider committed): paid intents of unpaid orders, and settled refunds still
    shown as in flight. Each fact is applied by the same exactly-once services as the events (periodic)."""
    from siyu.wechat.pay.models import PaymentIntent
    from siyu.wechat.pay.models import Refund as PayRefund

    now = now or timezone.now()
    settled_before = now - timedelta(minutes=2)
    counts = {"paid": 0, "refunds": 0}
    unpaid = Order.objects.filter(payment_status=domain.UNPAID, created_at__gte=now - timedelta(days=3)) \
        .values_list("workspace_id", "number")
    paid_intents = {(intent.workspace_id, intent.out_trade_no): intent for intent in PaymentIntent.objects.filter(
        out_trade_no__in=[number for _, number in unpaid[:limit]], status__in=("paid", "refunded_partially", "refunded"),
        paid_at__lte=settled_before)}
    for (workspace_id, number), intent in sorted(paid_intents.items()):
        if intent.paid_after_close:
            refund = PayRefund.objects.filter(intent=intent, automatic=True).first()
            outcome = order_paid_after_close(workspace_id=workspace_id, number=number,
                                             transaction_id=intent.transaction_id, amount_fen=intent.amount_fen,
                                             out_refund_no=refund.out_refund_no if refund else f"AUTO{number}",
                                             paid_at=intent.paid_at)
        else:
            outcome = order_mark_paid(workspace_id=workspace_id, number=number, transaction_id=intent.transaction_id,
                                      amount_fen=intent.amount_fen, paid_at=intent.paid_at,
                                      payer_openid=intent.payer_openid, appid=intent.appid)
        counts["paid"] += outcome in {"accepted", "refunding"}
    in_flight = list(OrderRefund.objects.filter(status="requested", created_at__lte=settled_before)
                     .select_related("order").order_by("created_at")[:limit])
    answers = {refund.out_refund_no: refund for refund in PayRefund.objects.filter(
        out_refund_no__in=[row.out_refund_no for row in in_flight], status__in=("succeeded", "closed", "failed"))}
    for row in in_flight:
        answer = answers.get(row.out_refund_no)
        if answer is None:
            continue
        if answer.status == "succeeded":
            outcome = order_refund_settle(workspace_id=row.order.workspace_id, number=row.order.number,
                                          out_refund_no=row.out_refund_no, amount_fen=answer.amount_fen,
                                          automatic=answer.automatic)
            counts["refunds"] += outcome == "accepted"
        else:
            counts["refunds"] += order_refund_failed(out_refund_no=row.out_refund_no, failure=answer.status)
    return counts


# --- fulfilment -----------------------------------------------------------------------------------------
def order_ship(*, order: Order, carrier: str, tracking_number: str, actor: Any) -> Order:
    """Record the parcel (carrier + tracking number) of a paid order: unfulfilled → shipped."""
    carrier = " ".join(str(carrier or "").split())
    tracking_number = str(tracking_number or "").strip()
    if not carrier or len(carrier) > 32:
        raise _invalid("carrier", "请填写快递公司（最多 32 字）", "The carrier is required (at most 32 characters)")
    if not TRACKING.fullmatch(tracking_number):
        raise _invalid("tracking_number", "快递单号须为 4–40 位字母、数字或 -", "The tracking number must be 4-40 "
                       "letters, digits or -")
    with transaction.atomic():
        order = order_locked(order.pk)
        if order.order_status != domain.CONFIRMED or order.payment_status not in {domain.PAID,
                                                                                   domain.PARTIALLY_REFUNDED}:
            raise SiyuError("order_not_shippable", "只有已支付且未全额退款的订单可以发货",
                            "Only paid orders that are not fully refunded can ship", status=409)
        if order.refunds.filter(status="requested").exists():
            raise SiyuError("order_refund_in_flight", "订单有进行中的退款，请等待退款完成后再发货",
                            "A refund of this order is in progress; ship once it has settled", status=409)
        move(order, domain.FULFILMENT_STATUS, domain.SHIPPED, actor=actor, reason=f"{carrier} {tracking_number}")
        order.carrier, order.tracking_number, order.shipped_at = carrier, tracking_number, timezone.now()
        order.save(update_fields=["fulfilment_status", "carrier", "tracking_number", "shipped_at", "updated_at"])
        domain_events.publish(events.ORDER_SHIPPED, **_payload(order), carrier=carrier,
                              tracking_number=tracking_number)
    return order


def order_deliver(*, order: Order, actor: Any, customer: Customer | None = None) -> Order:
    """The parcel arrived (the customer confirms receipt, or an operator records it): shipped → delivered,
    and the order is completed."""
    if customer is not None and not order.belongs_to(customer):
        raise SiyuError("not_found", "订单不存在", "Order not found", status=404)
    with transaction.atomic():
        order = order_locked(order.pk)
        move(order, domain.FULFILMENT_STATUS, domain.DELIVERED, actor=actor, reason="确认收货")
        if order.order_status == domain.CONFIRMED:
            move(order, domain.ORDER_STATUS, domain.COMPLETED, actor=actor, reason="已签收")
            order.completed_at = timezone.now()
        order.delivered_at = timezone.now()
        order.save(update_fields=["fulfilment_status", "order_status", "delivered_at", "completed_at", "updated_at"])
        domain_events.publish(events.ORDER_DELIVERED, **_payload(order), delivered_at=order.delivered_at.isoformat())
    return order


def order_remark(*, order: Order, text: str, actor: Any) -> Order:
    """An operator's note on the order (never shown to the buyer), kept in its history too."""
    text = " ".join(str(text or "").split())
    if not text or len(text) > 200:
        raise _invalid("remark", "备注不能为空且不超过 200 字", "A remark must be 1-200 characters")
    with transaction.atomic():
        order = order_locked(order.pk)
        stamp = timezone.localtime().strftime("%Y-%m-%d %H:%M")
        order.remark = (order.remark + "\n" if order.remark else "") + f"[{stamp}] {text}"
        order.save(update_fields=["remark", "updated_at"])
        note(order, f"备注：{text}", actor=actor)
    return order


# Refunds, after-sales and complaints (kept in their own module, part of the same service surface).
from siyu.commerce.orders.aftersales import (  # noqa: E402, F401
    aftersale_approve,
    aftersale_close,
    aftersale_receive_return,
    aftersale_refund,
    aftersale_reject,
    aftersale_request,
    complaint_file,
    complaint_resolve,
    order_refund,
    order_refund_failed,
    order_refund_settle,
)
