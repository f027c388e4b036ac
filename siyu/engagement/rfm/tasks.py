"""RFM background work (thin wrappers over services) and its domain-event subscriptions.

A paid or refunded order re-scores its customer right after the order's transaction commits (one customer:
a few indexed queries); if that fails, the same work is queued as a retried Huey task. Every workspace is
re-scored daily (windows slide with time alone), and on demand from the console.

The purchase rollup behind ``rfm_summary`` (``rfm.rollup``) is refreshed for the order's customer from the
background delivery of every paid, refunded (in full or in part) or cancelled order, and rebuilt set-based
before the daily re-scoring (consistency: a late payment of an order cancelled before, or a refresh that failed
all its retries, is caught there). Merges move no orders, so they leave the rollup as it is.
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.commerce.orders.events import ORDER_CANCELLED, ORDER_PAID, ORDER_REFUNDED
from siyu.core.domain_events import subscribe
from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.engagement.rfm.rollup import rollup_rebuild, rollup_refresh
from siyu.engagement.rfm.services import rfm_recompute, rfm_rescore_customers

logger = logging.getLogger(__name__)


def _live_ids(customer_ids: list[int]) -> list[int]:
    """The customers to re-score: these, or the profile each was merged into."""
    rows = Customer.objects.filter(pk__in=customer_ids).values_list("pk", "merged_into_id")
    return sorted({merged or pk for pk, merged in rows})


@db_task(retries=5, retry_delay=30)
def rfm_rescore_task(workspace_id: int, customer_ids: list[int]) -> dict:
    return rfm_rescore_customers(workspace_id=workspace_id, customer_ids=_live_ids(customer_ids))


@db_task(retries=5, retry_delay=30)
def rfm_rollup_refresh_task(workspace_id: int, customer_ids: list[int]) -> int:
    return rollup_refresh(workspace_id=workspace_id, customer_ids=customer_ids)


@db_task(retries=2, retry_delay=60)
def rfm_recompute_task(workspace_id: int) -> dict:
    if not Workspace.objects.filter(pk=workspace_id).exists():
        return {}
    return rfm_recompute(workspace=workspace_id)


# 20:30 UTC is 04:30 in Asia/Shanghai: after the night's tier and rule-tag runs.
@db_periodic_task(crontab(hour="20", minute="30"))
def rfm_recompute_daily() -> int:
    count = 0
    for workspace_id in Workspace.objects.order_by("pk").values_list("pk", flat=True):
        try:
            rollup_rebuild(workspace_id=workspace_id)
        except Exception:
            logger.exception("rfm: daily rollup rebuild of workspace %s failed", workspace_id)
        try:
            rfm_recompute(workspace=workspace_id)
            count += 1
        except Exception:
            logger.exception("rfm: daily recompute of workspace %s failed", workspace_id)
    return count


def on_order_changed(*, workspace_id, customer_id=None, **_):
    if customer_id is None:
        return
    try:
        rfm_rescore_customers(workspace_id=workspace_id, customer_ids=_live_ids([customer_id]))
    except Exception:
        logger.exception("rfm: re-scoring customer %s failed, queued for retry", customer_id)
        rfm_rescore_task(workspace_id, [customer_id])


def on_order_purchases_changed(*, workspace_id, customer_id=None, **_):
    """The order's customer's rollup row, recomputed from the orders (idempotent: replays are harmless)."""
    if customer_id is None:
        return
    try:
        rollup_refresh(workspace_id=workspace_id, customer_ids=[customer_id])
    except Exception:
        logger.exception("rfm: rollup refresh of customer %s failed, queued for retry", customer_id)
        rfm_rollup_refresh_task(workspace_id, [customer_id])


subscribe(ORDER_PAID, on_order_changed, background=True)  # off the payment notification request
subscribe(ORDER_REFUNDED, on_order_changed, background=True)
for _event in (ORDER_PAID, ORDER_REFUNDED, ORDER_CANCELLED):
    subscribe(_event, on_order_purchases_changed, background=True)
