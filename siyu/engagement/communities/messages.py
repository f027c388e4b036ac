"""Group messages and their moderation.

WeCom only hands group message content to 会话内容存档 (a native SDK that decrypts the archive, not an
HTTP API), so Siyu takes messages from a bridge the brand runs next to that SDK (``api.py``, HMAC- or
API-key-authenticated JSON) and from ``group_message`` events sent to the event ingestion API. Either
way a message is stored once per ``msg_id``: a replay adds nothing and acts on nothing again, because
moderation runs only on messages newly stored.

Moderation checks each customer message against its group's structured rules (``domain.violations``)
and acts: warn in the group (a task for the group owner: apps cannot post into a customer group), tag
the customer 社群违规, and/or ask staff to remove the member — WeCom's API does not let an app remove an
external member from a customer group, so removal is always a staff task. A member reaching the group's
``escalate_after`` violations within 30 days is always put forward for removal.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import local_day
from siyu.customers.models import Event, Identity, IdentityKind
from siyu.customers.tagging import tags_bulk_add
from siyu.engagement.communities import domain
from siyu.engagement.communities.models import (
    Community,
    CommunityRule,
    GroupMessage,
    MessageSource,
    ModerationRecord,
    RuleAction,
)
from siyu.engagement.communities.services import (
    VIOLATION_TAG,
    community_tag,
    live_customer_id,
    member_join,
    member_leave,
)
from siyu.engagement.inbox.services import task_create
from siyu.wechat.work.models import GroupMember

MAX_BATCH = 500
MAX_CONTENT = 4000
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=30)
VIOLATION_WINDOW = timedelta(days=30)
TASK_SOURCE = "community"


@dataclass
class MessageOutcome:
    index: int
    msg_id: str | None
    status: str  # accepted | duplicate | rejected
    code: str = ""
    message: str = ""
    message_en: str = ""
    violations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "msg_id": self.msg_id, "status": self.status}
        if self.status == "rejected":
            body.update(code=self.code, message=self.message, message_en=self.message_en)
        if self.violations:
            body["violations"] = self.violations
        return body


class _Rejected(Exception):
    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(code)
        self.code, self.zh, self.en = code, zh, en


def _when(value: Any) -> datetime:
    if isinstance(value, bool):
        raise _Rejected("sent_at_invalid", "发送时间无效", "sent_at is invalid")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000 if value > 10**11 else value, UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise _Rejected("sent_at_invalid", "发送时间无效", "sent_at is invalid") from error
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as error:
            raise _Rejected("sent_at_invalid", "发送时间无效", "sent_at is invalid") from error
        if moment.tzinfo is None:
            raise _Rejected("sent_at_timezone", "发送时间必须带时区", "sent_at needs a time zone")
        return moment
    raise _Rejected("sent_at_required", "缺少发送时间", "sent_at is required")


def _text(raw: dict, name: str, max_length: int, *, required: bool = False) -> str:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise _Rejected(f"{name}_required", f"缺少 {name}", f"{name} is required")
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise _Rejected(f"{name}_invalid", f"{name} 必须是不超过 {max_length} 字的字符串",
                        f"{name} must be a string of at most {max_length} characters")
    return value


def _community_index(workspace: Workspace, raws: list) -> tuple[dict[str, Community], dict[int, Community]]:
    chat_ids = {str(raw.get("chat_id")) for raw in raws if isinstance(raw, dict) and raw.get("chat_id")}
    ids = {raw.get("community_id") for raw in raws if isinstance(raw, dict) and isinstance(raw.get("community_id"), int)}
    rows = Community.objects.filter(workspace=workspace, active=True).filter(
        Q(wecom_chat_id__in=chat_ids) | Q(pk__in=ids))
    by_chat = {row.wecom_chat_id: row for row in rows if row.wecom_chat_id}
    by_id = {row.pk: row for row in rows}
    return by_chat, by_id


def _sender_customer(workspace: Workspace, community: Community, sender_id: str, hinted: Any) -> int | None:
    member = GroupMember.objects.filter(group__workspace=workspace, group__chat_id=community.wecom_chat_id,
                                        member_id=sender_id, customer__isnull=False).first() \
        if community.wecom_chat_id else None
    if member is not None:
        return live_customer_id(member.customer_id)
    identity = Identity.objects.filter(workspace=workspace, kind=IdentityKind.EXTERNAL_USERID, value=sender_id).first()
    if identity is not None:
        return live_customer_id(identity.customer_id)
    if isinstance(hinted, int) and not isinstance(hinted, bool):
        from siyu.customers.models import Customer

        if Customer.objects.filter(workspace=workspace, pk=hinted).exists():
            return live_customer_id(hinted)
    return None


def _parse(workspace: Workspace, raw: Any, by_chat: dict, by_id: dict, now: datetime) -> tuple[GroupMessage, bool]:
    if not isinstance(raw, dict):
        raise _Rejected("message_invalid", "每条消息必须是对象", "each message must be an object")
    msg_id = _text(raw, "msg_id", 96, required=True)
    community = by_chat.get(str(raw.get("chat_id") or "")) or by_id.get(raw.get("community_id"))
    if community is None:
        raise _Rejected("community_unknown", "未找到对应的社群（chat_id 未关联或社群已停用）",
                        "No active community for this chat_id / community_id")
    sender = raw.get("sender") if isinstance(raw.get("sender"), dict) else {}
    sender_id = _text(sender, "id", 64, required=True)
    sender_type = sender.get("type", "external")
    if sender_type not in ("external", "staff"):
        raise _Rejected("sender_type_invalid", "sender.type 只能是 external 或 staff",
                        "sender.type must be external or staff")
    msg_type = _text(raw, "msg_type", 16) or "text"
    content = raw.get("content", "")
    if not isinstance(content, str):
        raise _Rejected("content_invalid", "content 必须是字符串", "content must be a string")
    sent_at = _when(raw.get("sent_at"))
    if sent_at > now + MAX_FUTURE or sent_at < now - MAX_AGE:
        raise _Rejected("sent_at_out_of_range", "发送时间超出允许范围（最多 30 天前，不能在未来）",
                        "sent_at is out of range (at most 30 days old, not in the future)")
    qr = raw.get("qr", False)
    if not isinstance(qr, bool):
        raise _Rejected("qr_invalid", "qr 必须是布尔值", "qr must be a boolean")
    is_staff = sender_type == "staff"
    customer_id = None if is_staff else _sender_customer(workspace, community, sender_id, raw.get("customer_id"))
    message = GroupMessage(workspace=workspace, community=community, msg_id=msg_id, sender_id=sender_id,
                           customer_id=customer_id, is_staff=is_staff, msg_type=msg_type.lower(),
                           content=content[:MAX_CONTENT], reply_to=_text(raw, "reply_to", 96), sent_at=sent_at,
                           received_at=now)
    return message, qr


def messages_record(*, workspace: Workspace, messages: Any, source: str = MessageSource.BRIDGE,
                    now: datetime | None = None) -> list[MessageOutcome]:
    """Store a batch of group messages (each once, by msg_id) and moderate the new ones."""
    if not isinstance(messages, list):
        raise SiyuError("invalid_batch", "messages 必须是数组", "messages must be an array", status=400)
    if not messages:
        raise SiyuError("empty_batch", "批次中没有消息", "the batch contains no messages", status=400)
    if len(messages) > MAX_BATCH:
        raise SiyuError("batch_too_large", f"每批最多 {MAX_BATCH} 条消息", f"at most {MAX_BATCH} messages per batch",
                        status=413, details={"max_messages": MAX_BATCH, "received": len(messages)})
    now = now or timezone.now()
    by_chat, by_id = _community_index(workspace, messages)
    outcomes: list[MessageOutcome] = []
    fresh: list[tuple[int, GroupMessage, bool]] = []
    seen: set[str] = set()
    for index, raw in enumerate(messages):
        msg_id = raw.get("msg_id") if isinstance(raw, dict) and isinstance(raw.get("msg_id"), str) else None
        try:
            message, qr = _parse(workspace, raw, by_chat, by_id, now)
        except _Rejected as rejected:
            outcomes.append(MessageOutcome(index, msg_id, "rejected", rejected.code, rejected.zh, rejected.en))
            continue
        if message.msg_id in seen:
            outcomes.append(MessageOutcome(index, msg_id, "duplicate"))
            continue
        seen.add(message.msg_id)
        message.source = source
        outcomes.append(MessageOutcome(index, msg_id, "accepted"))
        fresh.append((index, message, qr))
    stored = set(GroupMessage.objects.filter(workspace=workspace, msg_id__in=[m.msg_id for _, m, _ in fresh])
                 .values_list("msg_id", flat=True))
    for index, message, qr in sorted(fresh, key=lambda item: (item[1].sent_at, item[0])):
        if message.msg_id in stored:
            outcomes[index].status = "duplicate"
            continue
        try:
            with transaction.atomic():
                message.save(force_insert=True)
                outcomes[index].violations = message_moderate(message=message, qr=qr, now=now)
        except IntegrityError:  # stored concurrently by a retry of the same batch
            outcomes[index].status = "duplicate"
    return outcomes


# --- moderation ---------------------------------------------------------------------------------------------

def _rules(community: Community) -> list[tuple[CommunityRule, domain.RuleSpec]]:
    return [(rule, domain.RuleSpec(rule.kind, tuple(rule.keywords or ()), rule.threshold, rule.window_seconds))
            for rule in CommunityRule.objects.filter(community=community, active=True).order_by("pk")]


def message_moderate(*, message: GroupMessage, qr: bool = False, now: datetime | None = None) -> list[str]:
    """Check one newly stored message; record and act on each rule it breaks. Returns the kinds broken."""
    if message.is_staff:
        return []
    now = now or timezone.now()
    community = message.community
    rules = _rules(community)
    if not rules:
        return []
    repeat_window = max([spec.window_seconds for _, spec in rules if spec.kind == "repeat"] or [0])
    flood_window = max([spec.window_seconds for _, spec in rules if spec.kind == "flood"] or [0])
    same_sender = GroupMessage.objects.filter(community=community, sender_id=message.sender_id).exclude(pk=message.pk)
    recent = tuple(same_sender.filter(sent_at__gte=message.sent_at - timedelta(seconds=repeat_window),
                                      sent_at__lte=message.sent_at).values_list("content", flat=True)[:200]) \
        if repeat_window else ()
    flood = 1 + same_sender.filter(sent_at__gte=message.sent_at - timedelta(seconds=flood_window),
                                   sent_at__lte=message.sent_at).count() if flood_window else 1
    view = domain.MessageView(message.content, message.msg_type, qr, recent, flood)
    found = domain.violations(view, [spec for _, spec in rules])
    if not found:
        return []
    by_kind = {rule.kind: rule for rule, _ in rules}
    earlier = ModerationRecord.objects.filter(community=community, sender_id=message.sender_id,
                                              created_at__gte=now - VIOLATION_WINDOW).count()
    for offset, (kind, excerpt) in enumerate(found, start=1):
        number = earlier + offset
        actions = list(by_kind[kind].actions or [])
        escalated = number >= community.escalate_after and RuleAction.REMOVE not in actions
        if escalated:
            actions.append(RuleAction.REMOVE)
        record = ModerationRecord.objects.create(
            workspace_id=message.workspace_id, community=community, message=message, customer_id=message.customer_id,
            sender_id=message.sender_id, kind=kind, excerpt=excerpt[:200], actions=actions, violation_no=number,
            escalated=escalated, created_at=now)
        _act(record, community, now)
    return [kind for kind, _ in found]


def _act(record: ModerationRecord, community: Community, now: datetime) -> None:
    day = local_day(now).isoformat()
    who = f"客户 #{record.customer_id}" if record.customer_id else record.sender_id
    owner = community.owner_id
    if RuleAction.WARN in record.actions:
        # One reminder task per member per group per day, however many messages broke a rule.
        task_create(workspace=community.workspace, source=TASK_SOURCE, ref=f"warn:{community.pk}:{record.sender_id}:{day}",
                    title=f"在群「{community.name}」提醒{who}遵守群规", customer_id=record.customer_id,
                    body=f"违规类型：{record.get_kind_display()}；内容：{record.excerpt}\n"
                         "企业微信不允许应用向客户群发消息，请群主在群内提醒。",
                    payload={"community_id": community.pk, "moderation_id": record.pk}, assignee_id=owner, now=now)
    if RuleAction.TAG in record.actions and record.customer_id:
        tag = community_tag(workspace=community.workspace, name=VIOLATION_TAG)
        # A customer merged meanwhile is refused: the winner is tagged by their next violation.
        with suppress(SiyuError):
            tags_bulk_add(workspace=community.workspace, tag=tag, customer_ids=[record.customer_id], source="auto")
    if RuleAction.REMOVE in record.actions:
        task_create(workspace=community.workspace, source=TASK_SOURCE, ref=f"remove:{community.pk}:{record.sender_id}:{day}",
                    title=f"将{who}移出群「{community.name}」（第 {record.violation_no} 次违规）",
                    customer_id=record.customer_id,
                    body="企业微信接口不允许应用移除客户群的外部成员，请群主在企业微信客户端中操作。",
                    payload={"community_id": community.pk, "moderation_id": record.pk,
                             "member_id": record.sender_id}, assignee_id=owner, now=now)


# --- the event ingestion path ----------------------------------------------------------------------------

GROUP_EVENT_TYPES = ("group_message", "group_join", "group_leave")
# Events received this recently are (re)applied: enough for the retried task, and an active customer's
# every new event does not re-read all their group events.
EVENT_LOOKBACK = timedelta(hours=1)


def group_events_apply(*, workspace_id: int, customer_ids: list[int], now: datetime | None = None) -> dict[str, int]:
    """Apply ``group_message`` / ``group_join`` / ``group_leave`` events of these customers (sent to the event
    API, or recorded by the WeCom area) to the communities whose chat_id (or community_id) they name.
    Each is idempotent: messages by msg_id (default: the event id), memberships by their state."""
    now = now or timezone.now()
    if not Community.objects.filter(workspace_id=workspace_id, active=True).exists():
        return {"messages": 0, "joined": 0, "left": 0}
    events = []
    for start in range(0, len(customer_ids), 500):
        events += Event.objects.filter(
            workspace_id=workspace_id, type__in=GROUP_EVENT_TYPES, occurred_at__gte=now - MAX_AGE,
            received_at__gte=now - EVENT_LOOKBACK, identity__customer_id__in=customer_ids[start:start + 500]
        ).select_related("identity")[:5000]
    events.sort(key=lambda event: (event.occurred_at, event.pk))
    if not events:
        return {"messages": 0, "joined": 0, "left": 0}
    communities = list(Community.objects.filter(workspace_id=workspace_id, active=True))
    by_chat = {row.wecom_chat_id: row for row in communities if row.wecom_chat_id}
    by_id = {str(row.pk): row for row in communities}
    workspace = communities[0].workspace
    batch: list[dict[str, Any]] = []
    joined = left = 0
    for event in events:
        props = event.properties or {}
        community = by_chat.get(str(props.get("group_id") or "")) or by_id.get(str(props.get("community_id") or ""))
        if community is None:
            continue
        customer_id = event.identity.customer_id
        sender = event.identity.value if event.identity.kind == IdentityKind.EXTERNAL_USERID else f"customer:{customer_id}"
        if event.type == "group_message":
            batch.append({"msg_id": str(props.get("msg_id") or f"event:{event.event_id}")[:96],
                          "community_id": community.pk, "sender": {"id": sender[:64], "type": "external"},
                          "customer_id": customer_id, "msg_type": str(props.get("msg_type") or "text")[:16],
                          "content": str(props.get("text") or props.get("content") or ""),
                          "reply_to": str(props.get("reply_to") or "")[:96], "qr": props.get("qr") is True,
                          "sent_at": event.occurred_at.isoformat()})
        elif event.type == "group_join":
            inviter = props.get("inviter_customer_id")
            joined += member_join(community=community, customer_id=customer_id, at=event.occurred_at,
                                  member_id=sender if not sender.startswith("customer:") else "",
                                  invited_by_id=inviter if isinstance(inviter, int) else None)
        else:
            left += member_leave(community=community, customer_id=customer_id, at=event.occurred_at)
    accepted = 0
    for start in range(0, len(batch), MAX_BATCH):
        outcomes = messages_record(workspace=workspace, messages=batch[start:start + MAX_BATCH],
                                   source=MessageSource.EVENT, now=now)
        accepted += sum(1 for outcome in outcomes if outcome.status == "accepted")
    return {"messages": accepted, "joined": joined, "left": left}
