"""Who enters which journey: domain events (events ingested, segment entry/exit, layer moves, tag changes),
the date triggers (birthday, first-seen anniversary, a fixed date) and activation.

Every entry carries a key — "once" for journeys a customer enters once, else the event, day or move that let
them in — and the unique (journey, customer, entry key) makes a replayed trigger a no-op.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.core.cache import cache
from django.utils import timezone

from siyu.core.timeutil import SHANGHAI, local_day
from siyu.customers.models import Customer, Event
from siyu.engagement.journeys.engine import runs_enter
from siyu.engagement.journeys.models import Journey, JourneyStatus, JourneyVersion

SEGMENT_ENTERED = "engagement.segment_entered"  # workspace_id, segment_id, customer_ids
SEGMENT_EXITED = "engagement.segment_exited"  # workspace_id, segment_id, customer_ids
LAYER_CHANGED = "engagement.layer_changed"  # workspace_id, kind, moves [(customer_id, from, to)]
TAGS_CHANGED = "customers.tags_changed"  # workspace_id, tag_id, added: [ids], removed: [ids]
EVENT_LOOKBACK = timedelta(days=1)  # events received this recently count as "new" for an ingestion batch


def _active(workspace_id: int, trigger_type: str):
    for journey in Journey.objects.filter(workspace_id=workspace_id, status=JourneyStatus.ACTIVE,
                                          trigger_type=trigger_type):
        version = JourneyVersion.objects.filter(journey=journey, version=journey.version).first()
        if version is not None:
            yield journey, version.definition["trigger"]


def _key(trigger: dict, specific: str) -> str:
    return "once" if trigger.get("reentry", "once") == "once" else specific


def on_events_ingested(*, workspace_id: int, customer_ids, now: datetime | None = None, **_) -> int:
    now = now or timezone.now()
    entered = 0
    for journey, trigger in _active(workspace_id, "event"):
        since = max(journey.activated_at or now, now - EVENT_LOOKBACK)
        rows = (Event.objects.filter(workspace_id=workspace_id, type=trigger["event_type"],
                                     identity__customer_id__in=list(customer_ids), received_at__gte=since)
                .values_list("identity__customer_id", "event_id").order_by("occurred_at"))
        keys: dict[int, str] = {}
        for customer_id, event_id in rows:
            keys.setdefault(customer_id, _key(trigger, f"event:{event_id}"))
        if trigger.get("reentry") == "every":  # one run per event
            for customer_id, event_id in rows:
                entered += runs_enter(journey=journey, customer_ids=[customer_id], entry_key=f"event:{event_id}",
                                      now=now)
        else:
            entered += runs_enter(journey=journey, customer_ids=list(keys), entry_key="once", now=now)
    return entered


def on_segment_changed(*, workspace_id: int, segment_id: int, customer_ids, entered: bool,
                       now: datetime | None = None, **_) -> int:
    now = now or timezone.now()
    kind = "segment_entered" if entered else "segment_exited"
    count = 0
    for journey, trigger in _active(workspace_id, kind):
        if int(trigger["segment_id"]) == int(segment_id):
            count += runs_enter(journey=journey, customer_ids=customer_ids, now=now,
                                entry_key=_key(trigger, f"{kind}:{segment_id}:{local_day(now)}"))
    return count


def on_layer_changed(*, workspace_id: int, kind: str, moves, now: datetime | None = None, **_) -> int:
    now = now or timezone.now()
    count = 0
    for journey, trigger in _active(workspace_id, "layer"):
        if trigger["kind"] != kind:
            continue
        wanted_from = str(trigger.get("from") or "")
        ids = [int(move[0]) for move in moves
               if str(move[2]) == str(trigger["to"]) and (not wanted_from or str(move[1]) == wanted_from)]
        if ids:
            count += runs_enter(journey=journey, customer_ids=ids, now=now,
                                entry_key=_key(trigger, f"layer:{kind}:{trigger['to']}:{local_day(now)}"))
    return count


def on_tags_changed(*, workspace_id: int, tag_id: int, added=(), removed=(), now: datetime | None = None,
                    **_) -> int:
    now = now or timezone.now()
    count = 0
    for journey, trigger in _active(workspace_id, "tag"):
        if int(trigger["tag_id"]) != int(tag_id):
            continue
        change = trigger.get("change", "added")
        ids = list(added if change == "added" else removed)
        if ids:
            count += runs_enter(journey=journey, customer_ids=ids, now=now,
                                entry_key=_key(trigger, f"tag:{tag_id}:{change}:{now.isoformat()}"))
    return count


def _date_customers(workspace_id: int, trigger: dict, day) -> list[int]:
    customers = Customer.objects.filter(workspace_id=workspace_id, merged_into__isnull=True)
    if trigger["kind"] == "fixed":
        return list(customers.values_list("pk", flat=True)) if str(day) == trigger["date"] else []
    if trigger["kind"] == "birthday":
        # attributes.birthday as YYYY-MM-DD or MM-DD
        month_day = day.strftime("%m-%d")
        return [pk for pk, birthday in customers.filter(attributes__has_key="birthday")
                .values_list("pk", "attributes__birthday") if str(birthday or "")[-5:] == month_day]
    # anniversary of the first visit (not on the day itself)
    return [pk for pk, first in customers.values_list("pk", "first_seen_at")
            if (local_first := first.astimezone(SHANGHAI).date()).year < day.year
            and (local_first.month, local_first.day) == (day.month, day.day)]


def date_triggers_fire(*, now: datetime | None = None) -> int:
    """Date journeys: each matching customer enters once per day (key ``date:<day>``), at the trigger's time."""
    now = now or timezone.now()
    day = local_day(now)
    count = 0
    for journey in Journey.objects.filter(status=JourneyStatus.ACTIVE, trigger_type="date"):
        # The scan is idempotent (entry keys) but not free: once per journey version and day is enough.
        if not cache.add(f"journeys:date:{journey.pk}:{journey.version}:{int(journey.activated_at.timestamp())}:{day}", 1, 2 * 86400):
            continue
        version = JourneyVersion.objects.filter(journey=journey, version=journey.version).first()
        trigger = version.definition["trigger"]
        hours, minutes = (int(part) for part in str(trigger.get("time") or "10:00").split(":"))
        start_at = datetime.combine(day, time(hours, minutes), tzinfo=SHANGHAI)
        ids = _date_customers(journey.workspace_id, trigger, day)
        if ids:
            count += runs_enter(journey=journey, customer_ids=ids, now=now, start_at=max(start_at, now),
                                entry_key=_key(trigger, f"date:{day}") if trigger["kind"] != "fixed" else f"date:{day}")
    return count


def on_activation(*, journey: Journey, now: datetime) -> int:
    """A segment journey with ``include_existing`` takes in the segment's current members at once."""
    from siyu.engagement.segments.models import SegmentMember

    trigger = journey.definition["trigger"]
    if trigger["type"] == "segment_entered" and trigger.get("include_existing", True):
        ids = list(SegmentMember.objects.filter(segment_id=int(trigger["segment_id"]))
                   .values_list("customer_id", flat=True))
        return runs_enter(journey=journey, customer_ids=ids, now=now,
                          entry_key=_key(trigger, f"segment_entered:{trigger['segment_id']}:{local_day(now)}"))
    return 0
