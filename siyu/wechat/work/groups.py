"""Customer groups (客户群) and their members, from ``groupchat/list`` / ``groupchat/get`` and from
change_external_chat callbacks. A customer joining or leaving is a ``group_join`` / ``group_leave``
event whose id names the membership (group, member, join time), so repeated syncs add nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.customers.models import IdentityKind
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import wecom
from siyu.wechat.work.contacts import event_id, external_identity, ingest, reported_at
from siyu.wechat.work.models import CustomerGroup, GroupMember


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if str(value or "").isdigit() else None


def group_sync(app: WeChatApp, chat_id: str) -> CustomerGroup | None:
    """Bring one group and its members over; new customer members join, missing ones leave."""
    answer = wecom.post(app, "externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})
    chat = answer.get("group_chat") or {}
    now = timezone.now()
    with transaction.atomic():
        group, _created = CustomerGroup.objects.select_for_update().get_or_create(
            app=app, chat_id=chat_id, defaults={"workspace_id": app.workspace_id})
        group.name = str(chat.get("name") or "")[:128]
        group.owner_userid = str(chat.get("owner") or "")[:64]
        group.created_at = _when(chat.get("create_time"))
        group.dismissed_at, group.synced_at = None, now
        group.save()
        current = {str(member.get("userid")): member for member in chat.get("member_list") or [] if member.get("userid")}
        known = {member.member_id: member for member in group.members.all()}
    for member_id, member in current.items():
        row = known.get(member_id)
        joined = _when(member.get("join_time")) or now
        if row is not None and row.left_at is None:
            continue
        is_staff = member.get("type") == 1
        customer = None
        if not is_staff:
            identities = [external_identity(app, member_id)]
            if member.get("unionid"):
                identities.append({"kind": IdentityKind.UNIONID, "namespace": "", "value": str(member["unionid"])})
            customer = ingest(app, event_id=event_id(app, "group_join", chat_id, member_id, member.get("join_time")),
                              type="group_join", at=min(joined, now), identities=identities,
                              properties={"group_id": chat_id})
        GroupMember.objects.update_or_create(group=group, member_id=member_id, defaults={
            "is_staff": is_staff, "customer": customer, "joined_at": joined, "left_at": None,
            "join_scene": int(member.get("join_scene") or 0)})
    for member_id, row in known.items():
        if member_id in current or row.left_at is not None:
            continue
        if not row.is_staff:
            ingest(app, event_id=event_id(app, "group_leave", chat_id, member_id, int(row.joined_at.timestamp())
                                          if row.joined_at else ""),
                   type="group_leave", at=now, identities=[external_identity(app, member_id)],
                   properties={"group_id": chat_id})
        GroupMember.objects.filter(pk=row.pk).update(left_at=now)
    return group


def groups_sync(app: WeChatApp) -> int:
    """Every group of the corp (paged ``groupchat/list``)."""
    cursor, count = "", 0
    while True:
        body: dict[str, Any] = {"status_filter": 0, "limit": 1000}
        if cursor:
            body["cursor"] = cursor
        answer = wecom.post(app, "externalcontact/groupchat/list", body)
        for row in answer.get("group_chat_list") or []:
            group_sync(app, str(row["chat_id"]))
            count += 1
        cursor = answer.get("next_cursor") or ""
        if not cursor:
            return count


def chat_changed(app: WeChatApp, data: dict[str, Any]) -> CustomerGroup | None:
    """change_external_chat: create / update (members, name …) / dismiss."""
    chat_id = str(data.get("ChatId") or "")
    if not chat_id:
        return None
    if str(data.get("ChangeType")) == "dismiss":
        CustomerGroup.objects.filter(app=app, chat_id=chat_id).update(dismissed_at=reported_at(data))
        return CustomerGroup.objects.filter(app=app, chat_id=chat_id).first()
    return group_sync(app, chat_id)
