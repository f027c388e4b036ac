"""Writes of the analytics layer: recomputing the DailyMetric rollups of one workspace.

A refresh recomputes whole Shanghai days with set-based SQL (siyu.analytics.queries), so running it
twice changes nothing, and it only touches the days that can have changed since the last run:
- the trailing ``days`` days (today's numbers move all day long),
- every day that received an event stored since the last run (late events for old days included:
  events are append-only, so an Event.id watermark finds them),
- every day on which a customer merged or un-merged since the last run had an event (the number of
  distinct active customers of that day may change).
New customers per channel are recomputed whole each time: merges and un-merges change which
customers are live, and one GROUP BY over the customer table is cheap next to the event log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from siyu.analytics.models import Metric, RefreshState
from siyu.analytics.queries import DayRange, RollupQueries, day_ranges
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import local_day
from siyu.customers.models import MergeRecord

DEFAULT_TRAILING_DAYS = 2
MAX_TRAILING_DAYS = 3660


@dataclass
class RefreshReport:
    run: int
    full: bool
    ranges: list[DayRange] = field(default_factory=list)  # every metric recomputed
    active_only_ranges: list[DayRange] = field(default_factory=list)  # only active customers (merges)

    @property
    def days_recomputed(self) -> int:
        return sum((r.last - r.first).days + 1 for r in [*self.ranges, *self.active_only_ranges])


def analytics_refresh(*, workspace: Workspace, days: int | None = None, today: date | None = None,
                      using: str = "default") -> RefreshReport:
    """Bring the rollups of ``workspace`` up to date.

    ``days=None`` recomputes the whole history; ``days=N`` recomputes the last N Shanghai days (today
    included) plus whatever changed since the previous run. The first run of a workspace is always whole.
    """
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_TRAILING_DAYS):
        raise SiyuError("invalid_days", f"天数必须是 0 到 {MAX_TRAILING_DAYS} 之间的整数",
                        f"days must be an integer from 0 to {MAX_TRAILING_DAYS}")
    started = timezone.now()
    today = today or local_day(started)
    with transaction.atomic(using=using):
        state, _ = RefreshState.objects.using(using).select_for_update().get_or_create(workspace=workspace)
        queries = RollupQueries(workspace_id=workspace.pk, run=state.run + 1, using=using)
        # Read the watermark first: events stored while we work are picked up by the next run.
        through = queries.last_event_id()
        full = days is None or state.refreshed_at is None
        queries.prepare()
        if full:
            span = queries.event_day_span()
            event_ranges = [span] if span else []
            active_only: list[DayRange] = []
        else:
            event_days = {today - timedelta(days=back) for back in range(days)}
            event_days |= queries.days_of_events_after(state.event_id_through)
            changed = (MergeRecord.objects.using(using).filter(workspace=workspace)
                       .filter(Q(merged_at__gte=state.refreshed_at) | Q(unmerged_at__gte=state.refreshed_at))
                       .values_list("winner_id", "loser_id"))
            # A merge changes who is active on the days its customers had events, not how many events.
            merge_days = queries.days_of_customers_events([pk for pair in changed for pk in pair])
            event_ranges = day_ranges(event_days)
            active_only = day_ranges(merge_days - event_days)
        for day_range in event_ranges:
            queries.events_for_days(day_range)
            queries.active_customers_for_days(day_range)
            queries.drop_stale(day_range, [Metric.EVENTS.value, Metric.ACTIVE_CUSTOMERS.value])
        for day_range in active_only:
            queries.active_customers_for_days(day_range)
            queries.drop_stale(day_range, [Metric.ACTIVE_CUSTOMERS.value])
        if full:
            # Days outside the event span (all events of a workspace gone) keep no stale numbers.
            queries.drop_stale(DayRange(date(1, 1, 1), date(9999, 12, 31)),
                               [Metric.EVENTS.value, Metric.ACTIVE_CUSTOMERS.value])
        queries.new_customers_all()
        state.run = queries.run
        state.event_id_through = max(state.event_id_through, through)
        state.refreshed_at = started
        state.save(update_fields=["run", "event_id_through", "refreshed_at"])
    return RefreshReport(run=queries.run, full=full, ranges=event_ranges, active_only_ranges=active_only)
