"""Batch event ingestion (issue 2 §5): validate, deduplicate by event_id, resolve identities, store.

Answers per event: accepted, duplicate (stored before; nothing changed) or rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, DateTimeField, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.event_catalogue import BUILTIN_BY_NAME, EventType
from siyu.customers.event_validation import EventRejected, validate_event
from siyu.customers.identity import Observation, identities_resolve
from siyu.customers.models import Customer, Event, EventDefinition


@dataclass
class EventOutcome:
    index: int
    event_id: str | None
    status: str  # accepted | duplicate | rejected
    code: str = ""
    message: str = ""
    message_en: str = ""
    field: str = ""
    customer_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "event_id": self.event_id, "status": self.status}
        if self.status == "rejected":
            body.update(code=self.code, message=self.message, message_en=self.message_en, field=self.field)
        if self.customer_id is not None:
            body["customer_id"] = self.customer_id
        return body


@dataclass
class BatchResult:
    outcomes: list[EventOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


def event_catalogue_for(workspace: Workspace) -> dict[str, EventType]:
    catalogue = dict(BUILTIN_BY_NAME)
    for definition in EventDefinition.objects.filter(workspace=workspace):
        catalogue[definition.name] = EventType(
            definition.name, definition.label or definition.name, definition.label or definition.name,
            {name: (spec.get("type", "string"), bool(spec.get("required"))) for name, spec in
             definition.properties.items()},
        )
    return catalogue


def events_ingest(*, workspace: Workspace, events: Any, now: datetime | None = None) -> BatchResult:
    if not isinstance(events, list):
        raise SiyuError("invalid_batch", "events 必须是数组", "events must be an array", status=400)
    if not events:
        raise SiyuError("empty_batch", "批次中没有事件", "the batch contains no events", status=400)
    limit = settings.SIYU_INGEST_MAX_EVENTS
    if len(events) > limit:
        raise SiyuError("batch_too_large", f"每批最多 {limit} 个事件", f"at most {limit} events per batch", status=413,
                        details={"max_events": limit, "received": len(events)})
    now = now or timezone.now()
    catalogue = event_catalogue_for(workspace)
    max_future = timedelta(seconds=settings.SIYU_INGEST_MAX_FUTURE_SECONDS)
    max_age = timedelta(days=settings.SIYU_INGEST_MAX_AGE_DAYS)

    result = BatchResult()
    valid: list[tuple[int, dict[str, Any]]] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(events):
        event_id = raw.get("event_id") if isinstance(raw, dict) and isinstance(raw.get("event_id"), str) else None
        try:
            event = validate_event(raw, catalogue=catalogue, now=now, max_future=max_future, max_age=max_age)
        except EventRejected as rejected:
            result.outcomes.append(EventOutcome(index, event_id, "rejected", rejected.code, rejected.message_zh,
                                                rejected.message_en, rejected.field))
            continue
        if event["event_id"] in first_index:
            result.outcomes.append(EventOutcome(index, event_id, "duplicate"))
            continue
        first_index[event["event_id"]] = index
        result.outcomes.append(EventOutcome(index, event_id, "accepted"))
        valid.append((index, event))

    if valid:
        stored = _store(workspace, valid, now)
        for index, customer_id in stored.items():
            outcome = result.outcomes[index]
            if customer_id is None:
                outcome.status = "duplicate"
            else:
                outcome.customer_id = customer_id
    return result


@transaction.atomic
def _store(workspace: Workspace, valid: list[tuple[int, dict[str, Any]]], now: datetime) -> dict[int, int | None]:
    ids = [event["event_id"] for _, event in valid]
    existing = set(Event.objects.filter(workspace=workspace, event_id__in=ids).values_list("event_id", flat=True))
    fresh = [(index, event) for index, event in valid if event["event_id"] not in existing]
    outcome: dict[int, int | None] = {index: None for index, event in valid if event["event_id"] in existing}
    if not fresh:
        return outcome
    resolutions = identities_resolve(
        workspace=workspace,
        observations=[Observation(event["keys"], event["occurred_at"], event["channel"]) for _, event in fresh],
    )
    rows = [
        Event(
            workspace=workspace, event_id=event["event_id"], type=event["type"], occurred_at=event["occurred_at"],
            received_at=now, identity_id=resolution.identity_id, channel=event["channel"],
            utm_source=event["utm"]["source"], utm_medium=event["utm"]["medium"],
            utm_campaign=event["utm"]["campaign"], utm_content=event["utm"]["content"],
            utm_term=event["utm"]["term"], properties=event["properties"],
        )
        for (_, event), resolution in zip(fresh, resolutions, strict=True)
    ]
    Event.objects.bulk_create(rows)
    latest: dict[int, datetime] = {}
    for (index, event), resolution in zip(fresh, resolutions, strict=True):
        outcome[index] = resolution.customer_id
        latest[resolution.customer_id] = max(latest.get(resolution.customer_id, event["occurred_at"]),
                                             event["occurred_at"])
    _touch_last_seen(latest)
    return outcome


def _touch_last_seen(latest: dict[int, datetime]) -> None:
    if not latest:
        return
    new_value = Case(*[When(pk=pk, then=Value(moment)) for pk, moment in latest.items()],
                     output_field=DateTimeField())
    Customer.objects.filter(pk__in=list(latest)).update(last_seen_at=Greatest(F("last_seen_at"), new_value))
