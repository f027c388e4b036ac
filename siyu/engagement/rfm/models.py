"""Per-customer scores: R, F, M and their inputs, the layer under each preset, and the lifecycle stage.

``CustomerScore`` is one row per customer (no row: never scored), rewritten by the scoring job; every move
between layers or stages is a ``LayerChange`` row (and an event automation can react to).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class LifecycleStage(models.TextChoices):
    NEW = "new", _("新客")
    ACTIVE = "active", _("活跃")
    SILENT = "silent", _("沉默")
    CHURNED = "churned", _("流失")


class CustomerScore(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="score")
    # R, F, M over paid orders (net of refunds): days since the last order (null: never ordered), orders, fen.
    recency_days = models.IntegerField(null=True, blank=True)
    frequency = models.IntegerField(default=0)
    monetary_fen = models.BigIntegerField(default=0)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    # Inputs of seed 002's thresholds.
    spend_30d_fen = models.BigIntegerField(default=0)
    spend_365d_fen = models.BigIntegerField(default=0)
    interactions_7d = models.IntegerField(default=0)
    views_30d = models.IntegerField(default=0)
    coupon_orders_365d = models.IntegerField(default=0)
    orders_365d = models.IntegerField(default=0)
    last_interaction_at = models.DateTimeField(null=True, blank=True)
    interaction_idle_days = models.IntegerField(null=True, blank=True)  # null: never interacted
    age_days = models.IntegerField(default=0)  # days since the customer was first seen (registration age)
    # Layers: seed 002's five tiers and seed 003's six classes (codes defined in rfm.presets).
    rfm5 = models.CharField(max_length=24, blank=True, default="")
    rfm6 = models.CharField(max_length=24, blank=True, default="")
    lifecycle = models.CharField(max_length=8, choices=LifecycleStage.choices, default=LifecycleStage.NEW)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "rfm5"]), models.Index(fields=["workspace", "rfm6"]),
                   models.Index(fields=["workspace", "lifecycle"])]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.rfm5}/{self.rfm6}/{self.lifecycle}"


class LayerChange(models.Model):
    """History of moves: kind is rfm5, rfm6 or lifecycle."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="layer_changes")
    kind = models.CharField(max_length=16)
    from_code = models.CharField(max_length=24, blank=True, default="")
    to_code = models.CharField(max_length=24)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "kind", "at"]), models.Index(fields=["customer", "at"])]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind}: {self.from_code} → {self.to_code}"


class RunState(models.TextChoices):
    IDLE = "idle", _("空闲")
    QUEUED = "queued", _("排队中")
    RUNNING = "running", _("计算中")
    DONE = "done", _("已完成")
    FAILED = "failed", _("失败")


class RfmSettings(models.Model):
    """A workspace's thresholds per preset (validated by rfm.presets) and the state of its scoring job.

    The row is also the job's lock: a run holds it (select_for_update) while it classifies and records moves,
    so two runs never record the same move twice.
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    thresholds = models.JSONField(default=dict, blank=True)  # {"rfm5": {...}, "rfm6": {...}, "lifecycle": {...}}
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(null=True, blank=True)
    run_state = models.CharField(max_length=8, choices=RunState.choices, default=RunState.IDLE)
    run_phase = models.CharField(max_length=24, blank=True, default="")
    run_progress = models.PositiveSmallIntegerField(default=0)  # percent
    run_started_at = models.DateTimeField(null=True, blank=True)
    run_finished_at = models.DateTimeField(null=True, blank=True)
    run_summary = models.JSONField(default=dict, blank=True)
    run_error = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"RFM settings of workspace {self.workspace_id}"


class PurchaseRollup(models.Model):
    """One row per customer who has purchases (``rfm.rollup``): enough to give lifetimes' RFM summary without
    reading the orders. Keyed by the orders' own customer (no merge mapping, like ``rfm_summary``); days are
    calendar days in Asia/Shanghai counted from 1970-01-01. Maintained from the order events and rebuilt in
    one statement (backfill, daily consistency run)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, primary_key=True, related_name="+")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    first_day = models.IntegerField()  # first buying day
    last_day = models.IntegerField()  # last buying day
    days = models.IntegerField()  # buying days (distinct days with a purchase)
    total_fen = models.BigIntegerField()  # net amount of every purchase
    first_day_fen = models.BigIntegerField()  # net amount of the first buying day's purchases

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.days} days {self.first_day}–{self.last_day}, {self.total_fen} fen"
