"""One row per ``siyu simulate`` run: its parameters, progress and where the true parameters were written."""

from __future__ import annotations

from django.db import models

from siyu.core.models import Workspace


class SimulationStatus(models.TextChoices):
    RUNNING = "running", "进行中"
    DONE = "done", "完成"
    FAILED = "failed", "失败"


class SimulationRun(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="simulation_runs")
    seed = models.BigIntegerField()
    customers = models.IntegerField()
    months = models.IntegerField()
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=SimulationStatus.choices, default=SimulationStatus.RUNNING)
    customers_written = models.IntegerField(default=0)
    events_written = models.BigIntegerField(default=0)
    truth_path = models.CharField(max_length=512, blank=True, default="")
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "seed"], name="simulationrun_unique_seed")]

    def __str__(self) -> str:
        return f"simulation {self.seed} → {self.workspace} ({self.status})"
