"""What a verified 公众号 callback does: events into the customer timeline, followers kept, replies chosen.

subscribe (with or without a ``qrscene_`` scene) and SCAN become ``subscribe`` / ``qr_scan`` events on the
openid (namespace = AppID) and, when the account is bound to an open platform, the unionid fetched with
``user/info``; the channel is the one the QR code's scene is bound to, else 公众号's own. Event ids are
derived from the message (MsgId, or sender + CreateTime + event), so WeChat's retries are duplicates and
change nothing — QR counters and followers move only when the event was accepted.

A newly accepted text message is also published as the domain event ``MESSAGE_RECEIVED`` on commit, for
higher layers (the service bot) to answer through customer-service messages; this area never imports them.
Such a layer registers a *default-reply taker* (:func:`default_reply_taker_register`): when it says it will
answer for the account, the account's passive default reply is left out. The account's own keyword rules
still answer at once (passively, within WeChat's 5 s); the event says so (``answered``) so nobody answers twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from wechatpy.replies import TextReply

from siyu.core.domain_events import publish
from siyu.customers.ingestion import events_ingest
from siyu.wechat.callbacks import CallbackMessage
from siyu.wechat.clients import WeChatApiError, official_client, wechat_call
from siyu.wechat.models import WeChatApp
from siyu.wechat.official.models import AutoReplyRule, ChannelQrCode, Follower
from siyu.wechat.official.rules import KeywordRule, rule_matching
from siyu.wechat.official.services import OFFICIAL_CHANNEL, official_settings

logger = logging.getLogger(__name__)
TEXT_PROPERTY_MAX = 1000

# workspace_id, app_id (WeChatApp pk), appid, openid, customer_id (or None), text, msg_id, answered (bool:
# the account's keyword rule already replied passively)
MESSAGE_RECEIVED = "wechat_official.message_received"
_default_reply_takers: list[Callable[[WeChatApp], bool]] = []


def default_reply_taker_register(taker: Callable[[WeChatApp], bool]) -> None:
    """``taker(app)`` returns True when a higher layer answers this account's text messages itself."""
    if taker not in _default_reply_takers:
        _default_reply_takers.append(taker)


def _default_reply_taken(app: WeChatApp) -> bool:
    for taker in list(_default_reply_takers):
        try:
            if taker(app):
                return True
        except Exception:  # a broken taker must not cost the customer their default reply
            logger.exception("default-reply taker %r failed", taker)
    return False


@dataclass
class Handled:
    reply: str = ""  # text to answer with ("" → "success")
    accepted: int = 0  # events newly stored
    duplicates: int = 0
    outcomes: list[Any] = field(default_factory=list)  # ingestion's per-event outcomes


def event_id_for(message: CallbackMessage, suffix: str = "") -> str:
    """A stable id (≤64 characters) for this callback's event, the same on every WeChat retry."""
    digest = hashlib.sha256(f"{message.dedupe_key}|{suffix}".encode()).hexdigest()[:40]
    return f"wxmp-{suffix or 'e'}-{digest}"[:64]


def _occurred_at(message: CallbackMessage) -> str:
    raw = str(message.get("CreateTime"))
    moment = datetime.fromtimestamp(int(raw), tz=UTC) if raw.isdigit() else timezone.now()
    return moment.isoformat()


def _unionid(app: WeChatApp, openid: str, *, unionid_access: bool) -> str:
    """The follower's unionid via ``user/info`` (only for accounts bound to an open platform). A failure
    costs the unionid, not the event: WeChat would retry and we'd refuse again."""
    if not unionid_access:
        return ""
    try:
        info = wechat_call(app, "user.info", official_client(app).user.get, openid)
    except WeChatApiError as error:
        logger.warning("user/info failed for %s: %s", app.appid, error)
        return ""
    return str((info or {}).get("unionid") or "")


def _rule_reply(app: WeChatApp, text: str, *, exact_only: bool = False) -> str:
    rules = [KeywordRule(rule.keyword, rule.match, rule.reply_text, rule.priority, rule.pk)
             for rule in AutoReplyRule.objects.filter(app=app, enabled=True)
             if not exact_only or rule.match == "exact"]
    matched = rule_matching(rules, text)
    if matched is None:
        return ""
    AutoReplyRule.objects.filter(pk=matched.ident).update(hits=F("hits") + 1)
    return matched.reply


def callback_handle(*, message: CallbackMessage) -> Handled:
    """Handle one verified callback; call inside the transaction that claimed its nonce."""
    app = message.app
    openid = str(message.get("FromUserName"))
    if not openid:
        return Handled()
    settings_row = official_settings(app=app)
    kind, event = message.msg_type, message.event
    if kind == "event" and event in {"subscribe", "scan"}:
        return _subscribe_or_scan(message, app, openid, settings_row)
    if kind == "event" and event == "unsubscribe":
        handled = _ingest(message, app, [_event(message, "unsubscribe", openid, OFFICIAL_CHANNEL)])
        now = timezone.now()
        Follower.objects.filter(app=app, openid=openid).update(subscribed=False, unsubscribed_at=now)
        return handled
    if kind == "event" and event in {"click", "view"}:
        key = str(message.get("EventKey"))[:128]
        handled = _ingest(message, app, [_event(message, "menu_click", openid, OFFICIAL_CHANNEL,
                                                {"key": key, "menu_type": event})])
        _touch(app, openid)
        if event == "click" and handled.accepted:
            handled.reply = _rule_reply(app, key, exact_only=True)
        return handled
    if kind == "event":
        return Handled()  # template / mass job reports and others: nothing for the customer timeline
    text = str(message.get("Content")) if kind == "text" else ""
    handled = _ingest(message, app, [_event(message, "message_in", openid, OFFICIAL_CHANNEL,
                                            {"text": text[:TEXT_PROPERTY_MAX], "msg_type": kind})])
    _touch(app, openid)
    if kind == "text" and handled.accepted:
        rule_reply = _rule_reply(app, text)
        handled.reply = rule_reply or ("" if _default_reply_taken(app) else settings_row.default_reply)
        customer_id = next((outcome.customer_id for outcome in handled.outcomes if outcome.customer_id), None)
        publish(MESSAGE_RECEIVED, workspace_id=app.workspace_id, app_id=app.pk, appid=app.appid, openid=openid,
                customer_id=customer_id, text=text[:TEXT_PROPERTY_MAX], msg_id=str(message.get("MsgId") or
                                                                                 message.dedupe_key)[:100],
                answered=bool(rule_reply))
    return handled


def _event(message: CallbackMessage, event_type: str, openid: str, channel: str,
           properties: dict[str, Any] | None = None, *, unionid: str = "", suffix: str = "") -> dict[str, Any]:
    identities = [{"kind": "openid", "namespace": message.app.appid, "value": openid}]
    if unionid:
        identities.append({"kind": "unionid", "value": unionid})
    return {"event_id": event_id_for(message, suffix or event_type), "type": event_type,
            "occurred_at": _occurred_at(message), "identities": identities, "channel": channel,
            "properties": properties or {}}


def _ingest(message: CallbackMessage, app: WeChatApp, events: list[dict[str, Any]]) -> Handled:
    result = events_ingest(workspace=app.workspace, events=events)
    handled = Handled(accepted=result.count("accepted"), duplicates=result.count("duplicate"),
                      outcomes=result.outcomes)
    rejected = [outcome for outcome in result.outcomes if outcome.status == "rejected"]
    if rejected:  # our own mapping is wrong if this happens; keep the callback answered, log loudly
        logger.error("公众号 event rejected by ingestion: %s", [outcome.as_dict() for outcome in rejected])
    return handled


def _touch(app: WeChatApp, openid: str) -> None:
    """The user wrote or clicked: their 48-hour customer-service window starts now."""
    now = timezone.now()
    updated = Follower.objects.filter(app=app, openid=openid).update(last_interaction_at=now)
    if not updated:
        Follower.objects.get_or_create(app=app, openid=openid, defaults={
            "workspace_id": app.workspace_id, "last_interaction_at": now})


def _subscribe_or_scan(message: CallbackMessage, app: WeChatApp, openid: str, settings_row) -> Handled:
    is_subscribe = message.event == "subscribe"
    key = str(message.get("EventKey") or "")
    scene = key.removeprefix("qrscene_") if is_subscribe else key
    code = ChannelQrCode.objects.filter(app=app, scene_str=scene).first() if scene else None
    channel = code.channel if code else OFFICIAL_CHANNEL
    # A follower from before Siyu was connected first shows up with a SCAN: fetch their unionid then too.
    known = Follower.objects.filter(app=app, openid=openid).exclude(unionid="").exists()
    unionid = _unionid(app, openid, unionid_access=settings_row.unionid_access) if not known else ""
    properties = {"scene": scene, "qrcode_id": code.pk} if scene else {}
    events = []
    if scene:
        events.append(_event(message, "qr_scan", openid, channel, properties, unionid=unionid, suffix="qr_scan"))
    if is_subscribe:
        events.append(_event(message, "subscribe", openid, channel, properties, unionid=unionid, suffix="subscribe"))
    with transaction.atomic():
        handled = _ingest(message, app, events)
        accepted = {outcome.event_id for outcome in handled.outcomes if outcome.status == "accepted"}
        scanned = event_id_for(message, "qr_scan") in accepted
        subscribed = event_id_for(message, "subscribe") in accepted
        if code is not None and (scanned or subscribed):
            ChannelQrCode.objects.filter(pk=code.pk).update(scans=F("scans") + int(scanned),
                                                            subscribes=F("subscribes") + int(subscribed))
        customer_id = next((outcome.customer_id for outcome in handled.outcomes
                            if outcome.customer_id), None)
        now = timezone.now()
        follower, _created = Follower.objects.get_or_create(app=app, openid=openid,
                                                            defaults={"workspace_id": app.workspace_id})
        follower.last_interaction_at = now
        if unionid:
            follower.unionid = unionid
        if customer_id:
            follower.customer_id = customer_id
        if subscribed:
            follower.subscribed, follower.subscribed_at, follower.unsubscribed_at = True, now, None
            if code is not None and follower.qr_code_id is None:
                follower.qr_code = code
        elif not is_subscribe and scanned:
            follower.subscribed = True  # WeChat sends SCAN only to followers
        follower.save()
    if subscribed:
        handled.reply = settings_row.welcome_reply
    return handled


def reply_for(message: CallbackMessage, text: str) -> TextReply | None:
    """The passive text reply wechatpy renders (to/from swapped), or None for "success"."""
    if not text:
        return None
    return TextReply(source=str(message.get("ToUserName")), target=str(message.get("FromUserName")), content=text)
