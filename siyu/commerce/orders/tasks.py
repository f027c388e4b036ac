"""Background work of orders (thin wrappers over services) and their subscriptions to the pay provider.

Payment facts arrive as domain events of ``siyu.wechat.pay.provider``, each published once per fact after
its transaction commits; the order services apply them exactly once on top (row lock + status).
"""

from __future__ import annotations

import logging
from datetime import datetime

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order
from siyu.core.domain_events import subscribe
from siyu.wechat.pay import provider

logger = logging.getLogger(__name__)


@db_task(retries=5, retry_delay=30)
def order_timeline_task(order_id: int, event_type: str, amount_fen: int, payer_openid: str = "", appid: str = "",
                        suffix: str = "", occurred_at: str = "") -> bool:
    """The order on the customer's timeline (queued on commit; the event id is deterministic, so a retry or a
    duplicate task records it once)."""
    order = Order.objects.select_related("workspace").filter(pk=order_id).first()
    if order is None:
        return False
    services.customer_event_record(order, event_type, amount_fen, payer_openid, appid, suffix, occurred_at)
    return True


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def on_payment_succeeded(*, workspace_id, out_trade_no, transaction_id, amount_fen, payer_openid="", appid="",
                         paid_at=None, **_):
    services.order_mark_paid(workspace_id=workspace_id, number=out_trade_no, transaction_id=transaction_id,
                             amount_fen=amount_fen, paid_at=_when(paid_at), payer_openid=payer_openid, appid=appid)


def on_payment_paid_after_close(*, workspace_id, out_trade_no, transaction_id, amount_fen, out_refund_no,
                                paid_at=None, **_):
    services.order_paid_after_close(workspace_id=workspace_id, number=out_trade_no, transaction_id=transaction_id,
                                    amount_fen=amount_fen, out_refund_no=out_refund_no, paid_at=_when(paid_at))


def on_refund_succeeded(*, workspace_id, out_trade_no, out_refund_no, amount_fen, automatic=False, **_):
    services.order_refund_settle(workspace_id=workspace_id, number=out_trade_no, out_refund_no=out_refund_no,
                                 amount_fen=amount_fen, automatic=automatic)


def on_refund_failed(*, out_refund_no, status="failed", **_):
    services.order_refund_failed(out_refund_no=out_refund_no, failure=f"微信支付退款{status}")


subscribe(provider.PAYMENT_SUCCEEDED, on_payment_succeeded)
subscribe(provider.PAYMENT_PAID_AFTER_CLOSE, on_payment_paid_after_close)
subscribe(provider.REFUND_SUCCEEDED, on_refund_succeeded)
subscribe(provider.REFUND_FAILED, on_refund_failed)


@db_periodic_task(crontab(minute="*"))
def orders_expire_unpaid_task() -> dict[str, int]:
    """Cancel unpaid orders whose time to pay is over (SIYU_ORDER_PAY_MINUTES), releasing what they hold."""
    counts = services.orders_expire_unpaid()
    if any(counts.values()):
        logger.info("unpaid orders expired: %s", counts)
    return counts


@db_periodic_task(crontab(minute="*/5"))
def orders_reconcile_payments_task() -> dict[str, int]:
    """Apply payment facts whose domain event never reached an order (exactly once, like the events)."""
    counts = services.orders_reconcile_payments()
    if any(counts.values()):
        logger.warning("orders caught up with payments: %s", counts)
    return counts
