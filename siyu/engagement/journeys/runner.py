"""One tick of journey work at a given time, and "run time forward" for demos, tests and the console."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Min
from django.utils import timezone

from siyu.core.timeutil import local_day, start_of_local_day
from siyu.engagement.journeys.delivery import messages_deliver
from siyu.engagement.journeys.engine import runs_process, tasks_escalate
from siyu.engagement.journeys.models import (
    JourneyMessage,
    JourneyRun,
    JourneyStatus,
    MessageStatus,
    RunStatus,
)
from siyu.engagement.journeys.triggers import date_triggers_fire

MAX_ROUNDS = 50


def journeys_tick(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Fire date triggers, advance every due run, send every due message, escalate overdue tasks."""
    now = now or timezone.now()
    totals = {"entered": date_triggers_fire(now=now), "advanced": 0, "delivered": 0}
    for _ in range(MAX_ROUNDS):
        advanced = runs_process(now=now, limit=limit)
        delivered = messages_deliver(now=now, limit=limit)
        totals["advanced"] += advanced
        totals["delivered"] += delivered
        if advanced < limit and delivered < limit:
            break
    totals["escalated"] = tasks_escalate(now=now)
    return totals


def next_due(*, after: datetime) -> datetime | None:
    runs = JourneyRun.objects.filter(status=RunStatus.ACTIVE, journey__status=JourneyStatus.ACTIVE,
                                     next_at__gt=after).aggregate(at=Min("next_at"))["at"]
    messages = JourneyMessage.objects.filter(status__in=[MessageStatus.PLANNED, MessageStatus.DEFERRED],
                                             due_at__gt=after).aggregate(at=Min("due_at"))["at"]
    times = [moment for moment in (runs, messages) if moment is not None]
    return min(times) if times else None


def _next_midnight(moment: datetime) -> datetime:
    return start_of_local_day(local_day(moment) + timedelta(days=1))


def run_until(*, until: datetime, start: datetime | None = None, max_ticks: int = 10_000) -> dict[str, int]:
    """Simulate time from ``start`` (now) to ``until``: tick at every moment something falls due, plus at every
    local midnight (date triggers), so waits, quiet hours and caps behave as they would in real time."""
    now = start or timezone.now()
    totals = {"ticks": 0, "entered": 0, "advanced": 0, "delivered": 0, "escalated": 0}
    next_day = _next_midnight(now)
    for _ in range(max_ticks):
        done = journeys_tick(now=now)
        totals["ticks"] += 1
        for key, value in done.items():
            totals[key] = totals.get(key, 0) + value
        if now >= until:
            break
        upcoming = next_due(after=now)
        candidates = [moment for moment in (upcoming, next_day, until) if moment is not None and moment > now]
        now = min(candidates)
        if now >= next_day:
            next_day = _next_midnight(now)
    return totals
