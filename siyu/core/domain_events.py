"""Domain events delivered on commit: how one layer reacts to another without importing it (STYLE.md).

``publish`` inside a transaction registers delivery with ``transaction.on_commit``: subscribers run only
after the data they will read is committed, and never if the transaction rolls back. Subscribers should
do little themselves — typically enqueue a background task — because they run in the publisher's
request. Subscriptions live in each app's ``tasks`` module, imported on the first publish.

``subscribe(..., background=True)`` moves a subscriber out of the publisher's request: after the commit,
ONE Huey task per publish (``domain_event_deliver_task``) calls every background subscriber of the event,
so the request pays one queue write however many areas listen. The dispatcher calls the registered
handlers (it imports none). A handler that raises is retried alone, later, up to ``BACKGROUND_RETRIES``
times; background subscribers must therefore tolerate replays. If the queue cannot be written, the
background subscribers run inline (logged): nothing is lost when the worker or the queue is down.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.db import transaction
from huey.contrib.djhuey import db_task

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]

# Names of the events the platform publishes, with their payloads.
EVENTS_INGESTED = "customers.events_ingested"  # workspace_id: int, customer_ids: list[int]
CUSTOMERS_CHANGED = "customers.changed"  # workspace_id: int, customer_ids: list[int] (merge, un-merge, link)
RULE_TAG_CHANGED = "customers.rule_tag_changed"  # workspace_id: int, tag_id: int

BACKGROUND_RETRIES = 5
BACKGROUND_RETRY_DELAY = 30  # seconds
# The test suite sets this (tests/conftest.py): background subscribers then run in-process right after the
# commit, exactly as the worker would run them, so tests stay synchronous without a worker.
BACKGROUND_INLINE = False

_subscribers: dict[str, list[Handler]] = defaultdict(list)
_background: dict[str, list[Handler]] = defaultdict(list)
_discovered = False


def subscribe(event_name: str, handler: Handler, *, background: bool = False) -> None:
    """Call ``handler(**payload)`` after every committed ``publish(event_name, ...)`` (once per handler):
    in the publisher's request, or with ``background=True`` from the event's one background task."""
    unsubscribe(event_name, handler)
    (_background if background else _subscribers)[event_name].append(handler)


def unsubscribe(event_name: str, handler: Handler) -> None:
    for registry in (_subscribers, _background):
        if handler in registry[event_name]:
            registry[event_name].remove(handler)


def handler_name(handler: Handler) -> str:
    """Stable name of a handler across processes (the worker finds it again by this name)."""
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__name__', repr(handler))}"


def _discover_subscribers() -> None:
    global _discovered
    if not _discovered:
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")
        _discovered = True


def publish(event_name: str, /, *, using: str | None = None, **payload: Any) -> None:
    """Deliver ``payload`` to the subscribers of ``event_name`` once the current transaction commits.

    Outside a transaction (autocommit) delivery is immediate. A failing subscriber is logged and does
    not stop the others, nor undo the committed work.
    """
    _discover_subscribers()
    transaction.on_commit(partial(_deliver, event_name, payload), using=using)


def _deliver(event_name: str, payload: dict[str, Any]) -> None:
    for handler in list(_subscribers.get(event_name, ())):
        try:
            handler(**payload)
        except Exception:
            logger.exception("subscriber %r of %s failed", handler, event_name)
    if _background.get(event_name):
        _enqueue_background(event_name, payload)


def _enqueue_background(event_name: str, payload: dict[str, Any]) -> None:
    if BACKGROUND_INLINE:
        domain_event_deliver_task.call_local(event_name, payload)
        return
    try:
        domain_event_deliver_task(event_name, payload)
    except Exception:
        # The queue (Redis, or the SQLite queue file) could not be written: deliver now rather than lose it.
        logger.exception("domain event %s: background queue unavailable, delivering inline", event_name)
        deliver_background(event_name, payload)


def deliver_background(event_name: str, payload: dict[str, Any], handler_names: list[str] | None = None) -> list[str]:
    """Call the background subscribers of ``event_name`` (only those named, when ``handler_names`` is given);
    return the names of those that failed. One failure does not stop the others."""
    _discover_subscribers()
    failed = []
    for handler in list(_background.get(event_name, ())):
        name = handler_name(handler)
        if handler_names is not None and name not in handler_names:
            continue
        try:
            handler(**payload)
        except Exception:
            logger.exception("background subscriber %s of %s failed", name, event_name)
            failed.append(name)
    return failed


@db_task()
def domain_event_deliver_task(event_name: str, payload: dict[str, Any], handler_names: list[str] | None = None,
                              attempt: int = 0) -> list[str]:
    """The one background task of a publish: every background subscriber, each failure retried alone."""
    failed = deliver_background(event_name, payload, handler_names)
    if failed and attempt < BACKGROUND_RETRIES:
        domain_event_deliver_task.schedule(args=(event_name, payload, failed, attempt + 1),
                                           delay=BACKGROUND_RETRY_DELAY * (attempt + 1))
    elif failed:
        logger.error("domain event %s: subscribers %s gave up after %s retries", event_name, failed, attempt)
    return failed


def events_ingested(workspace_id: int, customer_ids: Iterable[int | None]) -> None:
    """Tell the rest of the platform that these customers have new events (call inside the ingestion
    transaction; rule tags are re-evaluated after it commits)."""
    ids = sorted({int(pk) for pk in customer_ids if pk is not None})
    if ids:
        publish(EVENTS_INGESTED, workspace_id=int(workspace_id), customer_ids=ids)


def customers_changed(workspace_id: int, customer_ids: Iterable[int | None]) -> None:
    """Customers whose identities (hence events) moved: after a merge, un-merge or explicit link."""
    ids = sorted({int(pk) for pk in customer_ids if pk is not None})
    if ids:
        publish(CUSTOMERS_CHANGED, workspace_id=int(workspace_id), customer_ids=ids)
