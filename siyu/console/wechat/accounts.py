"""Which WeChat account a console page is about: ``?app=<appid>`` (or the posted ``app``), else the first.

Shared by the 公众号 and 企业微信 pages, which both let an operator switch between several accounts.
"""

from __future__ import annotations

from django.shortcuts import redirect
from django.urls import reverse

from siyu.core.errors import SiyuError
from siyu.wechat.models import AppKind, WeChatApp

# kind -> (Chinese name, English "not found", English "connect first") for the errors below
_NAMES = {
    AppKind.OFFICIAL: ("公众号", "Official account not found", "Connect an official account first"),
    AppKind.WORK: ("企业微信", "WeCom corp not found", "Connect a WeCom corp first"),
}


def account_chosen(request, kind: str) -> WeChatApp | None:
    appid = (request.POST.get("app") or request.GET.get("app") or "").strip()
    accounts = WeChatApp.objects.filter(workspace=request.workspace, kind=kind).order_by("name", "pk")
    if not appid:
        return accounts.first()
    app = accounts.filter(appid=appid).first()
    if app is None:
        zh, not_found, _ = _NAMES[kind]
        raise SiyuError("not_found", f"{zh}不存在", not_found, status=404)
    return app


def account_required(request, kind: str) -> WeChatApp:
    app = account_chosen(request, kind)
    if app is None:
        zh, _, connect_first = _NAMES[kind]
        raise SiyuError("wechat_app_missing", f"请先接入{zh}", connect_first, status=400)
    return app


def account_back(app: WeChatApp, name: str, anchor: str = ""):
    """Back to page ``name`` for this account, at ``#anchor``."""
    return redirect(f"{reverse(name)}?app={app.appid}{'#' + anchor if anchor else ''}")
