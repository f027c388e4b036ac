"""Growth tasks (成长任务): 新手 tasks (complete profile, first order, join a community) once ever, 日常 tasks
(check-in, browse products, share) once per Shanghai day.

Progress is driven by domain events and store actions (``mission_progress``): each distinct step (a product
viewed, an order paid, a day checked in) is a ``TaskStep`` row unique per progress, so a replayed event
counts nothing. The reward is claimed by the customer (``mission_claim``); the claim marks the progress under
a row lock and the points ref ``task:<task>:<customer>:<period>`` makes the reward exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import local_day
from siyu.customers.models import Customer
from siyu.loyalty.member_rules import task_period
from siyu.loyalty.models import GrowthTask, Reason, TaskKind, TaskProgress, TaskStep, TaskTrigger
from siyu.loyalty.points import points_earn

# (kind, trigger, title, target, reward points, reward growth): product defaults, editable in the console.
DEFAULT_TASKS = (
    ("newbie", "profile_completed", "完善资料", 1, 50, 20),
    ("newbie", "first_order", "首单购买", 1, 100, 50),
    ("newbie", "community_joined", "加入社群", 1, 30, 10),
    ("daily", "checkin", "每日签到", 1, 2, 1),
    ("daily", "browse", "浏览 3 件商品", 3, 5, 2),
    ("daily", "share", "分享 1 次", 1, 5, 2),
)
KIND_OF_TRIGGER = {trigger: kind for kind, trigger, *_ in DEFAULT_TASKS}
MAX_TARGET = 100
MAX_REWARD = 1_000_000


def tasks_ensure(*, workspace: Workspace) -> list[GrowthTask]:
    """The workspace's tasks, the defaults created on first use (a task is switched off, never deleted)."""
    tasks = list(GrowthTask.objects.filter(workspace=workspace))
    if len(tasks) < len(DEFAULT_TASKS):
        have = {(task.kind, task.trigger) for task in tasks}
        for sort, (kind, trigger, title, target, points, growth) in enumerate(DEFAULT_TASKS):
            if (kind, trigger) not in have:
                try:
                    with transaction.atomic():
                        GrowthTask.objects.create(workspace=workspace, kind=kind, trigger=trigger, title=title,
                                                  target=target, reward_points=points, reward_growth=growth,
                                                  sort=sort)
                except IntegrityError:
                    pass  # created concurrently
        tasks = list(GrowthTask.objects.filter(workspace=workspace))
    return tasks


def task_update(*, workspace: Workspace, task_id: Any, fields: dict[str, Any], actor: Any = None) -> GrowthTask:
    """Operators edit a task's title, target, rewards and whether it is on (validated; audited)."""
    from siyu.core.services import audit_record

    task = _task(workspace, task_id, active_only=False)
    title = str(fields.get("title", task.title)).strip()
    if not title or len(title) > 64:
        raise SiyuError("task_invalid", "任务名称不能为空，最多 64 个字", "The title is required (64 characters max)",
                        details={"field": "title"})
    numbers = {}
    for key, high in (("target", MAX_TARGET), ("reward_points", MAX_REWARD), ("reward_growth", MAX_REWARD)):
        text = str(fields.get(key, getattr(task, key))).strip()
        low = 1 if key == "target" else 0
        if not text.isdigit() or not low <= int(text) <= high:
            raise SiyuError("task_invalid", f"任务的数值应为 {low}–{high} 的整数",
                            f"Task numbers must be whole numbers from {low} to {high}", details={"field": key})
        numbers[key] = int(text)
    with transaction.atomic():
        task.title = title
        task.target, task.reward_points, task.reward_growth = (numbers["target"], numbers["reward_points"],
                                                               numbers["reward_growth"])
        task.is_active = bool(fields.get("is_active", task.is_active))
        task.save()
        audit_record(workspace=workspace, actor=actor, action="growth_task_update", target_type="growth_task",
                     target_id=task.pk, title=title, is_active=task.is_active, **numbers)
    return task


def mission_progress(*, workspace: Workspace | int, customer: Customer, trigger: str, key: str,
                     at: datetime | None = None) -> list[TaskProgress]:
    """Count one distinct step (``key``) towards the customer's active tasks of ``trigger`` in the current
    period; a step already counted counts nothing. Returns the progress rows that moved."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    if trigger not in TaskTrigger.values or customer.workspace_id != workspace_id:
        return []
    at = at or timezone.now()
    day = local_day(at)
    moved = []
    for task in GrowthTask.objects.filter(workspace_id=workspace_id, trigger=trigger, is_active=True):
        period = task_period(task.kind, day)
        with transaction.atomic():
            progress = _progress(task, customer, period)
            try:
                with transaction.atomic():
                    TaskStep.objects.create(progress=progress, key=str(key)[:128], at=at)
            except IntegrityError:
                continue  # this step was counted before: a replay
            TaskProgress.objects.filter(pk=progress.pk).update(count=F("count") + 1)
            TaskProgress.objects.filter(pk=progress.pk, completed_at__isnull=True, count__gte=task.target).update(
                completed_at=at)
            progress.refresh_from_db()
            moved.append(progress)
    return moved


@dataclass(frozen=True)
class TaskView:
    task: GrowthTask
    period: str
    count: int
    completed: bool
    claimed: bool

    @property
    def shown_count(self) -> int:
        return min(self.count, self.task.target)

    @property
    def percent(self) -> int:
        return min(100, self.count * 100 // self.task.target)


def tasks_for_customer(*, workspace: Workspace, customer: Customer, now: datetime | None = None) -> list[TaskView]:
    """The active tasks with the customer's progress in their current period (新手 first)."""
    day = local_day(now or timezone.now())
    tasks = [task for task in tasks_ensure(workspace=workspace) if task.is_active]
    periods = {task.pk: task_period(task.kind, day) for task in tasks}
    rows = {(row.task_id, row.period): row for row in TaskProgress.objects.filter(
        customer=customer, task__in=tasks, period__in=set(periods.values()))}
    views = []
    for task in sorted(tasks, key=lambda item: (item.kind != TaskKind.NEWBIE, item.sort, item.pk)):
        row = rows.get((task.pk, periods[task.pk]))
        views.append(TaskView(task, periods[task.pk], row.count if row else 0,
                              bool(row and row.completed_at), bool(row and row.claimed_at)))
    return views


def mission_claim(*, workspace: Workspace, customer: Customer, task_id: Any,
                  now: datetime | None = None) -> TaskProgress:
    """Claim a completed task's reward (points and/or growth value): exactly once per period."""
    from siyu.loyalty.tiers import growth_record, tier_evaluate

    if customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    task = _task(workspace, task_id)
    now = now or timezone.now()
    period = task_period(task.kind, local_day(now))
    with transaction.atomic():
        progress = (TaskProgress.objects.select_for_update()
                    .filter(task=task, customer=customer, period=period).first())
        if progress is None or progress.completed_at is None:
            raise SiyuError("task_not_completed", "任务尚未完成", "The task is not completed yet", status=409,
                            details={"task_id": task.pk, "count": progress.count if progress else 0,
                                     "target": task.target})
        if progress.claimed_at is not None:
            raise SiyuError("task_already_claimed", "奖励已领取", "The reward was already claimed", status=409,
                            details={"task_id": task.pk, "period": period})
        ref = f"task:{task.pk}:{customer.pk}:{period}"
        if task.reward_points:
            points_earn(workspace=workspace, customer=customer, amount=task.reward_points, reason=Reason.TASK,
                        ref=ref, at=now, note=task.title, details={"task_id": task.pk, "period": period})
        if task.reward_growth:
            growth_record(workspace=workspace, customer=customer, source="task", ref=ref, spend_fen=0,
                          growth=task.reward_growth, at=now)
        progress.claimed_at = now
        progress.save(update_fields=["claimed_at"])
    if task.reward_growth:
        tier_evaluate(customer=customer, allow_downgrade=False, reason="task")
    return progress


def task_stats(*, workspace: Workspace, since_period: str) -> list[dict]:
    """Per task: customers who completed and who claimed (新手: all time; 日常: periods since ``since_period``)."""
    stats = []
    for task in tasks_ensure(workspace=workspace):
        rows = TaskProgress.objects.filter(task=task)
        if task.kind == TaskKind.DAILY:
            rows = rows.filter(period__gte=since_period)
        totals = rows.aggregate(completed=Count("pk", filter=Q(completed_at__isnull=False)),
                                claimed=Count("pk", filter=Q(claimed_at__isnull=False)))
        stats.append({"task": task, "completed": totals["completed"], "claimed": totals["claimed"]})
    return stats


def _task(workspace: Workspace, task_id: Any, *, active_only: bool = True) -> GrowthTask:
    text = str(task_id or "").strip()
    task = None
    if text.isdigit() and len(text) <= 18:
        rows = GrowthTask.objects.filter(workspace=workspace, pk=int(text))
        task = (rows.filter(is_active=True) if active_only else rows).first()
    if task is None:
        raise SiyuError("task_not_found", "任务不存在", "Task not found", status=404)
    return task


def _progress(task: GrowthTask, customer: Customer, period: str) -> TaskProgress:
    row = TaskProgress.objects.filter(task=task, customer=customer, period=period).first()
    if row is None:
        try:
            with transaction.atomic():
                row = TaskProgress.objects.create(workspace_id=task.workspace_id, task=task, customer=customer,
                                                  period=period)
        except IntegrityError:
            row = TaskProgress.objects.get(task=task, customer=customer, period=period)
    return row
