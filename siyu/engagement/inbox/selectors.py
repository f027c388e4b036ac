"""Reading staff tasks: the inbox views (mine / unassigned / overdue / all), what a member may see, SLA state."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from siyu.core.models import Membership, Workspace
from siyu.engagement.inbox.models import StaffTask, TaskStatus

VIEWS = ("mine", "unassigned", "overdue", "all", "done")
LIVE = (TaskStatus.OPEN, TaskStatus.CLAIMED)


def tasks_visible(*, workspace: Workspace, membership: Membership) -> QuerySet[StaffTask]:
    """All tasks for managers and analysts; service staff see tasks of their own customers, of customers no one
    owns, without a customer, or handed to them (the same rule as the customer list)."""
    tasks = StaffTask.objects.filter(workspace=workspace)
    if not membership.sees_all_customers:
        tasks = tasks.filter(Q(customer__isnull=True) | Q(customer__owner__isnull=True)
                             | Q(customer__owner_id=membership.user_id) | Q(assignee_id=membership.user_id))
    return tasks


def tasks_overdue(*, workspace: Workspace, now: datetime | None = None) -> QuerySet[StaffTask]:
    """Live tasks past their SLA deadline (uses the (workspace, status, due_at) index)."""
    return StaffTask.objects.filter(workspace=workspace, status__in=LIVE, due_at__lt=now or timezone.now())


def task_list(*, workspace: Workspace, membership: Membership, view: str = "mine", level: str = "",
              now: datetime | None = None) -> QuerySet[StaffTask]:
    now = now or timezone.now()
    tasks = tasks_visible(workspace=workspace, membership=membership)
    if view == "mine":
        tasks = tasks.filter(assignee_id=membership.user_id, status__in=LIVE)
    elif view == "unassigned":
        tasks = tasks.filter(status=TaskStatus.OPEN, assignee__isnull=True)
    elif view == "overdue":
        tasks = tasks.filter(status__in=LIVE, due_at__lt=now)
    elif view == "done":
        tasks = tasks.filter(status__in=[TaskStatus.DONE, TaskStatus.CANCELLED])
    else:
        tasks = tasks.filter(status__in=LIVE)
    if level:
        tasks = tasks.filter(level=level)
    order = ["-done_at"] if view == "done" else ["-priority", "due_at", "pk"]
    return tasks.select_related("assignee", "customer").order_by(*order)


def task_counts(*, workspace: Workspace, membership: Membership, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    tasks = tasks_visible(workspace=workspace, membership=membership).filter(status__in=LIVE)
    return {"mine": tasks.filter(assignee_id=membership.user_id).count(),
            "unassigned": tasks.filter(status=TaskStatus.OPEN, assignee__isnull=True).count(),
            "overdue": tasks.filter(due_at__lt=now).count(), "all": tasks.count()}


def sla_seconds_left(task: StaffTask, *, now: datetime | None = None) -> int:
    """Seconds until the deadline (negative when overdue)."""
    return int((task.due_at - (now or timezone.now())).total_seconds())
