"""The weekly rhythm (社群节奏, seed 003 §3.3): a plan per group type — content slots every day and one
themed activity per weekday — that turns into work at the planned (Shanghai) times: a staff task for
the group's owner, or a WeCom 群发 to the group (``add_msg_template`` with ``chat_type`` group, which
the group owner confirms in the client).

Each (group, slot, day) produces at most once: the RhythmRun row is inserted first, under a unique key,
and only the caller that inserted it goes on to create the task or the send. A crash after the insert
loses that one item rather than sending it twice (at most once is the right side for messages).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.core.timeutil import SHANGHAI, local_day
from siyu.engagement.communities import domain
from siyu.engagement.communities.models import (
    EVERY_DAY,
    Community,
    CommunityType,
    RhythmAction,
    RhythmRun,
    RhythmSlot,
)
from siyu.engagement.inbox.services import task_create
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.work import wecom
from siyu.wechat.work.models import CustomerGroup

LOOKBACK = timedelta(hours=3)  # a slot whose time passed longer ago than this (e.g. the worker was down) is skipped
TASK_SOURCE = "community"


def rhythm_slots(*, workspace: Workspace, community_type: str) -> list[RhythmSlot]:
    """The type's plan; the seed defaults are written the first time a type's plan is asked for."""
    if community_type not in CommunityType.values:
        raise SiyuError("community_type_invalid", "未知的群类型", "Unknown group type", details={"field": "type"})
    slots = list(RhythmSlot.objects.filter(workspace=workspace, community_type=community_type))
    if slots:
        return slots
    with transaction.atomic():
        # Serialise the first write per workspace: two first readers must not both seed the plan.
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        if not RhythmSlot.objects.filter(workspace=workspace, community_type=community_type).exists():
            RhythmSlot.objects.bulk_create([
                RhythmSlot(workspace=workspace, community_type=community_type, weekday=spec.weekday, at=spec.at,
                           theme=spec.theme, content=spec.content, action=spec.action)
                for spec in domain.default_rhythm(community_type)])
    return list(RhythmSlot.objects.filter(workspace=workspace, community_type=community_type))


def _time(value: Any) -> time:
    text = str(value or "").strip()
    try:
        hour, minute = (int(part) for part in text.split(":")[:2])
        return time(hour, minute)
    except (TypeError, ValueError) as error:
        raise SiyuError("rhythm_time_invalid", "时间格式应为 HH:MM", "Time must be HH:MM",
                        details={"field": "at"}) from error


def rhythm_slot_save(*, workspace: Workspace, community_type: Any, weekday: Any, at: Any, theme: Any,
                     content: Any = "", action: Any = RhythmAction.TASK, active: bool = True, slot_id: Any = None,
                     actor: Any = None) -> RhythmSlot:
    """Add a slot to a type's plan, or change one (``slot_id``); a slot is switched off, not deleted."""
    rhythm_slots(workspace=workspace, community_type=str(community_type))
    if not str(weekday).isdigit() or not 0 <= int(weekday) <= EVERY_DAY:
        raise SiyuError("rhythm_weekday_invalid", "星期无效", "Invalid weekday", details={"field": "weekday"})
    moment = _time(at)
    theme = str(theme or "").strip()
    if not theme or len(theme) > 64:
        raise SiyuError("rhythm_theme_invalid", "请填写主题（最多 64 字）", "Enter a theme (64 characters at most)",
                        details={"field": "theme"})
    content = str(content or "").strip()
    if len(content) > 2000:
        raise SiyuError("rhythm_content_too_long", "内容最多 2000 字", "Content is 2000 characters at most",
                        details={"field": "content"})
    if action not in RhythmAction.values:
        raise SiyuError("rhythm_action_invalid", "未知的执行方式", "Unknown action", details={"field": "action"})
    fields = {"weekday": int(weekday), "at": moment, "theme": theme, "content": content, "action": action,
              "active": bool(active)}
    with transaction.atomic():
        if slot_id not in (None, ""):
            slot = RhythmSlot.objects.select_for_update().filter(
                workspace=workspace, community_type=community_type, pk=slot_id).first() \
                if str(slot_id).isdigit() else None
            if slot is None:
                raise SiyuError("not_found", "节奏项不存在", "Rhythm slot not found", status=404)
            for name, value in fields.items():
                setattr(slot, name, value)
            slot.save()
        else:
            slot = RhythmSlot.objects.create(workspace=workspace, community_type=community_type, **fields)
        audit_record(workspace=workspace, actor=actor, action="community.rhythm_save", target_type="rhythm_slot",
                     target_id=slot.pk, type=community_type, weekday=int(weekday), at=moment.strftime("%H:%M"),
                     theme=theme, action_kind=action, active=bool(active))
    return slot


def _planned(day: date, slot: RhythmSlot) -> datetime:
    return datetime.combine(day, slot.at, tzinfo=SHANGHAI)


def rhythm_due(*, community: Community, now: datetime, slots: list[RhythmSlot]) -> list[tuple[RhythmSlot, date]]:
    """Slots of the group's plan whose planned time has come (within LOOKBACK), today or just before midnight."""
    today = local_day(now)
    due = []
    for day in (today - timedelta(days=1), today):
        for slot in slots:
            if slot.active and slot.weekday in (day.weekday(), EVERY_DAY):
                planned = _planned(day, slot)
                if planned <= now and now - planned <= LOOKBACK:
                    due.append((slot, day))
    return due


class _NotSendable(Exception):
    """The group cannot be sent to through WeCom (not synced, no owner)."""


def _group_send(community: Community, text: str) -> str:
    """Ask WeCom for a group mass-send by the group's owner to this one group; returns the msgid."""
    group = CustomerGroup.objects.filter(workspace_id=community.workspace_id, chat_id=community.wecom_chat_id) \
        .select_related("app").first()
    if group is None or not group.owner_userid:
        raise _NotSendable("群未同步或没有群主")
    answer = wecom.post(group.app, "externalcontact/add_msg_template", {
        "chat_type": "group", "sender": group.owner_userid, "chat_id_list": [community.wecom_chat_id],
        "text": {"content": text}})
    return str(answer.get("msgid") or "")


def _produce(run: RhythmRun, community: Community, slot: RhythmSlot) -> None:
    text = slot.content or slot.theme
    if slot.action == RhythmAction.MASS_SEND and community.wecom_chat_id:
        try:
            run.msgid, run.outcome = _group_send(community, text), "mass_send"
            run.save(update_fields=["msgid", "outcome"])
            return
        except (WeChatApiError, wecom.RateLimited, _NotSendable) as error:
            # Not retried: a later retry could send after the slot's time; the owner posts it by hand.
            run.error = f"群发未创建，已改为员工任务：{getattr(error, 'errmsg', '') or error}"[:255]
    task, _created = task_create(
        workspace=community.workspace, source=TASK_SOURCE, ref=f"rhythm:{community.pk}:{slot.pk}:{run.day}",
        title=f"【{slot.theme}】{community.name}", body=text,
        payload={"community_id": community.pk, "slot_id": slot.pk, "day": run.day.isoformat()},
        assignee_id=community.owner_id, sla_minutes=60, now=run.planned_at)
    run.task_id, run.outcome = task.pk, "task"
    run.save(update_fields=["task_id", "outcome", "error"])


def rhythm_run_due(*, workspace: Workspace | None = None, now: datetime | None = None) -> int:
    """Produce every due slot of every active group (the periodic task, every 10 minutes). Returns how many
    items this call produced; a second call at the same time produces none."""
    now = now or timezone.now()
    communities = Community.objects.filter(active=True).select_related("workspace").order_by("pk")
    if workspace is not None:
        communities = communities.filter(workspace=workspace)
    plans: dict[tuple[int, str], list[RhythmSlot]] = {}
    produced = 0
    for community in communities:
        key = (community.workspace_id, community.type)
        if key not in plans:
            plans[key] = rhythm_slots(workspace=community.workspace, community_type=community.type)
        for slot, day in rhythm_due(community=community, now=now, slots=plans[key]):
            try:
                with transaction.atomic():
                    run = RhythmRun.objects.create(workspace_id=community.workspace_id, community=community,
                                                   slot=slot, day=day, planned_at=_planned(day, slot),
                                                   outcome="pending", created_at=now)
            except IntegrityError:
                continue  # this (group, slot, day) was produced already
            _produce(run, community, slot)
            produced += 1
    return produced
