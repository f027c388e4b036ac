"""Segment refresh in the background: on schedule (``refresh_minutes``) and, debounced, after changes.

A domain event only *marks* the segments it may affect as stale (one cheap UPDATE) and, when it marked
any, schedules one refresh of the workspace's stale segments ``DEBOUNCE_SECONDS`` later. Event batches
arriving meanwhile find the segments already stale and schedule nothing: a burst of ingestion costs
one refresh per segment, never one per batch.
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.domain_events import CUSTOMERS_CHANGED, EVENTS_INGESTED, RULE_TAG_CHANGED, subscribe
from siyu.engagement.segments.services import (
    EVENT_FIELDS,
    ORDER_FIELDS,
    TAG_FIELDS,
    segments_mark_stale,
    segments_refresh_due,
    segments_refresh_stale,
)

logger = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 60
ORDER_EVENTS = ("orders.order_paid", "orders.order_refunded")
TIER_CHANGED = "loyalty.tier_changed"
LAYER_CHANGED = "engagement.layer_changed"  # siyu.engagement.rfm.events: RFM layer or lifecycle moves
SCORE_FIELDS = frozenset({"rfm5", "rfm6", "lifecycle", "recency_days", "frequency", "monetary_fen"})


@db_task(retries=2, retry_delay=30)
def segments_refresh_stale_task(workspace_id: int | None = None) -> dict:
    return segments_refresh_stale(workspace_id=workspace_id)


@db_periodic_task(crontab(minute="*"))
def segments_refresh_due_task() -> list[int]:
    """Every minute: the segments whose own ``refresh_minutes`` have passed (time windows move with time)."""
    return segments_refresh_due()


def _mark(workspace_id: int, fields) -> None:
    if segments_mark_stale(workspace_id=workspace_id, fields=fields):
        segments_refresh_stale_task.schedule(args=(workspace_id,), delay=DEBOUNCE_SECONDS)


def _on_events_ingested(*, workspace_id: int, **_) -> None:
    _mark(workspace_id, EVENT_FIELDS)


def _on_customers_changed(*, workspace_id: int, **_) -> None:
    _mark(workspace_id, None)


def _on_rule_tag_changed(*, workspace_id: int, **_) -> None:
    _mark(workspace_id, TAG_FIELDS)


def _on_order(*, workspace_id: int, **_) -> None:
    _mark(workspace_id, ORDER_FIELDS)


def _on_layer_changed(*, workspace_id: int, **_) -> None:
    _mark(workspace_id, SCORE_FIELDS)


def _on_tier_changed(*, workspace_id: int, **_) -> None:
    _mark(workspace_id, {"tier"})


subscribe(EVENTS_INGESTED, _on_events_ingested, background=True)
subscribe(CUSTOMERS_CHANGED, _on_customers_changed)
subscribe(RULE_TAG_CHANGED, _on_rule_tag_changed)
for _name in ORDER_EVENTS:
    subscribe(_name, _on_order, background=True)  # off the payment notification request
subscribe(TIER_CHANGED, _on_tier_changed)
subscribe(LAYER_CHANGED, _on_layer_changed)
