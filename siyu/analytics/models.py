"""Rollups the dashboard reads: one row per (workspace, Shanghai day, metric, dimension).

The rollups are derived data: ``siyu.analytics.services.analytics_refresh`` recomputes them from the
customer and event tables with set-based SQL, so they can always be rebuilt from scratch.
"""

from __future__ import annotations

from django.db import models

from siyu.core.models import Workspace


class Metric(models.TextChoices):
    # day = Shanghai day of first_seen_at, dimension = first_channel; live (not merged) customers only.
    NEW_CUSTOMERS = "new_customers", "新增私域客户"
    # dimension = "": distinct live customers with at least one interaction event that Shanghai day.
    ACTIVE_CUSTOMERS = "active_customers", "活跃客户"
    # dimension = event type.
    EVENTS = "events", "事件数"


class DailyMetric(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()  # a calendar day in Asia/Shanghai
    metric = models.CharField(max_length=24, choices=Metric.choices)
    dimension = models.CharField(max_length=48, blank=True, default="")
    value = models.BigIntegerField(default=0)
    # The refresh run that last wrote the row: rows a run did not write in the range it recomputed are stale.
    run = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "metric", "day", "dimension"], name="dailymetric_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric}[{self.dimension}]={self.value}"


class RefreshState(models.Model):
    """How far the rollups of one workspace have read the append-only event log."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    # Highest Event.id already rolled up: events above it arrived since (late events included).
    event_id_through = models.BigIntegerField(default=0)
    run = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"RefreshState(workspace={self.workspace_id}, through={self.event_id_through})"
