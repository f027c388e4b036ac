"""Background work of the analytics layer: thin wrappers over siyu.analytics.services."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.analytics.services import DEFAULT_TRAILING_DAYS, analytics_refresh
from siyu.core.models import Workspace


@db_periodic_task(crontab(minute="*/10"))
def analytics_refresh_recent() -> None:
    """Every ten minutes (a few seconds of set-based SQL at 1M customers): recent days plus whatever
    arrived or merged since the last run, for every workspace, so the dashboard follows live activity."""
    for workspace in Workspace.objects.order_by("pk"):
        analytics_refresh(workspace=workspace, days=DEFAULT_TRAILING_DAYS)


@db_task()
def analytics_refresh_task(workspace_id: int, days: int | None = DEFAULT_TRAILING_DAYS) -> int:
    """On demand (e.g. after a simulation or an import): returns the refresh run number."""
    workspace = Workspace.objects.get(pk=workspace_id)
    return analytics_refresh(workspace=workspace, days=days).run
