"""Writes of the service bot: answering an incoming message (once per WeChat message id), staff replies,
and the operators' FAQ, keyword rules and threshold.

``message_answer`` runs in a Huey task after the channel's callback committed. It inserts the incoming
message first — ``(workspace, channel, external_id)`` is unique — so a WeChat retry or a re-run task finds
it and does nothing. Then: the account already answered (its own keyword rule) → logged only; a person is
already on the conversation → logged for them; else keyword rule, FAQ answer above the threshold, or a
handoff to a person (a ``StaffTask`` carrying the conversation, sooner and by an expert for tiers with
优先客服).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.customers.models import Customer, Identity, IdentityKind
from siyu.engagement.inbox.models import StaffTask, TaskLevel, TaskStatus
from siyu.engagement.inbox.services import task_create
from siyu.engagement.service import channels
from siyu.engagement.service.matching import Decision, decide, rule_check
from siyu.engagement.service.models import (
    Channel,
    Conversation,
    ConversationMessage,
    Direction,
    FaqEntry,
    KeywordRule,
    KfCursor,
    Resolution,
    Sender,
    ServiceSettings,
)
from siyu.engagement.service.retrieval import faq_index, keyword_rules
from siyu.loyalty.tiers import tier_of
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import kf

logger = logging.getLogger(__name__)
TEXT_MAX = 2000
VARIANTS_MAX = 30


def service_settings(*, workspace: Workspace | int) -> ServiceSettings:
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    row = ServiceSettings.objects.filter(workspace_id=workspace_id).first()
    if row is None:
        try:
            with transaction.atomic():
                row = ServiceSettings.objects.create(workspace_id=workspace_id)
        except IntegrityError:
            row = ServiceSettings.objects.get(workspace_id=workspace_id)
    return row


def bot_answers_for(app: WeChatApp) -> bool:
    """Registered with the official area: the bot takes over the default reply where it is enabled."""
    return ServiceSettings.objects.filter(workspace_id=app.workspace_id, enabled=True).exists()


# ------------------------------------------------------------------------------------------ conversations


def _conversation(*, workspace_id: int, channel: str, app: WeChatApp, peer: str, account: str,
                  customer_id: int | None, now: datetime) -> Conversation:
    found = Conversation.objects.select_for_update().filter(app=app, channel=channel, account=account,
                                                            peer=peer).first()
    if found is None:
        try:
            with transaction.atomic():
                found = Conversation.objects.create(workspace_id=workspace_id, channel=channel, app=app, peer=peer,
                                                    account=account, customer_id=customer_id, started_at=now,
                                                    last_message_at=now)
        except IntegrityError:  # the customer's previous message is being answered right now
            found = Conversation.objects.select_for_update().get(app=app, channel=channel, account=account, peer=peer)
    fields = ["last_message_at"]
    found.last_message_at = now
    if customer_id and found.customer_id != customer_id:
        found.customer_id = customer_id
        fields.append("customer")
    found.save(update_fields=fields)
    return found


def _person_on_it(conversation: Conversation) -> StaffTask | None:
    if not conversation.handoff_task_id:
        return None
    return StaffTask.objects.filter(pk=conversation.handoff_task_id,
                                    status__in=[TaskStatus.OPEN, TaskStatus.CLAIMED]).first()


def _outgoing(conversation: Conversation, *, text: str, sender: str, resolution: str, reply_to=None,
              faq_id=None, rule_id=None, score=None, staff=None, now: datetime) -> ConversationMessage:
    """Store an outgoing message and hand it to the channel; a refusal by WeChat's rules is kept on the row
    (the conversation shows it) instead of failing the whole answer."""
    message = ConversationMessage.objects.create(
        workspace_id=conversation.workspace_id, conversation=conversation, channel=conversation.channel,
        direction=Direction.OUT, sender=sender, staff=staff, text=text, resolution=resolution, reply_to=reply_to,
        faq_id=faq_id, rule_id=rule_id, score=score, created_at=now)
    try:
        with transaction.atomic():
            message.delivery = channels.text_send(conversation=conversation, text=text, actor=staff,
                                                  ref=f"siyu{message.pk}")
    except SiyuError as error:
        if sender == Sender.STAFF:
            raise
        message.delivery_error = f"{error.code}: {error.message_zh}"[:255]
    message.save(update_fields=["delivery", "delivery_error"])
    return message


def _handoff(conversation: Conversation, incoming: ConversationMessage, decision: Decision,
             settings_row: ServiceSettings, now: datetime) -> StaffTask:
    customer = Customer.objects.filter(pk=conversation.customer_id).first() if conversation.customer_id else None
    priority = bool(customer is not None and tier_of(customer=customer).priority_service)
    best = decision.hit
    task, _created = task_create(
        workspace=conversation.workspace, source="service", ref=f"message:{incoming.pk}",
        title=("【优先】" if priority else "") + f"客户咨询：{incoming.text[:60]}", customer_id=conversation.customer_id,
        level=TaskLevel.EXPERT if priority else TaskLevel.JUNIOR, body=incoming.text[:TEXT_MAX],
        payload={"conversation_id": conversation.pk, "message_id": incoming.pk, "channel": conversation.channel,
                 "priority": priority, "best_faq_id": best.faq.ident if best else None,
                 "best_confidence": best.confidence if best else None},
        priority=1 if priority else 0,
        sla_minutes=settings_row.priority_sla_minutes if priority else settings_row.handoff_sla_minutes, now=now)
    conversation.handoff_task_id = task.pk
    conversation.status = "handoff"
    conversation.save(update_fields=["handoff_task_id", "status"])
    return task


def message_answer(*, workspace_id: int, channel: str, app_id: int, peer: str, text: str, external_id: str,
                   customer_id: int | None = None, account: str = "", answered: bool = False,
                   now: datetime | None = None) -> ConversationMessage | None:
    """Log and answer one incoming message; None when it was seen before (nothing happens twice)."""
    now = now or timezone.now()
    app = WeChatApp.objects.filter(pk=app_id, workspace_id=workspace_id).first()
    if app is None or not external_id:
        return None
    settings_row = service_settings(workspace=workspace_id)
    with transaction.atomic():
        conversation = _conversation(workspace_id=workspace_id, channel=channel, app=app, peer=peer,
                                     account=account, customer_id=customer_id, now=now)
        try:
            with transaction.atomic():
                incoming = ConversationMessage.objects.create(
                    workspace_id=workspace_id, conversation=conversation, channel=channel,
                    external_id=external_id[:128], direction=Direction.IN, sender=Sender.CUSTOMER,
                    text=text[:TEXT_MAX], created_at=now)
        except IntegrityError:
            return None  # WeChat retried the callback, or the task ran again: answered already
        if answered:
            incoming.resolution = Resolution.DEFERRED
            incoming.save(update_fields=["resolution"])
            return incoming
        if not settings_row.enabled or _person_on_it(conversation) is not None:
            return incoming  # a person is on this conversation (or the bot is off): the staff inbox shows it
        decision = decide(text=text, rules=keyword_rules(workspace_id=workspace_id),
                          index=faq_index(workspace_id=workspace_id), threshold=settings_row.threshold)
        incoming.resolution = decision.kind
        incoming.score = decision.score
        if decision.kind == "keyword":
            incoming.rule_id = decision.rule.ident
            KeywordRule.objects.filter(pk=decision.rule.ident).update(hits=F("hits") + 1)
        elif decision.hit is not None:
            incoming.faq_id = decision.hit.faq.ident
        incoming.save(update_fields=["resolution", "score", "rule", "faq"])
        if decision.kind == "faq":
            FaqEntry.objects.filter(pk=decision.hit.faq.ident).update(hits=F("hits") + 1)
        if decision.kind in {"keyword", "faq"}:
            _outgoing(conversation, text=decision.reply, sender=Sender.BOT, resolution=decision.kind,
                      reply_to=incoming, faq_id=incoming.faq_id, rule_id=incoming.rule_id, score=incoming.score,
                      now=now)
            return incoming
        _handoff(conversation, incoming, decision, settings_row, now)
        if settings_row.handoff_reply.strip():
            _outgoing(conversation, text=settings_row.handoff_reply.strip(), sender=Sender.BOT,
                      resolution=Resolution.HANDOFF, reply_to=incoming, score=incoming.score, now=now)
    return incoming


def staff_reply(*, conversation: Conversation, user: Any, text: str) -> ConversationMessage:
    """A person answers the customer through the conversation's channel; logged and audited. WeChat's rules
    (48-hour window, per-interaction count) refuse with a clear message and nothing is stored."""
    text = (text or "").strip()
    if not text:
        raise SiyuError("reply_required", "请填写回复内容", "The reply text is required", details={"field": "text"})
    if len(text) > TEXT_MAX:
        raise SiyuError("reply_too_long", f"回复最多 {TEXT_MAX} 字", f"A reply is at most {TEXT_MAX} characters",
                        details={"field": "text"})
    now = timezone.now()
    with transaction.atomic():
        message = _outgoing(conversation, text=text, sender=Sender.STAFF, resolution=Resolution.STAFF, staff=user,
                            now=now)
        audit_record(workspace=conversation.workspace, actor=user, action="service_staff_reply",
                     target_type="conversation", target_id=conversation.pk, message_id=message.pk)
    return message


# ------------------------------------------------------------------------------------------ configuration


def _lines(raw: Any, *, field: str, each_max: int) -> list[str]:
    items = raw.splitlines() if isinstance(raw, str) else list(raw or [])
    cleaned = []
    for item in items:
        text = str(item).strip()
        if not text or text in cleaned:
            continue
        if len(text) > each_max:
            raise SiyuError("faq_invalid", f"每行最多 {each_max} 个字", f"Each line is at most {each_max} characters",
                            details={"field": field})
        cleaned.append(text)
    if len(cleaned) > VARIANTS_MAX:
        raise SiyuError("faq_invalid", f"最多 {VARIANTS_MAX} 行", f"At most {VARIANTS_MAX} lines", details={"field": field})
    return cleaned


def faq_save(*, workspace: Workspace, actor: Any, question: str, answer: str, variants: Any = (),
             synonyms: Any = (), faq_id: int | None = None, enabled: bool = True) -> FaqEntry:
    question, answer = (question or "").strip(), (answer or "").strip()
    if not question or len(question) > 200:
        raise SiyuError("faq_invalid", "标准问题必填，最多 200 字", "The question is required (at most 200 characters)",
                        details={"field": "question"})
    if not answer or len(answer) > TEXT_MAX:
        raise SiyuError("faq_invalid", f"答案必填，最多 {TEXT_MAX} 字", f"The answer is required (at most {TEXT_MAX} "
                        "characters)", details={"field": "answer"})
    variant_list = _lines(variants, field="variants", each_max=200)
    synonym_list = _lines(synonyms, field="synonyms", each_max=30)
    with transaction.atomic():
        if faq_id is not None:
            entry = FaqEntry.objects.select_for_update().filter(workspace=workspace, pk=faq_id).first()
            if entry is None:
                raise SiyuError("not_found", "问答不存在", "FAQ entry not found", status=404)
        else:
            entry = FaqEntry(workspace=workspace)
        entry.question, entry.answer, entry.variants, entry.synonyms = question, answer, variant_list, synonym_list
        entry.enabled = enabled
        entry.save()
        audit_record(workspace=workspace, actor=actor, action="service_faq_save", target_type="faq", target_id=entry.pk)
    return entry


def faq_delete(*, workspace: Workspace, actor: Any, faq_id: int) -> None:
    with transaction.atomic():
        deleted, _ = FaqEntry.objects.filter(workspace=workspace, pk=faq_id).delete()
        if not deleted:
            raise SiyuError("not_found", "问答不存在", "FAQ entry not found", status=404)
        audit_record(workspace=workspace, actor=actor, action="service_faq_delete", target_type="faq", target_id=faq_id)


def rule_save(*, workspace: Workspace, actor: Any, pattern: str, match: str, reply: str, priority: Any = 0,
              rule_id: int | None = None) -> KeywordRule:
    pattern, match, reply = rule_check(pattern=pattern, match=match, reply=reply)
    try:
        priority = int(str(priority).strip() or 0)
    except ValueError:
        priority = None
    if priority is None or not -1000 <= priority <= 1000:
        raise SiyuError("service_rule_invalid", "优先级必须是 -1000 到 1000 的整数",
                        "Priority must be a whole number from -1000 to 1000", details={"field": "priority"})
    with transaction.atomic():
        if rule_id is not None:
            rule = KeywordRule.objects.select_for_update().filter(workspace=workspace, pk=rule_id).first()
            if rule is None:
                raise SiyuError("not_found", "关键词规则不存在", "Keyword rule not found", status=404)
        else:
            rule = KeywordRule(workspace=workspace)
        rule.pattern, rule.match, rule.reply, rule.priority = pattern, match, reply, priority
        rule.save()
        audit_record(workspace=workspace, actor=actor, action="service_rule_save", target_type="service_rule",
                     target_id=rule.pk)
    return rule


def rule_delete(*, workspace: Workspace, actor: Any, rule_id: int) -> None:
    with transaction.atomic():
        deleted, _ = KeywordRule.objects.filter(workspace=workspace, pk=rule_id).delete()
        if not deleted:
            raise SiyuError("not_found", "关键词规则不存在", "Keyword rule not found", status=404)
        audit_record(workspace=workspace, actor=actor, action="service_rule_delete", target_type="service_rule",
                     target_id=rule_id)


def settings_update(*, workspace: Workspace, actor: Any, enabled: bool, threshold: Any, handoff_reply: str,
                    handoff_sla_minutes: Any, priority_sla_minutes: Any) -> ServiceSettings:
    try:
        value = float(str(threshold).strip())
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise SiyuError("threshold_invalid", "置信度阈值必须在 0 到 1 之间（例如 0.45）",
                        "The confidence threshold must be between 0 and 1 (e.g. 0.45)", details={"field": "threshold"})
    minutes = []
    for raw, name in ((handoff_sla_minutes, "handoff_sla_minutes"), (priority_sla_minutes, "priority_sla_minutes")):
        text = str(raw).strip()
        if not text.isdigit() or not 1 <= int(text) <= 10080:
            raise SiyuError("sla_invalid", "响应时限必须是 1 到 10080 分钟", "Response time must be 1-10080 minutes",
                            details={"field": name})
        minutes.append(int(text))
    handoff_reply = (handoff_reply or "").strip()
    if len(handoff_reply) > 500:
        raise SiyuError("handoff_reply_too_long", "转人工提示最多 500 字", "The handoff message is at most 500 characters",
                        details={"field": "handoff_reply"})
    with transaction.atomic():
        row = service_settings(workspace=workspace)
        row.enabled, row.threshold, row.handoff_reply = bool(enabled), round(value, 4), handoff_reply
        row.handoff_sla_minutes, row.priority_sla_minutes = minutes
        row.save()
        audit_record(workspace=workspace, actor=actor, action="service_settings_update", target_type="service",
                     target_id=workspace.pk, threshold=row.threshold, enabled=row.enabled)
    return row


# ------------------------------------------------------------------------------------------ 微信客服


KF_PAGES_MAX = 20  # per event: 20 × 1000 messages; the rest waits for the next event


def kf_messages_pull(*, app_id: int, token: str = "", open_kfid: str = "") -> int:
    """Read new 微信客服 messages from the stored cursor and answer the customers' texts; returns how many
    incoming messages were new. The cursor row is locked, so two events for one account never read the same
    page twice; a message read twice anyway (a crash before the cursor was saved) is stopped by its msgid."""
    app = WeChatApp.objects.filter(pk=app_id).first()
    if app is None or not open_kfid:
        return 0
    KfCursor.objects.get_or_create(app=app, open_kfid=open_kfid, defaults={"workspace_id": app.workspace_id})
    fresh = 0
    with transaction.atomic():
        cursor = KfCursor.objects.select_for_update().get(app=app, open_kfid=open_kfid)
        for _page in range(KF_PAGES_MAX):
            page = kf.kf_sync(app, cursor=cursor.cursor, token=token, open_kfid=open_kfid)
            # our own sends (origin 5), system events and non-text messages are not answered
            texts = [item for item in page["msg_list"] if item.get("origin") == 3 and item.get("msgtype") == "text"]
            peers = {str(item.get("external_userid") or "")[:64] for item in texts}
            customers = dict(Identity.objects.filter(
                workspace_id=app.workspace_id, kind=IdentityKind.EXTERNAL_USERID, namespace=app.appid,
                value__in=peers).values_list("value", "customer_id")) if peers else {}
            for item in texts:
                external_userid = str(item.get("external_userid") or "")[:64]
                answered = message_answer(
                    workspace_id=app.workspace_id, channel=Channel.WECOM_KF, app_id=app.pk, peer=external_userid,
                    account=open_kfid, text=str((item.get("text") or {}).get("content") or ""),
                    external_id=f"{app.appid}:{item.get('msgid')}", customer_id=customers.get(external_userid))
                fresh += answered is not None
            cursor.cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        cursor.synced_at = timezone.now()
        cursor.save(update_fields=["cursor", "synced_at"])
    return fresh
