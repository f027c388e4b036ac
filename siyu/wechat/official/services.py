"""公众号 writes: account settings, keyword rules, the menu (draft → published through WeChat), channel QR codes.

WeChat is called outside our write transactions (an API failure is recorded as an ApiIssue by
``wechat_call`` and must survive); what we store follows WeChat's answer.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from wechatpy.client.api.qrcode import WeChatQRCode

from siyu.channels.models import Channel
from siyu.core.channel_codes import BY_CODE, channel_normalize
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.wechat.clients import official_client, wechat_call
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.official.models import (
    AccountType,
    AutoReplyRule,
    ChannelQrCode,
    MatchKind,
    OfficialSettings,
    QrKind,
)
from siyu.wechat.official.rules import TEMP_QR_MAX_SECONDS, TEMP_QR_MIN_SECONDS, menu_validate
from siyu.wechat.transport import rewrite, simulator_base

OFFICIAL_CHANNEL = "official_account"  # SPEC T1 code of 公众号: followers without a channel QR code


def official_app(*, workspace, appid: str) -> WeChatApp:
    app = WeChatApp.objects.filter(workspace=workspace, kind=AppKind.OFFICIAL, appid=appid).first()
    if app is None:
        raise SiyuError("wechat_app_unknown", "未知的公众号", "Unknown official account", status=404)
    return app


def official_settings(*, app: WeChatApp) -> OfficialSettings:
    found = OfficialSettings.objects.filter(app=app).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return OfficialSettings.objects.create(app=app, workspace_id=app.workspace_id)
    except IntegrityError:  # created concurrently
        return OfficialSettings.objects.get(app=app)


def settings_update(*, app: WeChatApp, actor: Any, account_type: str, unionid_access: bool, welcome_reply: str,
                    default_reply: str) -> OfficialSettings:
    if account_type not in AccountType.values:
        raise SiyuError("invalid_account_type", "账号类型只能是订阅号或服务号",
                        "Account type must be subscription or service", details={"field": "account_type"})
    for field, value in (("welcome_reply", welcome_reply), ("default_reply", default_reply)):
        if len(value or "") > 2000:
            raise SiyuError("text_too_long", "回复内容最多 2000 字", "Replies are at most 2000 characters",
                            details={"field": field})
    with transaction.atomic():
        row = official_settings(app=app)
        row = OfficialSettings.objects.select_for_update().get(pk=row.pk)
        row.account_type, row.unionid_access = account_type, bool(unionid_access)
        row.welcome_reply, row.default_reply = (welcome_reply or "").strip(), (default_reply or "").strip()
        row.save()
        audit_record(workspace=app.workspace, actor=actor, action="official_settings_update",
                     target_type="wechat_app", target_id=app.pk, account_type=account_type,
                     unionid_access=bool(unionid_access))
    return row


# --- keyword rules ---------------------------------------------------------------------------------
def rule_save(*, app: WeChatApp, actor: Any, keyword: str, match: str, reply_text: str, priority: Any = 0,
              enabled: bool = True, rule_id: int | None = None) -> AutoReplyRule:
    keyword, reply_text = (keyword or "").strip(), (reply_text or "").strip()
    if not keyword or len(keyword) > 64:
        raise SiyuError("rule_keyword_invalid", "关键词必填，最多 64 字", "A keyword is required (at most 64 characters)",
                        details={"field": "keyword"})
    if match not in MatchKind.values:
        raise SiyuError("rule_match_invalid", "匹配方式只能是完全匹配或包含", "Match must be exact or contains",
                        details={"field": "match"})
    if not reply_text or len(reply_text) > 2000:
        raise SiyuError("rule_reply_invalid", "回复内容必填，最多 2000 字", "A reply is required (at most 2000 characters)",
                        details={"field": "reply_text"})
    try:
        priority = int(priority or 0)
    except (TypeError, ValueError):
        raise SiyuError("rule_priority_invalid", "优先级必须是整数", "Priority must be a whole number",
                        details={"field": "priority"}) from None
    if not -1000 <= priority <= 1000:
        raise SiyuError("rule_priority_invalid", "优先级范围为 -1000 到 1000", "Priority is between -1000 and 1000",
                        details={"field": "priority"})
    with transaction.atomic():
        if rule_id is None:
            rule = AutoReplyRule(workspace_id=app.workspace_id, app=app)
        else:
            rule = AutoReplyRule.objects.select_for_update().filter(app=app, pk=rule_id).first()
            if rule is None:
                raise SiyuError("not_found", "自动回复规则不存在", "Auto-reply rule not found", status=404)
        rule.keyword, rule.match, rule.reply_text = keyword, match, reply_text
        rule.priority, rule.enabled = priority, bool(enabled)
        rule.save()
        audit_record(workspace=app.workspace, actor=actor, action="official_rule_save", target_type="auto_reply_rule",
                     target_id=rule.pk, keyword=keyword, match=match, enabled=bool(enabled))
    return rule


def rule_delete(*, app: WeChatApp, actor: Any, rule_id: int) -> None:
    with transaction.atomic():
        deleted, _ = AutoReplyRule.objects.filter(app=app, pk=rule_id).delete()
        if not deleted:
            raise SiyuError("not_found", "自动回复规则不存在", "Auto-reply rule not found", status=404)
        audit_record(workspace=app.workspace, actor=actor, action="official_rule_delete",
                     target_type="auto_reply_rule", target_id=rule_id)


# --- menu ------------------------------------------------------------------------------------------
def menu_save(*, app: WeChatApp, actor: Any, menu: Any) -> OfficialSettings:
    clean = menu_validate(menu)
    with transaction.atomic():
        row = OfficialSettings.objects.select_for_update().get(pk=official_settings(app=app).pk)
        row.menu = clean
        row.save(update_fields=["menu", "updated_at"])
        audit_record(workspace=app.workspace, actor=actor, action="official_menu_save", target_type="wechat_app",
                     target_id=app.pk)
    return row


def menu_publish(*, app: WeChatApp, actor: Any) -> dict[str, Any]:
    """Publish the saved menu with ``menu/create`` and read it back with ``menu/get``."""
    row = official_settings(app=app)
    menu = menu_validate(row.menu)
    client = official_client(app)
    wechat_call(app, "menu.create", client.menu.create, menu)
    published = wechat_call(app, "menu.get", client.menu.get) or {}
    with transaction.atomic():
        OfficialSettings.objects.filter(pk=row.pk).update(menu_published_at=timezone.now())
        audit_record(workspace=app.workspace, actor=actor, action="official_menu_publish", target_type="wechat_app",
                     target_id=app.pk, buttons=len(menu["button"]))
    return published.get("menu") or {}


def menu_fetch(*, app: WeChatApp) -> dict[str, Any] | None:
    """The menu WeChat currently shows (None when the account has none)."""
    client = official_client(app)
    answer = wechat_call(app, "menu.get", client.menu.get)
    return (answer or {}).get("menu")


# --- channel QR codes (SPEC T2, 公众号 half) -------------------------------------------------------
def channel_choices(*, workspace) -> list[tuple[str, str]]:
    """Channel codes a QR code may be bound to: the workspace's registry, else SPEC T1's codes."""
    registered = list(Channel.objects.filter(workspace=workspace, active=True).values_list("code", "name"))
    return registered or [(code, entry.name_zh) for code, entry in BY_CODE.items()]


def qrcode_create(*, app: WeChatApp, actor: Any, name: str, channel: str, kind: str,
                  expire_seconds: Any = None) -> ChannelQrCode:
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise SiyuError("qrcode_name_invalid", "名称必填，最多 64 字", "A name is required (at most 64 characters)",
                        details={"field": "name"})
    code = channel_normalize(channel)
    if code not in {value for value, _label in channel_choices(workspace=app.workspace)}:
        raise SiyuError("qrcode_channel_invalid", "请选择一个已登记的渠道", "Choose a registered channel",
                        details={"field": "channel", "value": channel})
    if kind not in QrKind.values:
        raise SiyuError("qrcode_kind_invalid", "类型只能是临时或永久", "Type must be temporary or permanent",
                        details={"field": "kind"})
    scene = f"{code[:20]}.{secrets.token_hex(6)}"
    if kind == QrKind.TEMPORARY:
        try:
            seconds = int(expire_seconds)
        except (TypeError, ValueError):
            raise SiyuError("qrcode_expiry_invalid", "临时二维码需要有效期（秒）", "A temporary code needs an expiry in seconds",
                            details={"field": "expire_seconds"}) from None
        if not TEMP_QR_MIN_SECONDS <= seconds <= TEMP_QR_MAX_SECONDS:
            raise SiyuError("qrcode_expiry_invalid", "临时二维码有效期为 60 秒到 30 天（2592000 秒）",
                            "A temporary code lasts from 60 seconds to 30 days (2,592,000 seconds)",
                            details={"field": "expire_seconds", "max": TEMP_QR_MAX_SECONDS})
        request = {"expire_seconds": seconds, "action_name": "QR_STR_SCENE",
                   "action_info": {"scene": {"scene_str": scene}}}
    else:
        seconds = None
        request = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
    client = official_client(app)
    answer = wechat_call(app, "qrcode.create", client.qrcode.create, request)
    ticket = answer.get("ticket") or ""
    if not ticket:
        raise SiyuError("qrcode_no_ticket", "微信没有返回二维码 ticket", "WeChat returned no QR ticket", status=502)
    granted = answer.get("expire_seconds")
    with transaction.atomic():
        row = ChannelQrCode.objects.create(
            workspace_id=app.workspace_id, app=app, name=name, channel=code, kind=kind, scene_str=scene,
            expire_seconds=granted if seconds else None,
            expires_at=timezone.now() + timedelta(seconds=int(granted or seconds)) if seconds else None,
            ticket=ticket, url=answer.get("url", ""), created_by=actor if getattr(actor, "pk", None) else None)
        audit_record(workspace=app.workspace, actor=actor, action="official_qrcode_create", target_type="qrcode",
                     target_id=row.pk, channel=code, kind=kind, scene=scene)
    return row


def qrcode_image_url(row: ChannelQrCode) -> str:
    """WeChat's image URL for the ticket (``showqrcode``, as wechatpy builds it); the simulator's in
    simulator mode, so the console's link works there too."""
    url = WeChatQRCode.get_url(row.ticket)
    base = simulator_base()
    return rewrite(url, base.rstrip("/")) if base else url
