"""Dashboard selectors read the rollups and shape them for charts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from siyu.analytics.models import Metric, RefreshState
from siyu.analytics.selectors import (
    active_customers_daily,
    channel_cac,
    channel_matrix,
    dashboard_summary,
    events_daily,
)
from siyu.analytics.services import analytics_refresh
from siyu.analytics.tasks import analytics_refresh_recent, analytics_refresh_task
from siyu.channels.services import channels_install_defaults
from siyu.core.errors import SiyuError
from siyu.core.timeutil import local_day
from siyu.customers.models import Customer, CustomerStatus, Event
from tests.analytics.conftest import TODAY, event, expected_rollups, ingest, stored_rollups

pytestmark = pytest.mark.django_db


@pytest.fixture
def refreshed(brand):
    analytics_refresh(workspace=brand, today=TODAY)
    return brand


def live_customers(workspace):
    return list(Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE)
                .values_list("first_seen_at", "first_channel"))


def test_summary_numbers(refreshed):
    summary = dashboard_summary(workspace=refreshed, today=TODAY)
    live = live_customers(refreshed)
    assert summary["customers_total"] == len(live)
    assert summary["new_this_month"] == sum(1 for seen, _ in live if local_day(seen) >= date(2026, 3, 1))
    window = [local_day(at) for at in Event.objects.filter(workspace=refreshed).values_list("occurred_at", flat=True)]
    assert summary["events_last_30_days"] == sum(1 for day in window if date(2026, 3, 2) <= day <= TODAY)
    assert summary["month"] == "2026-03"
    assert summary["refreshed_at"] == RefreshState.objects.get(workspace=refreshed).refreshed_at.isoformat()


def test_summary_before_any_refresh_is_honest(workspace):
    assert dashboard_summary(workspace=workspace, today=TODAY) == {
        "customers_total": 0, "new_this_month": 0, "events_last_30_days": 0, "active_today": 0,
        "month": "2026-03", "refreshed_at": None}


def test_channel_matrix(refreshed):
    matrix = channel_matrix(workspace=refreshed, months=4, today=TODAY)
    assert matrix["months"] == ["2025-12", "2026-01", "2026-02", "2026-03"]
    expected = Counter((channel, local_day(seen).strftime("%Y-%m")) for seen, channel in live_customers(refreshed))
    rows = {row["channel"]: row for row in matrix["rows"]}
    for (channel, month), count in expected.items():
        assert rows[channel]["counts"][matrix["months"].index(month)] == count
    assert matrix["total"] == len(live_customers(refreshed)) == sum(row["total"] for row in matrix["rows"])
    assert rows["xiaohongshu"]["label"] == "小红书"
    assert rows[""]["label"] == "未知"
    assert rows["wecom"]["counts"] == [0, 0, 0, 0]  # every SPEC T1 channel has a row, even when empty
    assert matrix["rows"][0]["channel"] == "official_account"
    assert channel_matrix(workspace=refreshed, months=1, today=TODAY, language="en")["rows"][0]["label"] == \
        "Official account"


def test_channel_cac(workspace):
    channels_install_defaults(workspace=workspace, costs_fen={"xiaohongshu": 1_000_000, "douyin": 500})
    at = datetime(2026, 3, 5, 3, tzinfo=UTC)
    ingest(workspace, [
        event(f"x{k}", "page_view", at, [{"kind": "openid", "namespace": "mp", "value": f"x{k}"}],
              channel="xiaohongshu") for k in range(3)
    ] + [event("d1", "page_view", at, [{"kind": "openid", "namespace": "mp", "value": "d1"}], channel="douyin"),
         event("d2", "page_view", at - timedelta(days=40), [{"kind": "openid", "namespace": "mp", "value": "d2"}],
               channel="douyin")])
    analytics_refresh(workspace=workspace, today=TODAY)
    rows = {row["channel"]: row for row in channel_cac(workspace=workspace, month=date(2026, 3, 1))}
    assert rows["xiaohongshu"] == {"channel": "xiaohongshu", "label": "小红书", "month": "2026-03",
                                   "cost_fen": 1_000_000, "new_customers": 3, "cac_fen": 333_333}
    assert rows["douyin"]["new_customers"] == 1 and rows["douyin"]["cac_fen"] == 500
    assert rows["store"]["cac_fen"] is None and rows["store"]["new_customers"] == 0
    assert rows["official_account"]["cost_fen"] == 0


def test_daily_series(refreshed):
    expected = expected_rollups(refreshed)
    active = active_customers_daily(workspace=refreshed, days=45, today=TODAY)
    assert len(active["days"]) == 45 and active["days"][-1] == "2026-03-31" and active["days"][0] == "2026-02-15"
    for label, value in zip(active["days"], active["values"], strict=True):
        assert value == expected.get((Metric.ACTIVE_CUSTOMERS, date.fromisoformat(label), ""), 0)
    events = events_daily(workspace=refreshed, days=45, today=TODAY)
    assert events["days"] == active["days"]
    for k, label in enumerate(events["days"]):
        day = date.fromisoformat(label)
        assert events["total"][k] == sum(v for (m, d, _), v in expected.items() if m == Metric.EVENTS and d == day)
    labels = {row["type"]: row["label"] for row in events["by_type"]}
    assert labels["page_view"] == "浏览页面"
    assert [row["total"] for row in events["by_type"]] == sorted((row["total"] for row in events["by_type"]),
                                                                 reverse=True)


@pytest.mark.parametrize(("selector", "argument"), [
    (channel_matrix, {"months": 0}), (channel_matrix, {"months": 37}), (active_customers_daily, {"days": 0}),
    (events_daily, {"days": 400}), (events_daily, {"days": "7"}),
])
def test_bad_windows_are_refused(workspace, selector, argument):
    with pytest.raises(SiyuError) as refused:
        selector(workspace=workspace, **argument)
    assert refused.value.code == "invalid_window" and refused.value.status == 400


def test_management_command(brand, capsys):
    call_command("analytics_refresh", "--workspace", brand.slug)
    assert "run=1" in capsys.readouterr().out
    call_command("analytics_refresh", "--workspace", brand.slug, "--days", "3")
    assert stored_rollups(brand) == expected_rollups(brand)
    with pytest.raises(CommandError, match="not found"):
        call_command("analytics_refresh", "--workspace", "nobody")
    with pytest.raises(CommandError, match="days"):
        call_command("analytics_refresh", "--workspace", brand.slug, "--days", "-2")
    assert RefreshState.objects.get(workspace=brand).run == 2


def test_tasks_run_the_same_refresh(brand, other_workspace):
    assert analytics_refresh_task.call_local(brand.pk, None) == 1
    analytics_refresh_recent.call_local()
    assert RefreshState.objects.get(workspace=brand).run == 2
    assert RefreshState.objects.get(workspace=other_workspace).run == 1
    assert stored_rollups(brand) == expected_rollups(brand)
