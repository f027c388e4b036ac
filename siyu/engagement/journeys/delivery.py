"""Delivering journey messages and webhooks from the outbox, never twice.

A message is claimed under ``FOR UPDATE SKIP LOCKED`` and marked ``sending`` in a committed transaction
*before* WeChat is called; the outcome is written after. A worker that dies between the two leaves the row in
``sending``: after the lease the sweep marks it ``unknown`` and never resends it — the customer may or may
not have it, and a duplicate is the worse failure (WeChat counts complaints). A call that timed out waiting
for WeChat's answer (``outcome_unknown`` from the adapter) is ``unknown`` too. Only errors that prove nothing
was sent (rate limits, WeChat unreachable before the request) are retried later.

Webhooks are different: the receiver gets an ``X-Siyu-Delivery`` key and dedupes by it, so a webhook left in
``sending`` is retried (at-least-once), each attempt signed with HMAC-SHA256 and recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.engagement.journeys.models import JourneyMessage, JourneyVersion, MessageStatus
from siyu.engagement.journeys.schedule import after_quiet_hours, in_quiet_hours

logger = logging.getLogger(__name__)
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5
WEBHOOK_TIMEOUT = 5  # seconds
BATCH = 200


class Retry(Exception):
    """Nothing was sent; try again after ``seconds``."""

    def __init__(self, reason: str, seconds: float = 60):
        super().__init__(reason)
        self.reason, self.seconds = reason, seconds


class Unknown(Exception):
    """WeChat may have delivered it: record, never resend."""


def messages_sweep(*, now: datetime) -> int:
    """Messages whose sending worker vanished: unknown (WeChat) or back in the queue (webhooks, deduped)."""
    stale = JourneyMessage.objects.filter(status=MessageStatus.SENDING, attempt_started_at__lt=now - LEASE)
    webhooks = stale.filter(channel="webhook").update(status=MessageStatus.PLANNED, due_at=now)
    wechat = stale.exclude(channel="webhook").update(
        status=MessageStatus.UNKNOWN, error="发送中断，微信可能已送达；为避免重复发送不再重试 / interrupted, not resent")
    return webhooks + wechat


def messages_due(*, now: datetime, limit: int = BATCH) -> list[int]:
    return list(JourneyMessage.objects.filter(status__in=[MessageStatus.PLANNED, MessageStatus.DEFERRED],
                                              due_at__lte=now).order_by("due_at", "pk")
                .values_list("pk", flat=True)[:limit])


def messages_deliver(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """Sweep, then send what is due; returns how many this worker claimed."""
    now = now or timezone.now()
    messages_sweep(now=now)
    claimed = 0
    for message_id in messages_due(now=now, limit=limit):
        message = _claim(message_id, now)
        if message is None:
            continue
        claimed += 1
        _send(message, now)
    return claimed


def _claim(message_id: int, now: datetime) -> JourneyMessage | None:
    with transaction.atomic():
        message = (JourneyMessage.objects.select_for_update(skip_locked=True)
                   .filter(pk=message_id, status__in=[MessageStatus.PLANNED, MessageStatus.DEFERRED],
                           due_at__lte=now).first())
        if message is None:
            return None
        if message.channel != "webhook":
            from siyu.engagement.journeys.engine import journey_settings

            quiet = journey_settings(message.workspace_id)
            if in_quiet_hours(now, start=quiet.quiet_start, end=quiet.quiet_end):
                # A late worker never sends into quiet hours: the message waits for the morning.
                message.status = MessageStatus.DEFERRED
                message.due_at = after_quiet_hours(now, start=quiet.quiet_start, end=quiet.quiet_end)
                message.save(update_fields=["status", "due_at"])
                return None
        message.status, message.attempts, message.attempt_started_at = MessageStatus.SENDING, message.attempts + 1, now
        message.save(update_fields=["status", "attempts", "attempt_started_at"])
    return message


def _record(message: JourneyMessage, *, status: str, now: datetime, ref: str = "", error: str = "",
            retry_in: float | None = None) -> None:
    fields = {"status": status, "error": error[:255]}
    if ref:
        fields["provider_ref"] = ref[:64]
    if status == MessageStatus.SENT:
        fields["sent_at"] = now
    if retry_in is not None:
        fields["due_at"] = now + timedelta(seconds=retry_in)
    JourneyMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(**fields)


def _send(message: JourneyMessage, now: datetime) -> None:
    try:
        ref = _call(message, now)
    except Retry as retry:
        if message.attempts >= MAX_ATTEMPTS:
            _record(message, status=MessageStatus.FAILED, now=now, error=f"重试 {message.attempts} 次后放弃：{retry.reason}")
        else:
            _record(message, status=MessageStatus.PLANNED, now=now, error=retry.reason, retry_in=retry.seconds)
        return
    except Unknown as unknown:
        _record(message, status=MessageStatus.UNKNOWN, now=now, error=str(unknown))
        return
    except SiyuError as error:
        status = MessageStatus.CAPPED if error.code == "mass_send_monthly_limit" else MessageStatus.FAILED
        _record(message, status=status, now=now, error=f"{error.code}: {error.message_zh}")
        return
    except Exception as error:  # an unexpected failure after the call may have sent it: unknown, not resent
        logger.exception("journey message %s failed", message.pk)
        if message.channel == "webhook":
            _record(message, status=MessageStatus.PLANNED, now=now, error=str(error)[:200], retry_in=60)
        else:
            _record(message, status=MessageStatus.UNKNOWN, now=now, error=f"内部错误 / internal error: {error}"[:255])
        return
    _record(message, status=MessageStatus.SENT, now=now, ref=ref)


def _wechat(fn):
    """Map the adapter's errors: timeouts after sending are unknown, limits and outages are retried."""
    from siyu.wechat.clients import WeChatApiError, WeChatRateLimited

    try:
        return fn()
    except WeChatApiError as error:
        if error.outcome_unknown:
            raise Unknown("请求超时，微信可能已送达；不再重试 / timed out, WeChat may have delivered it") from None
        if isinstance(error, WeChatRateLimited):
            raise Retry(f"{error.errcode} 微信限流 / rate limited", error.retry_after or 300) from None
        if error.errcode is None:
            raise Retry("微信暂时不可用 / WeChat unavailable", 60) from None
        raise


def _call(message: JourneyMessage, now: datetime) -> str:
    """Hand the message to the adapter; returns WeChat's reference. Raises Retry / Unknown / SiyuError."""
    from siyu.customers.models import Identity
    from siyu.wechat.clients import official_client, wechat_call
    from siyu.wechat.models import WeChatApp

    payload, channel = message.payload, message.channel
    if channel == "webhook":
        return _webhook(message, now)
    app = WeChatApp.objects.get(workspace_id=message.workspace_id, pk=int(payload["app_id"]))
    if channel in ("official_template", "official_custom"):
        from siyu.wechat.official.models import Follower

        openids = Identity.objects.filter(customer_id=message.customer_id, kind="openid", namespace=app.appid) \
            .values_list("value", flat=True)
        follower = (Follower.objects.filter(app=app, openid__in=list(openids), subscribed=True)
                    .order_by(F("last_interaction_at").desc(nulls_last=True), "pk").first())  # as planned
        if follower is None:
            raise SiyuError("not_a_follower", "未关注公众号", "Not following the account", status=409)
        client = official_client(app)
        if channel == "official_template":
            data = {key: value if isinstance(value, dict) else {"value": str(value)}
                    for key, value in (payload.get("data") or {}).items()}
            answer = _wechat(lambda: wechat_call(app, "message.template.send", client.message.send_template,
                                                 follower.openid, payload["template_id"], data,
                                                 url=payload.get("url") or None))
        else:
            answer = _wechat(lambda: wechat_call(app, "message.custom.send", client.message.send_text,
                                                 follower.openid, str(payload["text"])))
        return str((answer or {}).get("msgid") or "")
    if channel == "miniapp_subscribe":
        from siyu.wechat.consumer.miniapp import subscribe_message_send

        identity = Identity.objects.filter(customer_id=message.customer_id, kind="openid", namespace=app.appid).first()
        if identity is None:
            raise SiyuError("no_openid", "客户没有该小程序的 openid", "No openid in this mini-program", status=409)
        data = {key: value if isinstance(value, dict) else {"value": str(value)}
                for key, value in (payload.get("data") or {}).items()}
        result = _wechat(lambda: subscribe_message_send(app=app, identity=identity, template_id=payload["template_id"],
                                                        data=data, page=payload.get("page") or "", now=now))
        return result.msgid
    if channel == "wecom_mass":
        from siyu.wechat.work import wecom
        from siyu.wechat.work.campaigns import mass_send_create

        try:
            mass = _wechat(lambda: mass_send_create(workspace=app.workspace, app=app, text=payload["text"],
                                                    customer_ids=[message.customer_id], now=now))
        except wecom.RateLimited:
            # The adapter keeps the task queued and submits it itself: it is on its way, not to be redone.
            return "queued"
        return f"mass:{mass.pk}"
    raise SiyuError("journey_channel_unknown", "未知的发送渠道", "Unknown channel")


def webhook_signature(secret: str, body: bytes, timestamp: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _webhook(message: JourneyMessage, now: datetime) -> str:
    import requests

    from siyu.engagement.journeys.webhook_secrets import step_secret

    step = next((s for s in JourneyVersion.objects.get(journey_id=message.journey_id, version=message.run.version)
                 .definition["steps"] if s["id"] == message.step_id), None)
    if step is None:
        raise SiyuError("journey_step_missing", "步骤不存在", "Step missing")
    body = json.dumps({"delivery": message.idempotency_key, "journey_id": message.journey_id, "run_id": message.run_id,
                       "step_id": message.step_id, "customer_id": message.customer_id,
                       "at": now.isoformat()}, ensure_ascii=False, sort_keys=True).encode()
    timestamp = str(int(now.timestamp()))
    headers = {"Content-Type": "application/json", "X-Siyu-Delivery": message.idempotency_key,
               "X-Siyu-Timestamp": timestamp, "X-Siyu-Signature": webhook_signature(step_secret(step), body, timestamp)}
    try:
        response = requests.post(step["url"], data=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
    except requests.RequestException as error:
        raise Retry(f"webhook: {type(error).__name__}", 60 * message.attempts) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise Retry(f"webhook HTTP {response.status_code}", 60 * message.attempts)
    if response.status_code >= 400:
        raise SiyuError("webhook_refused", f"Webhook 拒绝（HTTP {response.status_code}）",
                        f"Webhook refused (HTTP {response.status_code})", status=502)
    return f"HTTP {response.status_code}"

