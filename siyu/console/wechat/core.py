"""Console pages for WeChat credentials (admins only) and API health (quota and rate-limit issues).

Secrets are never shown back: a stored secret reads "已设置", and leaving its input empty keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from siyu.console.access import MANAGER_ROLES, console_view, posted_object
from siyu.console.rendering import page
from siyu.core.errors import SiyuError, not_found
from siyu.wechat import credentials
from siyu.wechat.clients import issue_resolve
from siyu.wechat.models import ApiIssue, AppKind, WeChatApp
from siyu.wechat.tokens import token_status

ADMIN_ONLY = frozenset({"admin"})


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    widget: str = "password"  # password | text | textarea | select
    secret: bool = True
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""


FIELDS: dict[str, tuple[Field, ...]] = {
    AppKind.OFFICIAL: (
        Field("app_secret", gettext_lazy("AppSecret（开发者密码）")),
        Field("token", gettext_lazy("Token（令牌）"), help=gettext_lazy("3–32 位字母或数字，与公众平台「服务器配置」一致")),
        Field("encoding_aes_key", gettext_lazy("EncodingAESKey（消息加解密密钥）"),
              help=gettext_lazy("43 位；兼容模式和安全模式必填")),
        Field("message_mode", gettext_lazy("消息加解密方式"), widget="select", secret=False,
              choices=(("plain", gettext_lazy("明文模式")), ("compat", gettext_lazy("兼容模式")),
                       ("safe", gettext_lazy("安全模式（推荐）")))),
    ),
    AppKind.MINIAPP: (Field("app_secret", gettext_lazy("AppSecret（小程序密钥）")),),
    AppKind.WORK: (
        Field("contact_secret", gettext_lazy("客户联系 Secret")),
        Field("app_secret", gettext_lazy("自建应用 Secret")),
        Field("kf_secret", gettext_lazy("微信客服 Secret"),
              help=gettext_lazy("「微信客服」应用的 Secret，用于收发客服消息；不填则使用自建应用 Secret"
                                "（该应用须在微信客服后台获授权调用接口）")),
        Field("agent_id", gettext_lazy("自建应用 AgentId"), widget="text", secret=False),
        Field("token", gettext_lazy("回调 Token")),
        Field("encoding_aes_key", gettext_lazy("回调 EncodingAESKey")),
    ),
    AppKind.PAY: (
        Field("api_v3_key", gettext_lazy("APIv3 密钥")),
        Field("merchant_serial_no", gettext_lazy("商户 API 证书序列号"), widget="text", secret=False),
        Field("merchant_private_key", gettext_lazy("商户 API 私钥（PEM）"), widget="textarea"),
        Field("platform_public_key", gettext_lazy("微信支付公钥或平台证书（PEM）"), widget="textarea", secret=False),
        Field("platform_public_key_id", gettext_lazy("微信支付公钥 ID"), widget="text", secret=False),
        Field("appid", gettext_lazy("关联的 AppID（公众号或小程序）"), widget="text", secret=False),
    ),
}
APPID_LABEL = {
    AppKind.OFFICIAL: gettext_lazy("AppID"),
    AppKind.MINIAPP: gettext_lazy("AppID"),
    AppKind.WORK: gettext_lazy("企业 ID（CorpID）"),
    AppKind.PAY: gettext_lazy("商户号（mchid）"),
}
# (url name, kwarg, label) of the addresses WeChat calls, per kind; an area may not have built one yet.
CALLBACK_ROUTES = {
    AppKind.OFFICIAL: (("wechat_official:callback", "appid", gettext_lazy("服务器地址（URL）")),),
    AppKind.WORK: (("wechat_work_callback", "corpid", gettext_lazy("接收事件服务器 URL")),),
    AppKind.PAY: (("wechat_pay_notify", "mchid", gettext_lazy("支付结果通知地址（notify_url）")),
                  ("wechat_pay_refund_notify", "mchid", gettext_lazy("退款结果通知地址"))),
    AppKind.MINIAPP: (("wechat_consumer:miniapp_login", "appid", gettext_lazy("登录接口（小程序调用）")),),
}


def callback_urls(app: WeChatApp) -> list[dict]:
    urls = []
    for name, kwarg, label in CALLBACK_ROUTES.get(app.kind, ()):
        try:
            urls.append({"label": label, "url": settings.SIYU_PUBLIC_URL + reverse(name, kwargs={kwarg: app.appid})})
        except NoReverseMatch:
            continue
    return urls


def _fields_view(app: WeChatApp | None, kind: str) -> list[dict]:
    stored = app.secrets() if app else {}
    return [{"field": field, "is_set": bool(stored.get(field.name)),
             "value": "" if field.secret else stored.get(field.name, "")} for field in FIELDS[kind]]


@console_view()
def wechat_apps(request):
    apps = WeChatApp.objects.filter(workspace=request.workspace).order_by("kind", "name", "pk")
    rows = [{"app": app, "callbacks": callback_urls(app), "tokens": token_status(app=app),
             "fields": _fields_view(app, app.kind)} for app in apps]
    issues = (ApiIssue.objects.filter(workspace=request.workspace, resolved_at=None).select_related("app")
              .order_by("-last_seen_at")[:200])
    return page(request, "console/wechat/core/apps.html", {
        "rows": rows, "issues": issues, "kinds": AppKind.choices,
        "is_admin": request.membership.role in ADMIN_ONLY,
        "can_resolve": request.membership.role in MANAGER_ROLES,
    }, active="wechat_apps")


def _posted_secrets(request, kind: str) -> dict:
    return {field.name: request.POST.get(field.name, "") for field in FIELDS[kind]}


def _form(request, *, kind: str, app: WeChatApp | None, error: SiyuError | None = None, status: int = 200):
    posted = request.POST if request.method == "POST" else {}
    fields = _fields_view(app, kind)
    for entry in fields:  # a refused form keeps what was typed, except secrets
        if posted and not entry["field"].secret:
            entry["value"] = posted.get(entry["field"].name, entry["value"])
    return page(request, "console/wechat/core/app_form.html", {
        "kind": kind, "kind_label": AppKind(kind).label, "app": app, "fields": fields,
        "appid_label": APPID_LABEL[kind],
        "name": posted.get("name", app.name if app else ""),
        "appid": app.appid if app else posted.get("appid", ""),
        "is_active": (posted.get("is_active") == "on") if posted else (app.is_active if app else True),
        "error": error,
        "error_message": (error.message_zh if (request.LANGUAGE_CODE or "zh").startswith("zh") else error.message_en)
        if error else "",
    }, active="wechat_apps", status=status)


@console_view(edit=True, roles=ADMIN_ONLY)
def wechat_app_create(request, kind: str):
    if kind not in AppKind.values:
        raise not_found("账号类型", "Account kind")
    if request.method != "POST":
        return _form(request, kind=kind, app=None)
    if WeChatApp.objects.filter(kind=kind, appid=request.POST.get("appid", "").strip()).exists():
        error = SiyuError("wechat_app_taken", "该微信账号已存在", "This WeChat account already exists", status=409)
        return _form(request, kind=kind, app=None, error=error, status=409)
    try:
        app = credentials.app_save(workspace=request.workspace, kind=kind, appid=request.POST.get("appid", ""),
                                   name=request.POST.get("name", ""), secrets=_posted_secrets(request, kind),
                                   is_active=request.POST.get("is_active") == "on", actor=request.user)
    except SiyuError as error:
        return _form(request, kind=kind, app=None, error=error, status=error.status)
    messages.success(request, _("已添加：%(name)s") % {"name": app.name})
    return redirect("console:wechat_apps")


@console_view(edit=True, roles=ADMIN_ONLY)
def wechat_app_edit(request, app_id: int):
    app = WeChatApp.objects.filter(workspace=request.workspace, pk=app_id).first()
    if app is None:
        raise not_found("微信账号", "WeChat account")
    if request.method != "POST":
        return _form(request, kind=app.kind, app=app)
    try:
        app = credentials.app_save(workspace=request.workspace, kind=app.kind, appid=app.appid,
                                   name=request.POST.get("name", ""), secrets=_posted_secrets(request, app.kind),
                                   is_active=request.POST.get("is_active") == "on", actor=request.user)
    except SiyuError as error:
        return _form(request, kind=app.kind, app=app, error=error, status=error.status)
    messages.success(request, _("已保存：%(name)s") % {"name": app.name})
    return redirect("console:wechat_apps")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def wechat_issue_resolve(request):
    issue = posted_object(request, ApiIssue, "issue_id", "问题记录", "Issue")
    issue_resolve(workspace=request.workspace, issue_id=issue.pk, actor=request.user)
    messages.success(request, _("已标记为已处理：%(api)s %(errcode)s") % {"api": issue.api, "errcode": issue.errcode})
    return redirect("console:wechat_apps")


urlpatterns = [
    path("apps/", wechat_apps, name="wechat_apps"),
    path("apps/new/<str:kind>/", wechat_app_create, name="wechat_app_create"),
    path("apps/<int:app_id>/edit/", wechat_app_edit, name="wechat_app_edit"),
    path("issues/resolve/", wechat_issue_resolve, name="wechat_issue_resolve"),
]
