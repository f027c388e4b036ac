"""Reads for the home dashboard: numbers from the DailyMetric rollups, shaped for charts.

Every function returns plain dicts and lists (JSON-ready); labels are Chinese by default. Nothing
here touches the event log, so the dashboard stays fast at any size; run ``analytics_refresh`` (the
hourly task does) to bring the rollups up to date.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from siyu.analytics.models import DailyMetric, Metric, RefreshState
from siyu.channels.models import Channel
from siyu.core.channel_codes import CHANNELS, channel_label
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import local_day
from siyu.customers.event_catalogue import BUILTIN_BY_NAME

MAX_DAYS = 366
MAX_MONTHS = 36


def _today(today: date | None) -> date:
    return today or local_day(timezone.now())


def _check_window(value: int, limit: int, what_zh: str, what_en: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise SiyuError("invalid_window", f"{what_zh}必须是 1 到 {limit} 之间的整数",
                        f"{what_en} must be an integer from 1 to {limit}")


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _rollup(workspace: Workspace, metric: str, first: date | None = None, last: date | None = None):
    rows = DailyMetric.objects.filter(workspace=workspace, metric=metric)
    if first is not None:
        rows = rows.filter(day__gte=first)
    if last is not None:
        rows = rows.filter(day__lte=last)
    return rows


def _total(rows) -> int:
    return rows.aggregate(total=Sum("value"))["total"] or 0


def dashboard_summary(*, workspace: Workspace, today: date | None = None) -> dict[str, Any]:
    """The KPI numbers at the top of the home page."""
    today = _today(today)
    state = RefreshState.objects.filter(workspace=workspace).first()
    return {
        # Every live customer has exactly one first_seen day, so the rollup sums to the live total.
        "customers_total": _total(_rollup(workspace, Metric.NEW_CUSTOMERS)),
        "new_this_month": _total(_rollup(workspace, Metric.NEW_CUSTOMERS, _month_start(today), today)),
        "events_last_30_days": _total(_rollup(workspace, Metric.EVENTS, today - timedelta(days=29), today)),
        "active_today": _total(_rollup(workspace, Metric.ACTIVE_CUSTOMERS, today, today)),
        "month": _month_start(today).strftime("%Y-%m"),
        "refreshed_at": state.refreshed_at.isoformat() if state and state.refreshed_at else None,
    }


def _channel_order(codes) -> list[str]:
    known = [channel.code for channel in CHANNELS]
    return known + sorted(code for code in codes if code not in known)


def channel_matrix(*, workspace: Workspace, months: int = 6, today: date | None = None,
                   language: str = "zh-hans") -> dict[str, Any]:
    """New private-domain customers per channel per month (SPEC T5), the last ``months`` months."""
    _check_window(months, MAX_MONTHS, "月数", "months")
    today = _today(today)
    first_month = _add_months(_month_start(today), -(months - 1))
    month_starts = [_add_months(first_month, k) for k in range(months)]
    labels = [month.strftime("%Y-%m") for month in month_starts]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(labels, 0))
    for day, code, value in _rollup(workspace, Metric.NEW_CUSTOMERS, first_month, today).values_list(
        "day", "dimension", "value"
    ):
        counts[code][day.strftime("%Y-%m")] += value
    rows = []
    for code in _channel_order(counts):
        values = [counts[code][label] for label in labels] if code in counts else [0] * months
        rows.append({"channel": code, "label": channel_label(code, language), "counts": values,
                     "total": sum(values)})
    totals = [sum(row["counts"][k] for row in rows) for k in range(months)]
    return {"months": labels, "rows": rows, "totals": totals, "total": sum(totals)}


def channel_cac(*, workspace: Workspace, month: date | None = None, language: str = "zh-hans") -> list[dict[str, Any]]:
    """Customer acquisition cost per channel for one month: the channel's monthly cost (fen) divided by
    the customers it brought that month, rounded to whole fen; None when it brought nobody.

    The registry keeps one current monthly cost per channel, so past months are costed at today's cost.
    """
    month = _month_start(month or _today(None))
    last_day = _add_months(month, 1) - timedelta(days=1)
    new = dict(_rollup(workspace, Metric.NEW_CUSTOMERS, month, last_day).values("dimension")
               .annotate(total=Sum("value")).values_list("dimension", "total"))
    costs = dict(Channel.objects.filter(workspace=workspace).values_list("code", "monthly_cost_fen"))
    result = []
    for code in _channel_order(set(new) | set(costs)):
        if code not in new and code not in costs:
            continue
        customers, cost = new.get(code, 0), costs.get(code, 0)
        cac = (2 * cost + customers) // (2 * customers) if customers else None  # half-up on whole fen
        result.append({"channel": code, "label": channel_label(code, language), "month": month.strftime("%Y-%m"),
                       "cost_fen": cost, "new_customers": customers, "cac_fen": cac})
    return result


def _days(today: date, days: int) -> list[date]:
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


def active_customers_daily(*, workspace: Workspace, days: int = 30, today: date | None = None) -> dict[str, Any]:
    """Distinct customers with at least one interaction, per Shanghai day, zero-filled."""
    _check_window(days, MAX_DAYS, "天数", "days")
    today = _today(today)
    series = _days(today, days)
    found = dict(_rollup(workspace, Metric.ACTIVE_CUSTOMERS, series[0], today).values_list("day", "value"))
    return {"days": [day.isoformat() for day in series], "values": [found.get(day, 0) for day in series]}


def events_daily(*, workspace: Workspace, days: int = 30, today: date | None = None,
                 language: str = "zh-hans") -> dict[str, Any]:
    """Events per Shanghai day, in total and per event type (types by volume, largest first)."""
    _check_window(days, MAX_DAYS, "天数", "days")
    today = _today(today)
    series = _days(today, days)
    index = {day: k for k, day in enumerate(series)}
    per_type: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for day, event_type, value in _rollup(workspace, Metric.EVENTS, series[0], today).values_list(
        "day", "dimension", "value"
    ):
        per_type[event_type][index[day]] += value
    by_type = []
    for event_type, values in sorted(per_type.items(), key=lambda item: (-sum(item[1]), item[0])):
        known = BUILTIN_BY_NAME.get(event_type)
        label = (known.label_zh if language.startswith("zh") else known.label_en) if known else event_type
        by_type.append({"type": event_type, "label": label, "values": values, "total": sum(values)})
    totals = [sum(row["values"][k] for row in by_type) for k in range(days)]
    return {"days": [day.isoformat() for day in series], "total": totals, "by_type": by_type}
