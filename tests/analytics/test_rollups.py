"""Rollups against a plain-Python computation, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from siyu.analytics.models import DailyMetric, Metric, RefreshState
from siyu.analytics.queries import DayRange, day_ranges, dialect_for
from siyu.analytics.services import analytics_refresh
from siyu.core.errors import SiyuError
from siyu.customers.identity import Observation, customer_merge, customer_unmerge, identities_resolve
from siyu.customers.models import Customer, CustomerStatus, Event, MergeRecord
from tests.analytics.conftest import NOW, TODAY, build_brand, event, expected_rollups, ingest, stored_rollups

pytestmark = pytest.mark.django_db


def test_full_refresh_matches_python(brand):
    assert MergeRecord.objects.filter(workspace=brand).count() == 8  # the dataset really merges
    report = analytics_refresh(workspace=brand, today=TODAY)
    assert report.full
    expected = expected_rollups(brand)
    assert stored_rollups(brand) == expected
    # Merged customers are not counted twice: the rollup sums to the live customers.
    live = Customer.objects.filter(workspace=brand, status=CustomerStatus.ACTIVE).count()
    assert sum(v for (metric, _, _), v in expected.items() if metric == Metric.NEW_CUSTOMERS) == live
    assert live < Customer.objects.filter(workspace=brand).count()


def test_refresh_twice_changes_nothing(brand):
    analytics_refresh(workspace=brand, today=TODAY)
    first = stored_rollups(brand)
    analytics_refresh(workspace=brand, today=TODAY)
    analytics_refresh(workspace=brand, days=7, today=TODAY)
    assert stored_rollups(brand) == first
    assert RefreshState.objects.get(workspace=brand).run == 3


def test_day_boundaries_are_shanghai_midnight(workspace):
    ids = [{"kind": "openid", "namespace": "mp", "value": "o1"}]
    # 15:59:59 UTC is 23:59:59 on Feb 28 in Shanghai; 16:00:00 UTC is 00:00 on Mar 1.
    ingest(workspace, [
        event("before", "page_view", datetime(2026, 2, 28, 15, 59, 59, 999000, tzinfo=UTC), ids, channel="store"),
        event("after", "page_view", datetime(2026, 2, 28, 16, 0, 0, tzinfo=UTC), ids),
        event("late-evening", "message_in", datetime(2026, 3, 1, 15, 30, tzinfo=UTC), ids),
    ])
    analytics_refresh(workspace=workspace, today=TODAY)
    rows = stored_rollups(workspace)
    assert rows == {
        (Metric.NEW_CUSTOMERS, date(2026, 2, 28), "store"): 1,
        (Metric.EVENTS, date(2026, 2, 28), "page_view"): 1,
        (Metric.EVENTS, date(2026, 3, 1), "page_view"): 1,
        (Metric.EVENTS, date(2026, 3, 1), "message_in"): 1,
        (Metric.ACTIVE_CUSTOMERS, date(2026, 2, 28), ""): 1,
        (Metric.ACTIVE_CUSTOMERS, date(2026, 3, 1), ""): 1,  # one customer, two events: counted once
    }


def test_non_interaction_events_count_as_events_only(workspace):
    ids = [{"kind": "openid", "namespace": "mp", "value": "o1"}]
    at = datetime(2026, 3, 10, 4, tzinfo=UTC)
    ingest(workspace, [event("s", "subscribe", at - timedelta(days=3), ids), event("u", "unsubscribe", at, ids),
                       event("d", "wecom_delete", at, ids)])
    analytics_refresh(workspace=workspace, today=TODAY)
    rows = stored_rollups(workspace)
    assert rows[(Metric.EVENTS, date(2026, 3, 10), "unsubscribe")] == 1
    assert (Metric.ACTIVE_CUSTOMERS, date(2026, 3, 10), "") not in rows
    assert rows[(Metric.ACTIVE_CUSTOMERS, date(2026, 3, 7), "")] == 1


def test_late_event_for_old_day_is_counted_by_incremental_refresh(brand):
    analytics_refresh(workspace=brand, today=TODAY)
    old_day = datetime(2026, 1, 15, 16, 30, tzinfo=UTC)  # Jan 16 in Shanghai, far outside the trailing days
    ingest(brand, [event("late-1", "review", old_day, [{"kind": "openid", "namespace": "mp", "value": "o3"}]),
                   event("late-2", "review", old_day, [{"kind": "openid", "namespace": "mp", "value": "new"}],
                         channel="partner")])
    report = analytics_refresh(workspace=brand, days=1, today=TODAY)
    assert not report.full
    assert DayRange(date(2026, 1, 16), date(2026, 1, 16)) in report.ranges
    assert report.days_recomputed == 2  # today and the late event's day, not the whole history
    rows = stored_rollups(brand)
    assert rows == expected_rollups(brand)
    assert rows[(Metric.EVENTS, date(2026, 1, 16), "review")] == 2
    assert rows[(Metric.NEW_CUSTOMERS, date(2026, 1, 16), "partner")] == 1


def test_merge_and_unmerge_after_refresh_update_old_days(workspace):
    day = datetime(2026, 1, 20, 2, tzinfo=UTC)
    ingest(workspace, [
        event("a", "page_view", day, [{"kind": "openid", "namespace": "mp", "value": "oA"}], channel="douyin"),
        event("b", "page_view", day + timedelta(hours=1), [{"kind": "openid", "namespace": "mini", "value": "oB"}],
              channel="xiaohongshu"),
    ])
    analytics_refresh(workspace=workspace, today=TODAY)
    assert stored_rollups(workspace)[(Metric.ACTIVE_CUSTOMERS, date(2026, 1, 20), "")] == 2
    a, b = Customer.objects.filter(workspace=workspace).order_by("first_seen_at")
    record = customer_merge(workspace=workspace, winner_id=a.pk, loser_id=b.pk, reason="explicit")
    analytics_refresh(workspace=workspace, days=1, today=TODAY)
    rows = stored_rollups(workspace)
    assert rows == expected_rollups(workspace)
    assert rows[(Metric.ACTIVE_CUSTOMERS, date(2026, 1, 20), "")] == 1
    assert (Metric.NEW_CUSTOMERS, date(2026, 1, 20), "xiaohongshu") not in rows
    customer_unmerge(workspace=workspace, record_id=record.pk)
    analytics_refresh(workspace=workspace, days=1, today=TODAY)
    assert stored_rollups(workspace) == expected_rollups(workspace)
    assert stored_rollups(workspace)[(Metric.ACTIVE_CUSTOMERS, date(2026, 1, 20), "")] == 2


def test_events_written_directly_through_identity_resolution(workspace):
    """Rows stored by another writer (simulator, import) through identities_resolve + Event rows."""
    at = datetime(2026, 3, 30, 15, 59, tzinfo=UTC)
    resolved = identities_resolve(workspace=workspace, observations=[
        Observation([("openid", "mp", "p1")], at, "community"),
        Observation([("openid", "mp", "p2"), ("phone", "", "hash-1")], at + timedelta(minutes=2), "referral"),
        Observation([("openid", "mini", "p3"), ("phone", "", "hash-1")], at + timedelta(minutes=3), "store"),
    ])
    Event.objects.bulk_create([
        Event(workspace=workspace, event_id=f"d{k}", type="page_view", occurred_at=at + timedelta(minutes=k),
              received_at=NOW, identity_id=resolution.identity_id)
        for k, resolution in enumerate(resolved)
    ])
    analytics_refresh(workspace=workspace, today=TODAY)
    assert stored_rollups(workspace) == expected_rollups(workspace)
    assert stored_rollups(workspace)[(Metric.ACTIVE_CUSTOMERS, date(2026, 3, 31), "")] == 1  # p2 and p3 are one


def test_rollups_stay_inside_their_workspace(brand, other_workspace):
    build_brand(other_workspace, seed=9, people=10)
    analytics_refresh(workspace=brand, today=TODAY)
    analytics_refresh(workspace=other_workspace, today=TODAY)
    assert stored_rollups(brand) == expected_rollups(brand)
    assert stored_rollups(other_workspace) == expected_rollups(other_workspace)


def test_stale_rows_disappear(workspace):
    ids = [{"kind": "openid", "namespace": "mp", "value": "o1"}]
    ingest(workspace, [event("x", "page_view", NOW - timedelta(hours=1), ids)])
    analytics_refresh(workspace=workspace, today=TODAY)
    # Data removed at the source (e.g. a workspace purge) leaves no numbers behind after a refresh.
    Event.objects.filter(workspace=workspace).delete()
    analytics_refresh(workspace=workspace, days=1, today=TODAY)
    assert not DailyMetric.objects.filter(workspace=workspace, metric=Metric.EVENTS).exists()


@pytest.mark.parametrize("days", [-1, "7", 99999, True])
def test_bad_days_are_refused_and_change_nothing(workspace, days):
    with pytest.raises(SiyuError) as refused:
        analytics_refresh(workspace=workspace, days=days)
    assert refused.value.code == "invalid_days"
    assert not RefreshState.objects.filter(workspace=workspace).exists()


def test_day_ranges_collapse_contiguous_days():
    days = [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 9), date(2026, 1, 2)]
    assert day_ranges(days) == [DayRange(date(2026, 1, 1), date(2026, 1, 3)), DayRange(date(2026, 1, 9), date(2026, 1, 9))]


def test_dialect_names_the_engine(db):
    dialect = dialect_for()
    assert dialect.name in {"sqlite", "postgresql"}
    assert "occurred_at" in dialect.local_day("occurred_at")
