"""Writing staff tasks. ``task_create`` is idempotent by ``(workspace, source, ref)``; claim, complete and
reassign move a task under a row lock (``select_for_update``), so two staff claiming the same task at once
see one win and the other told who has it.

Transitions: open → claimed (claim, reassign) → done (complete); claimed → claimed (reassign);
open/claimed → cancelled (cancel). Done and cancelled are final.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Membership, Workspace
from siyu.core.services import audit_record
from siyu.engagement.inbox.models import StaffTask, TaskLevel, TaskStatus

# Default SLA per level (minutes): junior staff answer within the hour, experts within four.
DEFAULT_SLA_MINUTES = {TaskLevel.JUNIOR: 60, TaskLevel.EXPERT: 240}


def task_create(*, workspace: Workspace, source: str, ref: str, title: str, customer_id: int | None = None,
                level: str = TaskLevel.JUNIOR, body: str = "", payload: dict | None = None,
                assignee_id: int | None = None, sla_minutes: int | None = None, priority: int = 0,
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
                level=level, body=body, payload=payload or {}, assignee_id=assignee_id, priority=priority,
                status=TaskStatus.CLAIMED if assignee_id else TaskStatus.OPEN, claimed_at=now if assignee_id else None,
                due_at=now + timedelta(minutes=minutes), created_at=now)
    except IntegrityError:  # a concurrent caller made it first
        return StaffTask.objects.get(workspace=workspace, source=source, ref=ref), False
    return task, True


OUTCOME_MAX = 255
LIVE = (TaskStatus.OPEN, TaskStatus.CLAIMED)


def _locked(*, workspace: Workspace, task_id: Any) -> StaffTask:
    text = str(task_id).strip()
    task = (StaffTask.objects.select_for_update().filter(workspace=workspace, pk=int(text)).first()
            if text.isdigit() and len(text) <= 18 else None)
    if task is None:
        raise SiyuError("task_not_found", "任务不存在", "Task not found", status=404)
    return task


def _finished(task: StaffTask) -> SiyuError:
    return SiyuError("task_finished", "任务已结束，不能再处理", "The task is already finished", status=409,
                     details={"status": task.status})


def task_claim(*, workspace: Workspace, task_id: Any, user: Any, now: datetime | None = None) -> StaffTask:
    """Take an open task. A task someone else holds is refused (409) — the first claim wins."""
    with transaction.atomic():
        task = _locked(workspace=workspace, task_id=task_id)
        if task.status not in LIVE:
            raise _finished(task)
        if task.status == TaskStatus.CLAIMED:
            if task.assignee_id == user.pk:
                return task
            raise SiyuError("task_taken", "任务已被其他同事领取", "Another colleague has already claimed this task",
                            status=409, details={"assignee_id": task.assignee_id})
        task.status, task.assignee_id, task.claimed_at = TaskStatus.CLAIMED, user.pk, now or timezone.now()
        task.save(update_fields=["status", "assignee", "claimed_at"])
        audit_record(workspace=workspace, actor=user, action="task_claim", target_type="staff_task", target_id=task.pk)
    return task


def task_complete(*, workspace: Workspace, task_id: Any, user: Any, outcome: str, may_override: bool = False,
                  now: datetime | None = None) -> StaffTask:
    """Finish a task with what came of it. Only its holder may (or a manager: ``may_override``)."""
    outcome = (outcome or "").strip()
    if not outcome:
        raise SiyuError("outcome_required", "请填写处理结果", "Please describe the outcome", details={"field": "outcome"})
    if len(outcome) > OUTCOME_MAX:
        raise SiyuError("outcome_too_long", f"处理结果最多 {OUTCOME_MAX} 字", f"The outcome is at most {OUTCOME_MAX} "
                        "characters", details={"field": "outcome"})
    with transaction.atomic():
        task = _locked(workspace=workspace, task_id=task_id)
        if task.status not in LIVE:
            raise _finished(task)
        if task.assignee_id != user.pk and not may_override:
            raise SiyuError("task_not_yours", "请先领取任务再完成", "Claim the task before completing it", status=409)
        task.status, task.outcome, task.done_at = TaskStatus.DONE, outcome, now or timezone.now()
        if task.assignee_id is None:
            task.assignee_id = user.pk
        task.save(update_fields=["status", "outcome", "done_at", "assignee"])
        audit_record(workspace=workspace, actor=user, action="task_complete", target_type="staff_task",
                     target_id=task.pk, outcome=outcome)
    return task


def task_reassign(*, workspace: Workspace, task_id: Any, user: Any, to_user_id: Any, may_override: bool = False,
                  now: datetime | None = None) -> StaffTask:
    """Hand a task to a colleague of the workspace (its holder may, a manager always)."""
    text = str(to_user_id).strip()
    target = (Membership.objects.filter(workspace=workspace, user_id=int(text)).select_related("user").first()
              if text.isdigit() and len(text) <= 18 else None)
    if target is None or target.role == "analyst":
        raise SiyuError("assignee_invalid", "只能转给本工作空间中可处理任务的同事",
                        "Tasks can only go to a colleague in this workspace who handles tasks",
                        details={"field": "to_user"})
    with transaction.atomic():
        task = _locked(workspace=workspace, task_id=task_id)
        if task.status not in LIVE:
            raise _finished(task)
        if task.assignee_id not in (None, user.pk) and not may_override:
            raise SiyuError("task_not_yours", "只能转交自己领取的任务", "You can only pass on tasks you hold", status=409)
        previous = task.assignee_id
        task.status, task.assignee_id, task.claimed_at = TaskStatus.CLAIMED, target.user_id, now or timezone.now()
        task.save(update_fields=["status", "assignee", "claimed_at"])
        audit_record(workspace=workspace, actor=user, action="task_reassign", target_type="staff_task",
                     target_id=task.pk, from_user=previous, to_user=target.user_id)
    return task
