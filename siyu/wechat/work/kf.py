"""企业微信「微信客服」: customers' messages to a 客服账号 and our answers.

WeCom does not push these messages: it calls ``/wx/work/<corpid>/kf/callback`` with ``kf_msg_or_event`` and a
short-lived token; the messages are then pulled with ``kf/sync_msg`` from a cursor and answered with
``kf/send_msg``. This module verifies the callback (same checks as every WeCom callback) and publishes
``KF_EVENT`` on commit; whoever answers (the service bot) keeps its own cursor and calls :func:`kf_sync`
and :func:`kf_text_send`. It imports nothing above the WeChat layer.

Credentials: WeCom's 微信客服 APIs take an access token fetched with the secret of the 微信客服 application
(管理后台 → 应用管理 → 微信客服 → Secret), stored as the corp's ``kf_secret`` and cached as its own token
(``kf``). Fallback when it is not set: the self-built app's secret (``app_secret``), which WeCom accepts only
if that app was granted API access in the 微信客服 admin (「通过 API 管理微信客服账号」) — how corps set up
before the separate secret existed keep working. Neither set: ``wechat_secret_missing`` (400).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from siyu.core.domain_events import publish
from siyu.core.errors import SiyuError
from siyu.wechat.callbacks import rejection_response, work_callback, work_reply, work_verify_url
from siyu.wechat.clients import WeChatApiError, wechat_call, work_client
from siyu.wechat.credentials import app_for
from siyu.wechat.models import AppKind, WeChatApp

# workspace_id, app_id (WeChatApp pk), corpid, token (for sync_msg), open_kfid
KF_EVENT = "wechat_work.kf_event"
SYNC_LIMIT = 1000
TEXT_MAX_BYTES = 2048


@csrf_exempt
def kf_callback(request, corpid: str):
    if request.method not in {"GET", "POST"}:
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        app = app_for(kind=AppKind.WORK, appid=corpid)
        if request.method == "GET":
            return HttpResponse(work_verify_url(app, request.GET), content_type="text/plain; charset=utf-8")
        with transaction.atomic():
            message = work_callback(app, request)
            if message.msg_type == "event" and message.event == "kf_msg_or_event":
                publish(KF_EVENT, workspace_id=app.workspace_id, app_id=app.pk, corpid=app.appid,
                        token=str(message.get("Token"))[:128], open_kfid=str(message.get("OpenKfId"))[:64])
    except SiyuError as error:
        return rejection_response(error)
    return work_reply(app, message)


def kf_client(app: WeChatApp):
    """The WeCom client 微信客服 calls go through: the 微信客服 secret's token, else the self-built app's."""
    secrets = app.secrets() if app.kind == AppKind.WORK else {}
    if secrets.get("kf_secret"):
        return work_client(app, secret="kf")
    if secrets.get("app_secret"):
        return work_client(app, secret="app")
    raise SiyuError("wechat_secret_missing", "企业微信未配置微信客服 Secret（或获授权的自建应用 Secret）",
                    "The WeCom 微信客服 secret (or an authorised self-built app's secret) is not set", status=400,
                    details={"secret": "kf"})


def kf_sync(app: WeChatApp, *, cursor: str = "", token: str = "", open_kfid: str = "",
            limit: int = SYNC_LIMIT) -> dict[str, Any]:
    """One page of new messages after ``cursor``: ``{"next_cursor", "has_more", "msg_list"}``."""
    body: dict[str, Any] = {"cursor": cursor, "limit": limit}
    if token:
        body["token"] = token
    if open_kfid:
        body["open_kfid"] = open_kfid
    client = kf_client(app)
    answer = wechat_call(app, "kf.sync_msg", client.post, "kf/sync_msg", data=body) or {}
    return {"next_cursor": str(answer.get("next_cursor") or cursor), "has_more": bool(answer.get("has_more")),
            "msg_list": list(answer.get("msg_list") or [])}


def kf_text_send(app: WeChatApp, *, open_kfid: str, external_userid: str, text: str, msgid: str = "") -> str:
    """Send a text to the customer of a 客服账号; returns WeCom's msgid. WeCom's refusals (48-hour window,
    five replies per customer message) come back as a SiyuError with WeCom's code."""
    if not text or len(text.encode()) > TEXT_MAX_BYTES:
        raise SiyuError("kf_text_invalid", "微信客服消息不能为空，且最多 2048 字节", "A 微信客服 message must be 1-2048 bytes")
    body: dict[str, Any] = {"touser": external_userid, "open_kfid": open_kfid, "msgtype": "text",
                            "text": {"content": text}}
    if msgid:
        body["msgid"] = msgid[:32]
    client = kf_client(app)
    try:
        answer = wechat_call(app, "kf.send_msg", client.post, "kf/send_msg", data=body) or {}
    except WeChatApiError as error:
        raise SiyuError("kf_send_refused", f"微信客服拒绝发送：{error.message_zh}", f"WeCom refused the message: "
                        f"{error.message_en}", status=409, details={"errcode": error.errcode}) from error
    return str(answer.get("msgid") or msgid)
