"""Assemble the home dashboard from the analytics selectors (DailyMetric rollups), shaped for plotly.

Nothing here invents numbers: an empty series is drawn as "no data yet" by the page.
"""

from __future__ import annotations

from datetime import datetime

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from siyu.analytics.selectors import active_customers_daily, channel_matrix, dashboard_summary, events_daily
from siyu.core.models import Workspace

MONTHS = 6
DAYS = 30


def dashboard_context(*, workspace: Workspace) -> dict:
    language = get_language() or "zh-hans"
    summary = dashboard_summary(workspace=workspace)
    matrix = channel_matrix(workspace=workspace, months=MONTHS, language=language)
    active = active_customers_daily(workspace=workspace, days=DAYS)
    events = events_daily(workspace=workspace, days=DAYS, language=language)
    charts = {
        "channel_matrix": {
            "x": matrix["months"] if matrix["total"] else [],
            "series": [{"name": row["label"], "y": row["counts"]} for row in matrix["rows"] if row["total"]],
        },
        "active_daily": {"x": active["days"] if any(active["values"]) else [], "y": active["values"],
                         "name": _("活跃客户")},
        "events_daily": {"x": events["days"] if any(events["total"]) else [], "y": events["total"],
                         "name": _("事件数"), "color": "#12b886"},
    }
    refreshed = summary.get("refreshed_at")
    return {"summary": summary, "charts": charts, "matrix": matrix,
            "refreshed_at": datetime.fromisoformat(refreshed) if refreshed else None}
