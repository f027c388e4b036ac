"""Console page 员工任务 (the staff inbox): tasks from journeys' "721" routing and the service bot's
handoffs — mine / unassigned / overdue / all / done, by level (junior / expert), with SLA countdown and
overdue highlighting; claim, reply to the customer (service handoffs: through the same channel as the bot,
logged in the conversation), complete with an outcome, reassign.

Roles: admins, operators and service staff act; analysts read. Service staff see only tasks of their own
customers or unowned ones (and tasks handed to them), as in the customer list; managers may complete or
reassign any task. Bad input is refused with a clear message and nothing is written.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.core.models import Membership
from siyu.engagement.inbox import selectors
from siyu.engagement.inbox.models import StaffTask, TaskLevel, TaskStatus
from siyu.engagement.inbox.services import task_claim, task_complete, task_reassign
from siyu.engagement.service import selectors as service_selectors
from siyu.engagement.service.models import Conversation
from siyu.engagement.service.services import staff_reply


def _visible_task(request, task_id) -> StaffTask:
    text = str(task_id)
    task = (selectors.tasks_visible(workspace=request.workspace, membership=request.membership)
            .select_related("assignee", "customer").filter(pk=int(text)).first()
            if text.isdigit() and len(text) <= 18 else None)
    if task is None:
        raise SiyuError("task_not_found", "任务不存在", "Task not found", status=404)
    return task


def _sla(task: StaffTask, now) -> dict:
    seconds = selectors.sla_seconds_left(task, now=now)
    live = task.status in (TaskStatus.OPEN, TaskStatus.CLAIMED)
    return {"seconds": seconds, "minutes": abs(seconds) // 60, "overdue": live and seconds < 0, "live": live}


@console_view()
def inbox_list(request):
    view = request.GET.get("view", "mine")
    view = view if view in selectors.VIEWS else "mine"
    level = request.GET.get("level", "")
    level = level if level in TaskLevel.values else ""
    now = timezone.now()
    tasks = list(selectors.task_list(workspace=request.workspace, membership=request.membership, view=view,
                                     level=level, now=now)[:200])
    rows = [{"task": task, "sla": _sla(task, now)} for task in tasks]
    return page(request, "console/engagement/inbox/list.html", {
        "rows": rows, "view": view, "level": level, "levels": TaskLevel.choices,
        "counts": selectors.task_counts(workspace=request.workspace, membership=request.membership, now=now),
        "views": [("mine", _("我的")), ("unassigned", _("待领取")), ("overdue", _("已超时")), ("all", _("全部进行中")),
                  ("done", _("已完成"))],
    }, active="inbox")


@console_view()
def inbox_task(request, task_id: int):
    task = _visible_task(request, task_id)
    now = timezone.now()
    conversation = None
    conversation_id = (task.payload or {}).get("conversation_id")
    if task.source == "service" and conversation_id:
        conversation = Conversation.objects.filter(workspace=request.workspace, pk=conversation_id).first()
    role = request.membership.role
    colleagues = (Membership.objects.filter(workspace=request.workspace).exclude(role="analyst")
                  .select_related("user").order_by("user__username"))
    return page(request, "console/engagement/inbox/task.html", {
        "task": task, "sla": _sla(task, now), "conversation": conversation,
        "conversation_messages": service_selectors.conversation_messages(conversation=conversation)
        if conversation else [],
        "can_act": request.membership.can_edit, "is_manager": role in MANAGER_ROLES,
        "is_mine": task.assignee_id == request.user.pk, "colleagues": colleagues,
    }, active="inbox")


def _back(task_id) -> str:
    return reverse("console:inbox_task", args=[task_id])


@require_POST
@console_view(edit=True)
def inbox_claim(request, task_id: int):
    task = _visible_task(request, task_id)
    task_claim(workspace=request.workspace, task_id=task.pk, user=request.user)
    messages.success(request, _("已领取任务"))
    return redirect(_back(task.pk))


@require_POST
@console_view(edit=True)
def inbox_complete(request, task_id: int):
    task = _visible_task(request, task_id)
    task_complete(workspace=request.workspace, task_id=task.pk, user=request.user,
                  outcome=request.POST.get("outcome", ""), may_override=request.membership.role in MANAGER_ROLES)
    messages.success(request, _("任务已完成"))
    return redirect(reverse("console:inbox") + "?view=mine")


@require_POST
@console_view(edit=True)
def inbox_reassign(request, task_id: int):
    task = _visible_task(request, task_id)
    task_reassign(workspace=request.workspace, task_id=task.pk, user=request.user,
                  to_user_id=request.POST.get("to_user", ""), may_override=request.membership.role in MANAGER_ROLES)
    messages.success(request, _("已转交任务"))
    return redirect(_back(task.pk))


@require_POST
@console_view(edit=True)
def inbox_reply(request, task_id: int):
    task = _visible_task(request, task_id)
    if task.status not in (TaskStatus.OPEN, TaskStatus.CLAIMED):
        raise SiyuError("task_finished", "任务已结束，不能再回复", "The task is already finished", status=409)
    if task.assignee_id != request.user.pk:
        raise SiyuError("task_not_yours", "请先领取任务再回复客户", "Claim the task before replying", status=409)
    conversation_id = (task.payload or {}).get("conversation_id")
    conversation = (Conversation.objects.filter(workspace=request.workspace, pk=conversation_id)
                    .select_related("app", "workspace").first() if task.source == "service" and conversation_id
                    else None)
    if conversation is None:
        raise SiyuError("task_no_conversation", "该任务没有客服会话，无法回复", "This task has no conversation to reply to",
                        status=409)
    staff_reply(conversation=conversation, user=request.user, text=request.POST.get("text", ""))
    messages.success(request, _("已回复客户"))
    return redirect(_back(task.pk) + "#conversation")


urlpatterns = [
    path("inbox/", inbox_list, name="inbox"),
    path("inbox/<int:task_id>/", inbox_task, name="inbox_task"),
    path("inbox/<int:task_id>/claim/", inbox_claim, name="inbox_claim"),
    path("inbox/<int:task_id>/complete/", inbox_complete, name="inbox_complete"),
    path("inbox/<int:task_id>/reassign/", inbox_reassign, name="inbox_reassign"),
    path("inbox/<int:task_id>/reply/", inbox_reply, name="inbox_reply"),
]
