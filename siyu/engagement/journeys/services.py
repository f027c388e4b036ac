"""Writing journeys: create, save the draft, activate (a new version), pause, resume, archive; workspace guards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.errors import SiyuError, not_found
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.engagement.journeys import definition as rules
from siyu.engagement.journeys import webhook_secrets
from siyu.engagement.journeys.models import Journey, JourneySettings, JourneyStatus, JourneyVersion
from siyu.engagement.journeys.schedule import DEFAULT_CAPS, is_hhmm

CHANNEL_APP_KIND = {"official_template": "official", "official_custom": "official", "miniapp_subscribe": "miniapp",
                    "wecom_mass": "work"}


def _name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > 64:
        raise SiyuError("journey_name_invalid", "请填写旅程名称（最多 64 个字）", "Enter a journey name (64 characters at most)",
                        details={"field": "name"})
    return name


def journey_get(*, workspace: Workspace, journey_id: Any, lock: bool = False) -> Journey:
    rows = Journey.objects.filter(workspace=workspace, pk=journey_id) if str(journey_id).isdigit() else None
    journey = (rows.select_for_update() if lock else rows).first() if rows is not None else None
    if journey is None:
        raise not_found("旅程", "Journey")
    return journey


def journey_create(*, workspace: Workspace, name: Any, definition: Any = None, description: str = "",
                   actor: Any = None, now: datetime | None = None) -> Journey:
    now = now or timezone.now()
    name = _name(name)
    if definition is not None and not isinstance(definition, dict):
        raise SiyuError("journey_invalid", "旅程定义格式不正确", "The journey definition is malformed")
    try:
        with transaction.atomic():
            journey = Journey.objects.create(
                workspace=workspace, name=name, description=str(description or "")[:255],
                definition=webhook_secrets.seal(definition) or {"trigger": {}, "steps": []}, created_at=now, updated_at=now,
                created_by=actor if getattr(actor, "is_authenticated", False) else None)
            audit_record(workspace=workspace, actor=actor, action="journey.create", target_type="journey",
                         target_id=journey.pk)
    except IntegrityError:
        raise SiyuError("journey_name_taken", "已有同名旅程", "A journey with this name already exists", status=409,
                        details={"field": "name"}) from None
    return journey


def journey_save(*, workspace: Workspace, journey_id: Any, definition: Any, name: Any = None, description: Any = None,
                 actor: Any = None, now: datetime | None = None) -> Journey:
    """Save the draft. Structure is checked when activating; a malformed draft (not an object) is refused."""
    now = now or timezone.now()
    if not isinstance(definition, dict):
        raise SiyuError("journey_invalid", "旅程定义格式不正确", "The journey definition is malformed")
    with transaction.atomic():
        journey = journey_get(workspace=workspace, journey_id=journey_id, lock=True)
        if journey.status == JourneyStatus.ARCHIVED:
            raise SiyuError("journey_archived", "旅程已归档，不能修改", "The journey is archived", status=409)
        journey.definition = webhook_secrets.seal(definition, previous=journey.definition)
        if name is not None:
            journey.name = _name(name)
        if description is not None:
            journey.description = str(description)[:255]
        journey.updated_at = now
        try:
            with transaction.atomic():
                journey.save(update_fields=["definition", "name", "description", "updated_at"])
        except IntegrityError:
            raise SiyuError("journey_name_taken", "已有同名旅程", "A journey with this name already exists",
                            status=409) from None
        audit_record(workspace=workspace, actor=actor, action="journey.save", target_type="journey",
                     target_id=journey.pk)
    return journey


def references_check(*, workspace: Workspace, definition: dict) -> None:
    """Segments, tags, coupons and accounts named by the definition exist in this workspace."""
    from siyu.commerce.promotions.models import CouponTemplate
    from siyu.customers.models import Tag
    from siyu.engagement.segments.models import Segment
    from siyu.wechat.models import WeChatApp

    found: list[rules.Problem] = []
    trigger = definition["trigger"]

    def exists(model, pk: Any, **extra) -> bool:
        return model.objects.filter(workspace=workspace, pk=int(pk), **extra).exists()

    if trigger["type"] in ("segment_entered", "segment_exited") and not exists(Segment, trigger["segment_id"]):
        found.append(rules.Problem("trigger", "所选人群不存在", "The chosen segment does not exist"))
    if trigger["type"] == "tag" and not exists(Tag, trigger["tag_id"]):
        found.append(rules.Problem("trigger", "所选标签不存在", "The chosen tag does not exist"))
    for step in definition["steps"]:
        sid, kind = step["id"], step["type"]
        if kind == "message":
            if not exists(WeChatApp, step["app_id"], kind=CHANNEL_APP_KIND[step["channel"]], is_active=True):
                found.append(rules.Problem(sid, "所选账号不存在、已停用或与渠道不符",
                                           "The account does not exist, is disabled or does not match the channel"))
        elif kind == "tag" and not exists(Tag, step["tag_id"]):
            found.append(rules.Problem(sid, "所选标签不存在", "The chosen tag does not exist"))
        elif kind == "tag" and Tag.objects.filter(pk=int(step["tag_id"]), kind="rule").exists():
            found.append(rules.Problem(sid, "规则标签由规则维护，不能由旅程增减", "Rule tags follow their rule; a journey cannot set them"))
        elif kind == "coupon" and not exists(CouponTemplate, step["template_id"]):
            found.append(rules.Problem(sid, "所选优惠券不存在", "The chosen coupon does not exist"))
        elif kind == "condition":
            check = step["check"]
            if check["kind"] == "segment" and not exists(Segment, check["segment_id"]):
                found.append(rules.Problem(sid, "条件中的人群不存在", "The condition's segment does not exist"))
            if check["kind"] == "tag" and not exists(Tag, check["tag_id"]):
                found.append(rules.Problem(sid, "条件中的标签不存在", "The condition's tag does not exist"))
    if found:
        raise SiyuError("journey_invalid", "旅程设置有误：" + "；".join(f"[{p.where}] {p.zh}" for p in found),
                        "The journey is not valid: " + "; ".join(f"[{p.where}] {p.en}" for p in found),
                        details={"problems": [p.as_dict() for p in found]})


def journey_activate(*, workspace: Workspace, journey_id: Any, actor: Any = None,
                     now: datetime | None = None) -> Journey:
    """Validate the draft, freeze it as the next version and start it. Runs already under way keep their
    version. A segment trigger with ``include_existing`` lets the segment's current members in."""
    from siyu.engagement.journeys import triggers

    now = now or timezone.now()
    with transaction.atomic():
        journey = journey_get(workspace=workspace, journey_id=journey_id, lock=True)
        if journey.status == JourneyStatus.ARCHIVED:
            raise SiyuError("journey_archived", "旅程已归档，不能启用", "The journey is archived", status=409)
        definition = rules.validate(journey.definition)
        references_check(workspace=workspace, definition=definition)
        journey.version += 1
        JourneyVersion.objects.create(journey=journey, version=journey.version, definition=definition,
                                      activated_at=now, activated_by=actor if getattr(actor, "is_authenticated",
                                                                                      False) else None)
        journey.status, journey.activated_at, journey.updated_at = JourneyStatus.ACTIVE, now, now
        journey.trigger_type = definition["trigger"]["type"]
        journey.save(update_fields=["version", "status", "activated_at", "updated_at", "trigger_type"])
        audit_record(workspace=workspace, actor=actor, action="journey.activate", target_type="journey",
                     target_id=journey.pk, version=journey.version)
        triggers.on_activation(journey=journey, now=now)
    return journey


def _status(*, workspace: Workspace, journey_id: Any, to: str, allowed_from: tuple[str, ...], actor: Any,
            now: datetime | None) -> Journey:
    from siyu.engagement.journeys.engine import journey_exit_all

    now = now or timezone.now()
    with transaction.atomic():
        journey = journey_get(workspace=workspace, journey_id=journey_id, lock=True)
        if journey.status not in allowed_from:
            raise SiyuError("journey_status_invalid", f"当前状态（{journey.get_status_display()}）不能进行此操作",
                            f"Not possible from the current status ({journey.status})", status=409)
        journey.status, journey.updated_at = to, now
        journey.save(update_fields=["status", "updated_at"])
        if to == JourneyStatus.ARCHIVED:
            journey_exit_all(journey=journey, now=now)
        audit_record(workspace=workspace, actor=actor, action=f"journey.{to}", target_type="journey",
                     target_id=journey.pk)
    return journey


def journey_pause(*, workspace: Workspace, journey_id: Any, actor: Any = None, now: datetime | None = None) -> Journey:
    """Paused: nobody enters and runs stand still where they are (they resume from the same step)."""
    return _status(workspace=workspace, journey_id=journey_id, to=JourneyStatus.PAUSED,
                   allowed_from=(JourneyStatus.ACTIVE,), actor=actor, now=now)


def journey_resume(*, workspace: Workspace, journey_id: Any, actor: Any = None, now: datetime | None = None) -> Journey:
    return _status(workspace=workspace, journey_id=journey_id, to=JourneyStatus.ACTIVE,
                   allowed_from=(JourneyStatus.PAUSED,), actor=actor, now=now)


def journey_archive(*, workspace: Workspace, journey_id: Any, actor: Any = None,
                    now: datetime | None = None) -> Journey:
    return _status(workspace=workspace, journey_id=journey_id, to=JourneyStatus.ARCHIVED,
                   allowed_from=(JourneyStatus.DRAFT, JourneyStatus.ACTIVE, JourneyStatus.PAUSED), actor=actor, now=now)


def settings_update(*, workspace: Workspace, caps: Any, quiet_start: Any, quiet_end: Any,
                    actor: Any = None) -> JourneySettings:
    clean: dict[str, dict[str, int]] = {}
    for channel in DEFAULT_CAPS:
        value = (caps or {}).get(channel) if isinstance(caps, dict) else None
        if value is None or (isinstance(value, dict) and value.get("day") in (None, "")
                             and value.get("week") in (None, "")):
            continue  # not given: the default stays
        try:
            day, week = int(value["day"]), int(value["week"])
        except (KeyError, TypeError, ValueError):
            day = week = -1
        if not 0 <= day <= 50 or not 0 <= week <= 200 or day > week:
            raise SiyuError("journey_caps_invalid", "频次上限应为 0-50/天、0-200/周，且每天不超过每周",
                            "Caps must be 0-50 a day and 0-200 a week, the daily cap not above the weekly one",
                            details={"channel": channel})
        clean[channel] = {"day": day, "week": week}
    for value in (quiet_start, quiet_end):
        if not is_hhmm(str(value or "")):
            raise SiyuError("journey_quiet_invalid", "免打扰时间格式应为 HH:MM", "Quiet hours must be HH:MM")
    with transaction.atomic():
        row, _ = JourneySettings.objects.select_for_update().get_or_create(workspace=workspace)
        row.caps, row.quiet_start, row.quiet_end = clean, str(quiet_start), str(quiet_end)
        row.save()
        audit_record(workspace=workspace, actor=actor, action="journey.settings", target_type="journey_settings",
                     target_id=row.pk, caps=clean, quiet=f"{quiet_start}-{quiet_end}")
    return row
