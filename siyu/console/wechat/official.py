"""Console pages for 公众号: overview (followers, today's events, auto-reply, menu, messages) and the channel
QR codes (渠道活码, 公众号 half). Operators and admins edit; analysts read; service staff have no access."""

from __future__ import annotations

import json
from datetime import datetime, time

from django.contrib import messages
from django.db.models import Count, Q
from django.urls import path
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.console.wechat.accounts import account_back, account_chosen, account_required
from siyu.core.channel_codes import channel_label
from siyu.core.errors import SiyuError
from siyu.customers.models import Event, Tag
from siyu.wechat.credentials import apps_of
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.official import messaging, services
from siyu.wechat.official.models import AutoReplyRule, ChannelQrCode, Follower, MessageSend, QrKind
from siyu.wechat.official.rules import SHANGHAI, TEMP_QR_MAX_SECONDS

READERS = frozenset({"admin", "operator", "analyst"})
OFFICIAL_EVENTS = ("subscribe", "unsubscribe", "qr_scan", "message_in", "menu_click")
MENU_EXAMPLE = {"button": [{"type": "click", "name": "今日推荐", "key": "TODAY"},
                           {"name": "商城", "sub_button": [{"type": "view", "name": "首页",
                                                           "url": "https://shop.example.com/"}]}]}


def _app(request) -> WeChatApp | None:
    return account_chosen(request, AppKind.OFFICIAL)


def _posted_app(request) -> WeChatApp:
    return account_required(request, AppKind.OFFICIAL)


def _back(app: WeChatApp, anchor: str = "", name: str = "console:wechat_official"):
    return account_back(app, name, anchor)


def _today_start() -> datetime:
    local = timezone.now().astimezone(SHANGHAI)
    return datetime.combine(local.date(), time.min, tzinfo=SHANGHAI)


@console_view(roles=READERS)
def official_overview(request):
    app = _app(request)
    context: dict = {"accounts": apps_of(workspace=request.workspace, kind=AppKind.OFFICIAL), "app": app,
                     "can_manage": request.membership.role in MANAGER_ROLES}
    if app is not None:
        settings_row = services.official_settings(app=app)
        counts = Event.objects.filter(workspace=request.workspace, type__in=OFFICIAL_EVENTS,
                                      occurred_at__gte=_today_start()).values("type").annotate(n=Count("pk"))
        by_type = {row["type"]: row["n"] for row in counts}
        sends = list(MessageSend.objects.filter(app=app).annotate(
            sent=Count("recipients", filter=Q(recipients__status="sent")),
            failed=Count("recipients", filter=Q(recipients__status="failed")),
            pending=Count("recipients", filter=Q(recipients__status="pending")))[:20])
        context.update(
            settings=settings_row,
            followers=Follower.objects.filter(app=app, subscribed=True).count(),
            today=[(name, by_type.get(name, 0)) for name in OFFICIAL_EVENTS],
            rules=AutoReplyRule.objects.filter(app=app),
            menu_text=json.dumps(settings_row.menu, ensure_ascii=False, indent=2) if settings_row.menu else "",
            menu_example=json.dumps(MENU_EXAMPLE, ensure_ascii=False, indent=2),
            mass_used=len(messaging.mass_sends_used(app=app)),
            sends=sends, tags=Tag.objects.filter(workspace=request.workspace).select_related("group"),
            published_menu=request.session.pop(f"official_menu_{app.pk}", None),
            recent_followers=Follower.objects.filter(app=app).order_by("-last_interaction_at", "-pk")[:10],
        )
    return page(request, "console/wechat/official/overview.html", context, active="wechat_official")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def official_settings_save(request):
    app = _posted_app(request)
    services.settings_update(app=app, actor=request.user, account_type=request.POST.get("account_type", ""),
                             unionid_access=request.POST.get("unionid_access") == "on",
                             welcome_reply=request.POST.get("welcome_reply", ""),
                             default_reply=request.POST.get("default_reply", ""))
    messages.success(request, _("公众号设置已保存"))
    return _back(app, "settings")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def official_rule_save(request):
    app = _posted_app(request)
    raw_id = request.POST.get("rule_id", "")
    rule = services.rule_save(app=app, actor=request.user, keyword=request.POST.get("keyword", ""),
                              match=request.POST.get("match", ""), reply_text=request.POST.get("reply_text", ""),
                              priority=request.POST.get("priority", "0"),
                              enabled=request.POST.get("enabled", "on") == "on",
                              rule_id=int(raw_id) if raw_id.isdigit() else None)
    messages.success(request, _("已保存自动回复规则：%(keyword)s") % {"keyword": rule.keyword})
    return _back(app, "rules")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def official_rule_delete(request):
    app = _posted_app(request)
    raw_id = request.POST.get("rule_id", "")
    if not raw_id.isdigit():
        raise SiyuError("not_found", "自动回复规则不存在", "Auto-reply rule not found", status=404)
    services.rule_delete(app=app, actor=request.user, rule_id=int(raw_id))
    messages.success(request, _("已删除自动回复规则"))
    return _back(app, "rules")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def official_menu_save(request):
    app = _posted_app(request)
    try:
        menu = json.loads(request.POST.get("menu", ""))
    except json.JSONDecodeError as error:
        raise SiyuError("menu_invalid_json", "菜单不是有效的 JSON", "The menu is not valid JSON",
                        details={"error": str(error)}) from error
    services.menu_save(app=app, actor=request.user, menu=menu)
    if request.POST.get("publish") == "1":
        published = services.menu_publish(app=app, actor=request.user)
        request.session[f"official_menu_{app.pk}"] = json.dumps(published, ensure_ascii=False, indent=2)
        messages.success(request, _("菜单已发布到微信，并已从微信读回确认"))
    else:
        messages.success(request, _("菜单草稿已保存（尚未发布）"))
    return _back(app, "menu")


def _openids(text: str) -> list[str]:
    return [item for item in text.replace(",", "\n").split() if item]


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def official_send(request):
    """Template, mass or customer-service send (``kind``); refusals explain WeChat's rule."""
    app = _posted_app(request)
    kind = request.POST.get("kind", "")
    tag_id = request.POST.get("tag_id", "") or None
    audience = request.POST.get("audience", "")
    if kind == "template":
        try:
            data = json.loads(request.POST.get("data", "") or "null")
        except json.JSONDecodeError as error:
            raise SiyuError("template_data_invalid", "模板数据不是有效的 JSON", "Template data is not valid JSON") from error
        send = messaging.template_send_request(
            app=app, actor=request.user, template_id=request.POST.get("template_id", ""), data=data,
            url=request.POST.get("url", "").strip(), openids=_openids(request.POST.get("openids", "")),
            tag_id=tag_id if audience == "tag" else None)
    elif kind == "mass":
        send = messaging.mass_send_request(
            app=app, actor=request.user, text=request.POST.get("text", ""), to_all=audience == "all",
            openids=_openids(request.POST.get("openids", "")), tag_id=tag_id if audience == "tag" else None)
    elif kind == "custom":
        send = messaging.custom_send_request(app=app, actor=request.user, openid=request.POST.get("openid", ""),
                                             text=request.POST.get("text", ""))
    else:
        raise SiyuError("send_kind_invalid", "未知的发送类型", "Unknown kind of send")
    messages.success(request, _("已提交发送（#%(id)s），结果见发送记录") % {"id": send.pk})
    return _back(app, "messages")


@console_view(roles=READERS)
def qrcode_list(request):
    app = _app(request)
    codes = list(ChannelQrCode.objects.filter(workspace=request.workspace).select_related("app")
                 .filter(**({"app": app} if app else {})))
    now = timezone.now()
    language = get_language() or "zh-hans"
    rows = [{"code": code, "channel": channel_label(code.channel, language), "image": services.qrcode_image_url(code),
             "expired": code.expires_at is not None and code.expires_at <= now} for code in codes]
    return page(request, "console/wechat/official/qrcodes.html", {
        "accounts": apps_of(workspace=request.workspace, kind=AppKind.OFFICIAL), "app": app, "rows": rows,
        "channels": services.channel_choices(workspace=request.workspace), "kinds": QrKind.choices,
        "max_seconds": TEMP_QR_MAX_SECONDS, "can_manage": request.membership.role in MANAGER_ROLES,
    }, active="channels")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def qrcode_create(request):
    app = _posted_app(request)
    days = request.POST.get("expire_days", "").strip()
    seconds = request.POST.get("expire_seconds", "").strip()
    if not seconds and days:
        seconds = str(int(days) * 86400) if days.isdigit() else "invalid"
    code = services.qrcode_create(app=app, actor=request.user, name=request.POST.get("name", ""),
                                  channel=request.POST.get("channel", ""), kind=request.POST.get("kind", ""),
                                  expire_seconds=seconds or None)
    messages.success(request, _("已创建渠道二维码：%(name)s") % {"name": code.name})
    return _back(app, name="console:wechat_qrcodes")


urlpatterns = [
    path("official/", official_overview, name="wechat_official"),
    path("official/settings", official_settings_save, name="wechat_official_settings"),
    path("official/rules", official_rule_save, name="wechat_official_rule_save"),
    path("official/rules/delete", official_rule_delete, name="wechat_official_rule_delete"),
    path("official/menu", official_menu_save, name="wechat_official_menu"),
    path("official/send", official_send, name="wechat_official_send"),
    path("qrcodes/", qrcode_list, name="wechat_qrcodes"),
    path("qrcodes/create", qrcode_create, name="wechat_qrcode_create"),
]
