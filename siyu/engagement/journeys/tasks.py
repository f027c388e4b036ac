"""Journeys' background work: the minute tick (Huey periodic) and the domain-event subscriptions.

Subscribers only let customers in (small, idempotent inserts); if that fails the same call is queued as a
retried Huey task. The tick advances runs and sends messages.
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task

from siyu.core.domain_events import EVENTS_INGESTED, subscribe
from siyu.engagement.journeys import triggers
from siyu.engagement.journeys.runner import journeys_tick

logger = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="*"))
@lock_task("journeys-tick")
def journeys_tick_task() -> dict:
    return journeys_tick()


@db_task(retries=5, retry_delay=30)
def journeys_trigger_task(kind: str, payload: dict) -> int:
    return _HANDLERS[kind](**payload)


def _segment_entered(**payload) -> int:
    return triggers.on_segment_changed(entered=True, **payload)


def _segment_exited(**payload) -> int:
    return triggers.on_segment_changed(entered=False, **payload)


_HANDLERS = {
    EVENTS_INGESTED: triggers.on_events_ingested,
    triggers.SEGMENT_ENTERED: _segment_entered,
    triggers.SEGMENT_EXITED: _segment_exited,
    triggers.LAYER_CHANGED: triggers.on_layer_changed,
    triggers.TAGS_CHANGED: triggers.on_tags_changed,
}


def _subscriber(kind: str):
    def handle(**payload):
        try:
            _HANDLERS[kind](**payload)
        except Exception:
            logger.exception("journeys: %s trigger failed, queued for retry", kind)
            journeys_trigger_task(kind, payload)

    handle.__name__ = f"journeys_on_{kind.replace('.', '_')}"
    return handle


for _kind in _HANDLERS:
    subscribe(_kind, _subscriber(_kind), background=_kind == EVENTS_INGESTED)  # one batch task, off the request
