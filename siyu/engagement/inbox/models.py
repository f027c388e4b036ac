"""Staff tasks: work automation hands to people — the 20% for junior staff and 10% for experts of the
"721" split (SPEC O8), and conversations the service bot hands off (O9). Each task has an SLA deadline.

A task is created idempotently by ``(workspace, source, ref)``: a journey step retried after a worker crash,
or a handoff replayed, finds the task it already made.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class TaskLevel(models.TextChoices):
    JUNIOR = "junior", _("初级员工")
    EXPERT = "expert", _("专家")


class TaskStatus(models.TextChoices):
    OPEN = "open", _("待处理")
    CLAIMED = "claimed", _("处理中")
    DONE = "done", _("已完成")
    CANCELLED = "cancelled", _("已取消")


class StaffTask(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=16)  # journey | service | community | manual
    ref = models.CharField(max_length=128)  # idempotency key within the source (e.g. "run:12:step:3")
    level = models.CharField(max_length=8, choices=TaskLevel.choices, default=TaskLevel.JUNIOR)
    title = models.CharField(max_length=200)
    priority = models.PositiveSmallIntegerField(default=0)  # 1: a customer whose tier has 优先客服
    body = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    status = models.CharField(max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    due_at = models.DateTimeField()  # the SLA deadline
    created_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "source", "ref"], name="inbox_task_unique")]
        indexes = [models.Index(fields=["workspace", "status", "due_at"]),
                   models.Index(fields=["assignee", "status"])]

    def __str__(self) -> str:
        return f"{self.source}:{self.ref} {self.status}"
