"""「联系我」 codes (SPEC T2, the WeCom half of 渠道活码): one per channel, its ``state`` naming it in every
add callback, several staff members taking turns, each up to a daily cap.

When a member reaches their cap the code is updated in WeCom (``update_contact_way``) to leave them out;
the next day (Asia/Shanghai) they are back. If every member is at the cap, the fallback member (when set)
receives the adds; without one the code keeps its last member rather than stop working, and the console
shows the code as full.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.channels.models import Channel
from siyu.core.channel_codes import BY_CODE, channel_normalize
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.core.timeutil import local_day, start_of_local_day
from siyu.customers.models import Tag
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import wecom
from siyu.wechat.work.models import ContactRelation, ContactWay, ContactWayStaff, Staff, StaffStatus

MAX_CAP = 5000  # WeCom itself stops a member adding more than a few thousand contacts a day
MAX_WELCOME = 4000


def _invalid(field: str, zh: str, en: str) -> SiyuError:
    return SiyuError("contact_way_invalid", f"{zh}", en, status=400, details={"field": field})


def _clean(*, workspace, app: WeChatApp, name: Any, channel: Any, members: Any, tag_ids: Any, welcome_text: Any,
           fallback_id: Any, way: ContactWay | None) -> dict[str, Any]:
    name = str(name or "").strip()
    if not name or len(name) > 30:
        raise _invalid("name", "名称必填，最多 30 个字", "Name is required (at most 30 characters)")
    code = channel_normalize(str(channel or ""))
    if not code or not (code in BY_CODE or Channel.objects.filter(workspace=workspace, code=code).exists()):
        raise _invalid("channel", "请选择一个已登记的渠道", "Choose a registered channel")
    others = ContactWay.objects.filter(app=app, channel=code, active=True)
    if way is not None:
        others = others.exclude(pk=way.pk)
    if others.exists():
        raise SiyuError("contact_way_channel_taken", "该渠道已有「联系我」码，请编辑原有的码",
                        "This channel already has a contact code; edit that one", status=409,
                        details={"field": "channel"})
    if not isinstance(members, list) or not members:
        raise _invalid("members", "至少选择一名接待成员", "Choose at least one staff member")
    staff_ids, caps = [], {}
    for item in members:
        staff_id, cap = item if isinstance(item, (list, tuple)) and len(item) == 2 else (None, None)
        if not str(staff_id).isdigit() or not str(cap).isdigit() or not 1 <= int(cap) <= MAX_CAP:
            raise _invalid("members", f"每日上限必须是 1–{MAX_CAP} 的整数", f"Daily caps must be whole numbers 1-{MAX_CAP}")
        if int(staff_id) in caps:
            raise _invalid("members", "接待成员重复", "A staff member is listed twice")
        staff_ids.append(int(staff_id))
        caps[int(staff_id)] = int(cap)
    if len(staff_ids) > 100:
        raise _invalid("members", "最多 100 名接待成员", "At most 100 staff members")
    staff = {row.pk: row for row in Staff.objects.filter(app=app, pk__in=staff_ids, status=StaffStatus.ACTIVE)}
    if len(staff) != len(staff_ids):
        raise _invalid("members", "接待成员不存在或已离职", "A staff member does not exist or has left")
    tag_ids = [int(pk) for pk in tag_ids or [] if str(pk).isdigit()]
    tags = list(Tag.objects.filter(workspace=workspace, pk__in=tag_ids, kind="manual"))
    if len(tags) != len(set(tag_ids)):
        raise _invalid("tags", "标签不存在（或是规则标签，不能手动添加）", "A tag does not exist (or is a rule tag)")
    welcome = str(welcome_text or "").strip()
    if len(welcome.encode()) > MAX_WELCOME:
        raise _invalid("welcome_text", "欢迎语过长（最多 4000 字节）", "Welcome text too long (at most 4000 bytes)")
    fallback = None
    if fallback_id not in (None, ""):
        fallback = Staff.objects.filter(app=app, pk=fallback_id if str(fallback_id).isdigit() else 0,
                                        status=StaffStatus.ACTIVE).first()
        if fallback is None:
            raise _invalid("fallback", "兜底成员不存在或已离职", "The fallback member does not exist or has left")
    return {"name": name, "channel": code, "staff": [staff[pk] for pk in staff_ids], "caps": caps, "tags": tags,
            "welcome_text": welcome, "fallback": fallback}


def rotation(way: ContactWay, *, today=None) -> list[str]:
    """The userids WeCom should rotate over today: members not at their cap (else the fallback)."""
    today = today or local_day(timezone.now())
    members = [member for member in way.members.select_related("staff")
               if member.staff.status == StaffStatus.ACTIVE]
    open_ = [member.staff.userid for member in members if member.paused_on != today]
    if open_:
        return open_
    if way.fallback is not None and way.fallback.status == StaffStatus.ACTIVE:
        return [way.fallback.userid]
    return [members[-1].staff.userid] if members else list(way.rotation_synced[-1:])


def is_full(way: ContactWay, *, today=None) -> bool:
    today = today or local_day(timezone.now())
    return all(member.paused_on == today for member in way.members.all())


def contact_way_save(*, workspace, app: WeChatApp, name: Any, channel: Any, members: Any, tag_ids: Any = (),
                     welcome_text: Any = "", fallback_id: Any = None, way_id: int | None = None,
                     actor: Any = None) -> ContactWay:
    """Create or edit a 「联系我」 code; ``members`` is ``[(staff_id, daily_cap), ...]`` in rotation order.

    WeCom is told first (add_contact_way / update_contact_way); nothing is saved if it refuses.
    """
    way = None
    if way_id is not None:
        way = ContactWay.objects.filter(workspace=workspace, app=app, pk=way_id).first()
        if way is None:
            raise SiyuError("not_found", "「联系我」码不存在", "Contact code not found", status=404)
    clean = _clean(workspace=workspace, app=app, name=name, channel=channel, members=members, tag_ids=tag_ids,
                   welcome_text=welcome_text, fallback_id=fallback_id, way=way)
    today = local_day(timezone.now())
    paused = {member.staff_id: member.paused_on for member in way.members.all()} if way else {}
    users = [staff.userid for staff in clean["staff"] if paused.get(staff.pk) != today] or (
        [clean["fallback"].userid] if clean["fallback"] else [clean["staff"][-1].userid])
    external = wecom.client(app).external_contact
    if way is None:
        state = f"siyu_{clean['channel'][:16]}_{secrets.token_hex(3)}"
        answer = wecom.call(app, "externalcontact/add_contact_way", external.add_contact_way, 2, 2,
                            remark=clean["name"], skip_verify=True, state=state, user=users)
        way = ContactWay(workspace=workspace, app=app, state=state, config_id=str(answer.get("config_id") or ""),
                         qr_code=str(answer.get("qr_code") or ""))
        action = "wecom_contact_way.create"
    else:
        wecom.call(app, "externalcontact/update_contact_way", external.update_contact_way, way.config_id,
                   clean["name"], skip_verify=True, state=way.state, user=users)
        action = "wecom_contact_way.update"
    with transaction.atomic():
        way.name, way.channel, way.welcome_text = clean["name"], clean["channel"], clean["welcome_text"]
        way.fallback, way.rotation_synced, way.active = clean["fallback"], users, True
        way.save()
        way.tags.set(clean["tags"])
        keep = [staff.pk for staff in clean["staff"]]
        way.members.exclude(staff_id__in=keep).delete()
        for position, staff in enumerate(clean["staff"]):
            ContactWayStaff.objects.update_or_create(contact_way=way, staff=staff, defaults={
                "daily_cap": clean["caps"][staff.pk], "position": position})
        audit_record(workspace=workspace, actor=actor, action=action, target_type="wecom_contact_way",
                     target_id=way.pk, name=way.name, channel=way.channel, staff=[s.userid for s in clean["staff"]],
                     caps=list(clean["caps"].values()), tags=[tag.pk for tag in clean["tags"]])
    return way


def contact_way_delete(*, workspace, way_id: int, actor: Any = None) -> None:
    way = ContactWay.objects.filter(workspace=workspace, pk=way_id).select_related("app").first()
    if way is None:
        raise SiyuError("not_found", "「联系我」码不存在", "Contact code not found", status=404)
    if way.config_id:
        wecom.call(way.app, "externalcontact/del_contact_way", wecom.client(way.app).external_contact.del_contact_way,
                   way.config_id)
    with transaction.atomic():
        way.active, way.config_id = False, ""
        way.save(update_fields=["active", "config_id"])
        audit_record(workspace=workspace, actor=actor, action="wecom_contact_way.delete",
                     target_type="wecom_contact_way", target_id=way.pk, name=way.name)


def adds_today(way: ContactWay, *, today=None) -> dict[int, int]:
    """Adds per staff id through this code today (Asia/Shanghai)."""
    today = today or local_day(timezone.now())
    counts: dict[int, int] = {}
    for staff_id in ContactRelation.objects.filter(contact_way=way, added_at__gte=start_of_local_day(today)) \
            .values_list("staff_id", flat=True):
        counts[staff_id] = counts.get(staff_id, 0) + 1
    return counts


def caps_check(way: ContactWay, *, today=None) -> bool:
    """After an add: pause members at their cap today (and un-pause yesterday's). True when WeCom's
    rotation must change."""
    today = today or local_day(timezone.now())
    counts = adds_today(way, today=today)
    with transaction.atomic():
        for member in ContactWayStaff.objects.select_for_update().filter(contact_way=way):
            paused = today if counts.get(member.staff_id, 0) >= member.daily_cap else None
            if member.paused_on != paused:
                member.paused_on = paused
                member.save(update_fields=["paused_on"])
    return rotation(way, today=today) != list(way.rotation_synced)


def rotation_sync(way: ContactWay) -> list[str]:
    """Tell WeCom who rotates on this code now (``update_contact_way``)."""
    users = rotation(way)
    if users and users != list(way.rotation_synced) and way.config_id and way.active:
        wecom.call(way.app, "externalcontact/update_contact_way",
                   wecom.client(way.app).external_contact.update_contact_way, way.config_id, way.name,
                   skip_verify=True, state=way.state, user=users)
        ContactWay.objects.filter(pk=way.pk).update(rotation_synced=users)
        way.rotation_synced = users
    return users


def rotations_restore(*, today=None) -> list[int]:
    """A new day: members paused on an earlier day are back. Returns the codes whose rotation changed."""
    today = today or local_day(timezone.now())
    ways = set(ContactWayStaff.objects.filter(paused_on__lt=today).values_list("contact_way_id", flat=True))
    ContactWayStaff.objects.filter(paused_on__lt=today).update(paused_on=None)
    changed = []
    for way in ContactWay.objects.filter(active=True).select_related("app", "fallback"):
        if way.pk in ways or rotation(way, today=today) != list(way.rotation_synced):
            changed.append(way.pk)
    return changed
