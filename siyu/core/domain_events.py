"""Domain events delivered on commit: how one layer reacts to another without importing it (STYLE.md).

``publish`` inside a transaction registers delivery with ``transaction.on_commit``: subscribers run only
after the data they will read is committed, and never if the transaction rolls back. Subscribers should
do little themselves — typically enqueue a background task — because they run in the publisher's
request. Subscriptions live in each app's ``tasks`` module, imported on the first publish.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]

# Names of the events the platform publishes, with their payloads.
EVENTS_INGESTED = "customers.events_ingested"  # workspace_id: int, customer_ids: list[int]
CUSTOMERS_CHANGED = "customers.changed"  # workspace_id: int, customer_ids: list[int] (merge, un-merge, link)
RULE_TAG_CHANGED = "customers.rule_tag_changed"  # workspace_id: int, tag_id: int

_subscribers: dict[str, list[Handler]] = defaultdict(list)
_discovered = False


def subscribe(event_name: str, handler: Handler) -> None:
    """Call ``handler(**payload)`` after every committed ``publish(event_name, ...)`` (once per handler)."""
    if handler not in _subscribers[event_name]:
        _subscribers[event_name].append(handler)


def unsubscribe(event_name: str, handler: Handler) -> None:
    if handler in _subscribers[event_name]:
        _subscribers[event_name].remove(handler)


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
