"""The 公众号 server URL WeChat calls: GET verifies the URL, POST carries messages and events.

An unknown AppID is a 404 before anything is read; a callback that fails a check is refused with its
code and nothing stored; a handled one is answered with ``success`` or a (safe-mode: encrypted) reply
within WeChat's five seconds.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from siyu.core.errors import SiyuError
from siyu.wechat.callbacks import official_callback, official_reply, official_verify_url, rejection_response
from siyu.wechat.credentials import app_for
from siyu.wechat.models import AppKind
from siyu.wechat.official.inbound import callback_handle, reply_for

logger = logging.getLogger(__name__)


@csrf_exempt
def callback(request, appid: str):
    if request.method not in {"GET", "POST"}:
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        app = app_for(kind=AppKind.OFFICIAL, appid=appid)
        if request.method == "GET":
            return HttpResponse(official_verify_url(app, request.GET), content_type="text/plain; charset=utf-8")
        with transaction.atomic():
            message = official_callback(app, request)
            handled = callback_handle(message=message)
            return official_reply(app, message, reply_for(message, handled.reply))
    except SiyuError as error:
        return rejection_response(error)
