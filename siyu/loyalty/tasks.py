"""Loyalty's background work and domain-event subscriptions (thin wrappers over services).

OrderPaid is queued as a Huey task (``order_paid_task``) when the order's transaction commits: points, growth
and the tier check stay off the payment path (a flash sale pays hundreds of orders a second). The task is
idempotent by the order (``order:<id>`` refs), so a retried or duplicated task earns once; if the queue cannot
take it, the earning is applied right there instead. OrderRefunded is applied right after the commit (small,
idempotent work); if that fails the same call is queued as a retried task. A passing hiccup loses nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.domain_events import CUSTOMERS_CHANGED, subscribe
from siyu.core.models import Workspace
from siyu.loyalty.points import ledger_check, points_expire_due
from siyu.loyalty.services import (
    ORDER_PAID,
    ORDER_REFUNDED,
    customers_merged_apply,
    order_paid_apply,
    order_refunded_apply,
)
from siyu.loyalty.tiers import tiers_reevaluate

logger = logging.getLogger(__name__)


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


@db_task(retries=5, retry_delay=30)
def order_paid_task(workspace_id: int, order_id: int, customer_id: int | None, paid_fen: int,
                    paid_at: str | None = None) -> dict:
    return order_paid_apply(workspace_id=workspace_id, order_id=order_id, customer_id=customer_id,
                            paid_fen=paid_fen, paid_at=_when(paid_at))


@db_task(retries=5, retry_delay=30)
def order_refunded_task(workspace_id: int, order_id: int, customer_id: int | None, amount_fen: int,
                        refunded_fen: int | None, out_refund_no: str) -> dict:
    return order_refunded_apply(workspace_id=workspace_id, order_id=order_id, customer_id=customer_id,
                                amount_fen=amount_fen, refunded_fen=refunded_fen, out_refund_no=out_refund_no)


def on_order_paid(*, workspace_id, order_id, customer_id=None, paid_fen=0, paid_at=None, **_):
    try:
        order_paid_task(workspace_id, order_id, customer_id, paid_fen, paid_at)
    except Exception:  # the queue is unreachable: earn now (idempotent, so a later retry changes nothing)
        logger.exception("loyalty: OrderPaid %s could not be queued, applied in place", order_id)
        order_paid_apply(workspace_id=workspace_id, order_id=order_id, customer_id=customer_id, paid_fen=paid_fen,
                         paid_at=_when(paid_at))


def on_order_refunded(*, workspace_id, order_id, customer_id=None, amount_fen=0, refunded_fen=None,
                      out_refund_no="", **_):
    try:
        order_refunded_apply(workspace_id=workspace_id, order_id=order_id, customer_id=customer_id,
                             amount_fen=amount_fen, refunded_fen=refunded_fen, out_refund_no=out_refund_no)
    except Exception:
        logger.exception("loyalty: OrderRefunded %s failed, queued for retry", order_id)
        order_refunded_task(workspace_id, order_id, customer_id, amount_fen, refunded_fen, out_refund_no)


# 16:05 UTC is 00:05 in Asia/Shanghai: points earned in year Y expire as year Y+1 ends there.
@db_periodic_task(crontab(hour="16", minute="5"))
def points_expire_daily() -> int:
    expired = points_expire_due()
    logger.info("loyalty: %s points expired", expired)
    return expired


# 19:45 UTC is 03:45 in Asia/Shanghai: upgrades and downgrades as the growth window slides.
@db_periodic_task(crontab(hour="19", minute="45"))
def tiers_reevaluate_daily() -> int:
    count = 0
    for workspace in Workspace.objects.order_by("pk").iterator():
        summary = tiers_reevaluate(workspace=workspace)
        count += summary["up"] + summary["down"]
    return count


# 20:15 UTC is 04:15 in Asia/Shanghai, after expiry and re-evaluation: recompute every invariant, loudly.
@db_periodic_task(crontab(hour="20", minute="15"))
def points_ledger_check_daily() -> int:
    problems = ledger_check()
    for problem in problems[:100]:
        logger.error("loyalty ledger: %s %s %s", problem.kind, problem.subject, problem.detail)
    return len(problems)


def on_customers_changed(*, workspace_id, customer_ids, **_):
    try:
        customers_merged_apply(workspace_id=workspace_id, customer_ids=customer_ids)
    except Exception:
        logger.exception("loyalty: moving points after a merge failed, queued for retry")
        customers_merged_task(workspace_id, list(customer_ids))


@db_task(retries=5, retry_delay=30)
def customers_merged_task(workspace_id: int, customer_ids: list[int]) -> dict:
    return customers_merged_apply(workspace_id=workspace_id, customer_ids=customer_ids)


subscribe(CUSTOMERS_CHANGED, on_customers_changed)
subscribe(ORDER_PAID, on_order_paid)
subscribe(ORDER_REFUNDED, on_order_refunded)
