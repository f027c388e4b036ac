"""Writing staff tasks. ``task_create`` is idempotent by ``(workspace, source, ref)``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.models import Workspace
from siyu.engagement.inbox.models import StaffTask, TaskLevel

# Default SLA per level (minutes): junior staff answer within the hour, experts within four.
DEFAULT_SLA_MINUTES = {TaskLevel.JUNIOR: 60, TaskLevel.EXPERT: 240}


def task_create(*, workspace: Workspace, source: str, ref: str, title: str, customer_id: int | None = None,
                level: str = TaskLevel.JUNIOR, body: str = "", payload: dict | None = None,
                assignee_id: int | None = None, sla_minutes: int | None = None,
                now: datetime | None = None) -> tuple[StaffTask, bool]:
    """Create the task once; a second call with the same key returns the first task and ``False``."""
    now = now or timezone.now()
    minutes = sla_minutes if sla_minutes is not None else DEFAULT_SLA_MINUTES[TaskLevel(level)]
    existing = StaffTask.objects.filter(workspace=workspace, source=source, ref=ref).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            task = StaffTask.objects.create(
                workspace=workspace, source=source, ref=ref, title=title[:200], customer_id=customer_id,
                level=level, body=body, payload=payload or {}, assignee_id=assignee_id,
                due_at=now + timedelta(minutes=minutes), created_at=now)
    except IntegrityError:  # a concurrent caller made it first
        return StaffTask.objects.get(workspace=workspace, source=source, ref=ref), False
    return task, True
