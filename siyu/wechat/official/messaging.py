"""Template, mass and customer-service messages of a 公众号, through WeChat's limits (SPEC W6).

A request is checked against the rules first and refused with the reason when it asks for more than
WeChat allows (mass-send quota of 订阅号/服务号, 2–10,000 openids, the 48-hour customer-service window,
followers only). An accepted request is a :class:`MessageSend` with one row per recipient; the Huey
task :func:`send_execute` works through it. A rate limit (45009/45011) leaves the send ``retrying``
with a back-off and an ApiIssue, never dropped; a retried mass send reuses its ``clientmsgid`` so
WeChat never sends it twice.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.customers.models import CustomerTag, Identity
from siyu.wechat.clients import WeChatApiError, WeChatRateLimited, official_client, wechat_call
from siyu.wechat.models import WeChatApp
from siyu.wechat.official.models import (
    Follower,
    MessageRecipient,
    MessageSend,
    RecipientStatus,
    SendKind,
    SendStatus,
)
from siyu.wechat.official.rules import (
    custom_window_check,
    mass_quota_check,
    mass_recipients_check,
    retry_delay,
    text_check,
)
from siyu.wechat.official.services import official_settings

MAX_ATTEMPTS = 8
TEMPLATE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
CLIENT_MSG_ID_USED = 45065  # WeChat already took this mass send (an earlier attempt's answer was lost)
NOT_FOLLOWING = 43004


def _openids_for(*, app: WeChatApp, openids: list[str] | None, tag_id: Any) -> list[str]:
    """The openids a request names: given directly, or those of customers carrying a Siyu tag."""
    if tag_id not in (None, ""):
        if not str(tag_id).isdigit():
            raise SiyuError("tag_invalid", "标签不存在", "Tag not found", status=404)
        customer_ids = CustomerTag.objects.filter(workspace_id=app.workspace_id, tag_id=int(tag_id)).values("customer_id")
        return sorted(set(Identity.objects.filter(workspace_id=app.workspace_id, kind="openid", namespace=app.appid,
                                                  customer_id__in=customer_ids).values_list("value", flat=True)))
    cleaned = sorted({str(openid).strip() for openid in (openids or []) if str(openid).strip()})
    if any(len(openid) > 64 for openid in cleaned):
        raise SiyuError("openid_invalid", "openid 格式不正确", "Malformed openid")
    return cleaned


def _followers(app: WeChatApp, openids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(openids), 1000):
        found.update(Follower.objects.filter(app=app, subscribed=True, openid__in=openids[start:start + 1000])
                     .values_list("openid", flat=True))
    return found


def _create(*, app: WeChatApp, actor: Any, kind: str, target: dict, content: dict, openids: list[str],
            refused: dict[str, tuple[int, str]] | None = None) -> MessageSend:
    refused = refused or {}
    with transaction.atomic():
        send = MessageSend.objects.create(workspace_id=app.workspace_id, app=app, kind=kind, target=target,
                                          content=content, created_by=actor if getattr(actor, "pk", None) else None)
        MessageRecipient.objects.bulk_create(
            [MessageRecipient(send=send, openid=openid) for openid in openids if openid not in refused]
            + [MessageRecipient(send=send, openid=openid, status=RecipientStatus.FAILED, errcode=code, errmsg=why)
               for openid, (code, why) in refused.items()], batch_size=1000)
        audit_record(workspace=app.workspace, actor=actor, action=f"official_{kind}_send", target_type="message_send",
                     target_id=send.pk, recipients=len(openids), refused=len(refused))
        transaction.on_commit(lambda: _enqueue(send.pk))
    return send


def _enqueue(send_id: int) -> None:
    from siyu.wechat.official.tasks import official_send_task

    official_send_task(send_id)


def template_send_request(*, app: WeChatApp, actor: Any, template_id: str, data: Any, url: str = "",
                          openids: list[str] | None = None, tag_id: Any = None) -> MessageSend:
    template_id = (template_id or "").strip()
    if not TEMPLATE_ID.fullmatch(template_id):
        raise SiyuError("template_id_invalid", "模板 ID 格式不正确", "Malformed template id",
                        details={"field": "template_id"})
    if not isinstance(data, dict) or not data or not all(isinstance(key, str) for key in data):
        raise SiyuError("template_data_invalid", "模板数据必须是非空对象，例如 {\"first\": {\"value\": \"…\"}}",
                        "Template data must be a non-empty object such as {\"first\": {\"value\": \"…\"}}",
                        details={"field": "data"})
    fields = {key: value if isinstance(value, dict) else {"value": str(value)} for key, value in data.items()}
    if url and not str(url).startswith(("http://", "https://")):
        raise SiyuError("template_url_invalid", "跳转链接必须以 http(s):// 开头", "The link must start with http(s)://",
                        details={"field": "url"})
    wanted = _openids_for(app=app, openids=openids, tag_id=tag_id)
    if not wanted:
        raise SiyuError("no_recipients", "没有选中任何接收人", "No recipients chosen")
    following = _followers(app, wanted)
    if not following:
        raise SiyuError("template_no_followers", "选中的用户都未关注公众号：模板消息只能发给关注者",
                        "None of the chosen users follows the account; template messages reach followers only",
                        details={"recipients": len(wanted)})
    refused = {openid: (NOT_FOLLOWING, "未关注公众号，微信不允许发送模板消息 / not a follower")
               for openid in wanted if openid not in following}
    return _create(app=app, actor=actor, kind=SendKind.TEMPLATE, target={"openids": len(wanted)},
                   content={"template_id": template_id, "data": fields, "url": url or ""}, openids=wanted,
                   refused=refused)


def mass_sends_used(*, app: WeChatApp) -> list:
    """When this account's earlier mass sends were accepted (the quota counts them; failed ones do not)."""
    since = timezone.now() - timedelta(days=32)
    return list(MessageSend.objects.filter(app=app, kind=SendKind.MASS, created_at__gte=since)
                .exclude(status=SendStatus.FAILED).values_list("created_at", flat=True))


def mass_send_request(*, app: WeChatApp, actor: Any, text: str, to_all: bool = False,
                      openids: list[str] | None = None, tag_id: Any = None) -> MessageSend:
    text = text_check(text)
    settings_row = official_settings(app=app)
    with transaction.atomic():
        # One mass send at a time per account, so two operators cannot both take the last quota.
        WeChatApp.objects.select_for_update().filter(pk=app.pk).first()
        mass_quota_check(account_type=settings_row.account_type, earlier_sends=mass_sends_used(app=app),
                         now=timezone.now())
        if to_all:
            recipients = list(Follower.objects.filter(app=app, subscribed=True).values_list("openid", flat=True))
            if not recipients:
                raise SiyuError("no_recipients", "公众号还没有关注者", "The account has no followers yet")
            target: dict[str, Any] = {"to_all": True}
        else:
            wanted = _openids_for(app=app, openids=openids, tag_id=tag_id)
            recipients = sorted(_followers(app, wanted))
            mass_recipients_check(len(recipients))
            target = {"openids": len(recipients), **({"tag_id": int(tag_id)} if tag_id not in (None, "") else {})}
        return _create(app=app, actor=actor, kind=SendKind.MASS, target=target, content={"text": text},
                       openids=recipients)


def custom_send_request(*, app: WeChatApp, actor: Any, openid: str, text: str) -> MessageSend:
    text = text_check(text)
    follower = Follower.objects.filter(app=app, openid=(openid or "").strip()).first()
    if follower is None or not follower.subscribed:
        raise SiyuError("not_a_follower", "该用户未关注公众号", "This user does not follow the account", status=404)
    sent_since = MessageRecipient.objects.filter(
        send__app=app, send__kind=SendKind.CUSTOM, openid=follower.openid, status=RecipientStatus.SENT,
        sent_at__gte=follower.last_interaction_at or timezone.now()).count()
    custom_window_check(last_interaction_at=follower.last_interaction_at, sent_since=sent_since, now=timezone.now())
    return _create(app=app, actor=actor, kind=SendKind.CUSTOM, target={"openids": 1}, content={"text": text},
                   openids=[follower.openid])


# --- execution (the Huey task) -------------------------------------------------------------------
LEASE = timedelta(minutes=10)  # a claimed send is not claimed again before this, unless it settles first


def _claim(send_id: int) -> MessageSend | None:
    """Take the send for one attempt. ``next_attempt_at`` doubles as a lease, so two workers never work
    on the same send at once and a worker that died mid-send is taken over after the lease."""
    now = timezone.now()
    with transaction.atomic():
        send = MessageSend.objects.select_for_update().select_related("app").filter(pk=send_id).first()
        if send is None or send.status not in {SendStatus.QUEUED, SendStatus.RETRYING}:
            return None
        if send.next_attempt_at and send.next_attempt_at > now:
            return None
        send.attempts += 1
        send.next_attempt_at = now + LEASE
        send.save(update_fields=["attempts", "next_attempt_at"])
    return send


def _mark(recipients: list[str], send: MessageSend, *, status: str, errcode: int | None = None,
          errmsg: str = "") -> None:
    MessageRecipient.objects.filter(send=send, openid__in=recipients, status=RecipientStatus.PENDING).update(
        status=status, errcode=errcode, errmsg=errmsg[:256],
        sent_at=timezone.now() if status == RecipientStatus.SENT else None)


def _retry_later(error: WeChatApiError) -> bool:
    """Worth trying again later: a quota or rate limit that resets, or WeChat unreachable (no errcode)."""
    if isinstance(error, WeChatRateLimited):
        return error.retry_after is not None
    return error.errcode is None


def send_execute(*, send_id: int) -> MessageSend | None:
    """Send what is pending of one send; returns it with its new status (None if not due or finished)."""
    send = _claim(send_id)
    if send is None:
        return None
    app = send.app
    client = official_client(app)
    pending = list(send.recipients.filter(status=RecipientStatus.PENDING).values_list("openid", flat=True))
    stopped: WeChatApiError | None = None
    if send.kind == SendKind.MASS:
        stopped = _mass(send, client, pending)
    else:
        for openid in pending:
            try:
                if send.kind == SendKind.TEMPLATE:
                    wechat_call(app, "message.template.send", client.message.send_template, openid,
                                send.content["template_id"], send.content["data"], url=send.content.get("url") or None)
                else:
                    wechat_call(app, "message.custom.send", client.message.send_text, openid, send.content["text"])
            except WeChatApiError as error:
                if error.outcome_unknown:
                    # WeChat may have delivered it: never send it twice; the operator sees it as unknown
                    _mark([openid], send, status=RecipientStatus.UNKNOWN, errcode=None,
                          errmsg="请求超时，微信可能已送达；为避免重复发送不再重试")
                    continue
                if _retry_later(error):
                    stopped = error
                    break
                # this customer's window or count, not following, a bad template: final for them
                _mark([openid], send, status=RecipientStatus.FAILED, errcode=error.errcode, errmsg=error.message_zh)
                continue
            _mark([openid], send, status=RecipientStatus.SENT)
    return _settle(send, stopped)


def _mass(send: MessageSend, client, pending: list[str]) -> WeChatApiError | None:
    text, client_msg_id = send.content["text"], f"siyu-{send.pk}"
    try:
        if send.target.get("to_all"):
            answer = wechat_call(send.app, "message.mass.sendall", client.message.send_mass_text, None, text,
                                 is_to_all=True, client_msg_id=client_msg_id)
        else:
            answer = wechat_call(send.app, "message.mass.send", client.message.send_mass_text, pending, text,
                                 client_msg_id=client_msg_id)
    except WeChatApiError as error:
        if _retry_later(error):
            return error
        if error.errcode == CLIENT_MSG_ID_USED:  # an earlier attempt went through
            _mark(pending, send, status=RecipientStatus.SENT)
            return None
        _mark(pending, send, status=RecipientStatus.FAILED, errcode=error.errcode, errmsg=error.message_zh)
        send.last_error = error.message_zh[:512]
        return None
    send.wechat_msg_id = str((answer or {}).get("msg_id") or "")
    _mark(pending, send, status=RecipientStatus.SENT)
    return None


def _settle(send: MessageSend, stopped: WeChatApiError | None) -> MessageSend:
    counts = dict.fromkeys(RecipientStatus.values, 0)
    counts.update(send.recipients.values_list("status").annotate(n=Count("pk")).order_by())
    now = timezone.now()
    send.next_attempt_at = None
    if stopped is not None and counts[RecipientStatus.PENDING]:
        if send.attempts >= MAX_ATTEMPTS:
            gave_up = f"重试 {send.attempts} 次后仍未成功，已停止：{stopped.message_zh}"
            _mark(list(send.recipients.filter(status=RecipientStatus.PENDING).values_list("openid", flat=True)), send,
                  status=RecipientStatus.FAILED, errcode=stopped.errcode, errmsg=gave_up)
            counts[RecipientStatus.FAILED] += counts[RecipientStatus.PENDING]
            counts[RecipientStatus.PENDING] = 0
            send.last_error = gave_up[:512]
        else:
            retry_after = stopped.retry_after if isinstance(stopped, WeChatRateLimited) else None
            send.status = SendStatus.RETRYING
            send.next_attempt_at = now + timedelta(seconds=retry_delay(send.attempts, retry_after=retry_after))
            send.last_error = f"{stopped.errcode or ''} {stopped.message_zh}".strip()[:512]
            send.save(update_fields=["status", "next_attempt_at", "last_error", "wechat_msg_id"])
            return send
    if counts[RecipientStatus.SENT] and (counts[RecipientStatus.FAILED] or counts[RecipientStatus.UNKNOWN]):
        send.status = SendStatus.PARTIAL
    elif counts[RecipientStatus.SENT]:
        send.status = SendStatus.SENT
    else:
        send.status = SendStatus.FAILED
    send.finished_at = now
    send.save(update_fields=["status", "next_attempt_at", "last_error", "wechat_msg_id", "finished_at"])
    return send


def sends_due(*, now=None) -> list[int]:
    """Sends whose retry time (or lease) has passed, or queued ones whose task seems lost (the periodic
    safety net re-queues them)."""
    now = now or timezone.now()
    waiting = Q(status__in=[SendStatus.QUEUED, SendStatus.RETRYING])
    due = Q(next_attempt_at__lte=now) | Q(next_attempt_at=None, created_at__lte=now - LEASE)
    return list(MessageSend.objects.filter(waiting & due).values_list("pk", flat=True)[:500])
