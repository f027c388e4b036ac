"""HTTP endpoints under /wx/consumer/: the mini-program's JSON API and the H5 OAuth redirects.

Views only parse, authenticate and call a service. JSON errors are ``{code, message, message_en}`` with
the error's status; the OAuth callback answers a small page a person in WeChat's browser can read.
"""

from __future__ import annotations

import json
from functools import wraps

from django.conf import settings
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from siyu.core.errors import SiyuError
from siyu.wechat.consumer import miniapp, oauth
from siyu.wechat.consumer.sessions import (
    consumer_session_required,
    consumer_session_revoke,
    h5_cookie_set,
)
from siyu.wechat.credentials import app_for
from siyu.wechat.models import AppKind

MAX_BODY = 16 * 1024


def json_endpoint(view):
    """Parse the JSON body into ``request.payload``; answer every SiyuError as JSON with its status."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            request.payload = {}
            if request.method == "POST":
                if len(request.body) > MAX_BODY:
                    raise SiyuError("body_too_large", "请求内容过大", "The request body is too large", status=413)
                try:
                    request.payload = json.loads(request.body or b"{}")
                except ValueError:
                    raise SiyuError("invalid_json", "请求不是有效的 JSON", "The body is not valid JSON") from None
                if not isinstance(request.payload, dict):
                    raise SiyuError("invalid_json", "请求必须是 JSON 对象", "The body must be a JSON object")
            return view(request, *args, **kwargs)
        except SiyuError as error:
            response = JsonResponse(error.as_dict(), status=error.status, json_dumps_params={"ensure_ascii": False})
            if error.status == 401:
                response["WWW-Authenticate"] = 'Bearer realm="siyu-consumer"'
            return response

    return csrf_exempt(wrapped)


@require_POST
@json_endpoint
def miniapp_login(request, appid: str):
    app = app_for(kind=AppKind.MINIAPP, appid=appid)
    result = miniapp.miniapp_login(app=app, code=request.payload.get("code"))
    return JsonResponse(result.as_dict())


@require_POST
@json_endpoint
def miniapp_phone(request):
    session = consumer_session_required(request)
    return JsonResponse(miniapp.miniapp_phone_bind(session=session, code=request.payload.get("code")),
                        json_dumps_params={"ensure_ascii": False})


@require_POST
@json_endpoint
def miniapp_subscribe(request):
    """The mini-program reports what the user answered in ``wx.requestSubscribeMessage``."""
    session = consumer_session_required(request)
    remaining = miniapp.subscribe_authorisations_record(session=session, results=request.payload.get("results"))
    return JsonResponse({"remaining": remaining})


@require_GET
@json_endpoint
def session_info(request):
    session = consumer_session_required(request)
    return JsonResponse({"kind": session.kind, "appid": session.app.appid, "expires_at": session.expires_at.isoformat(),
                         "customer": {"id": session.customer.pk}})


@require_POST
@json_endpoint
def logout(request):
    session = consumer_session_required(request)
    consumer_session_revoke(session=session)
    response = JsonResponse({"ok": True})
    response.delete_cookie("siyu_h5", path="/", samesite="Lax")
    return response


def _oauth_error(request, error: SiyuError):
    return render(request, "wechat_consumer/oauth_error.html", {"error": error}, status=error.status)


@require_GET
def oauth_start(request, appid: str):
    try:
        app = app_for(kind=AppKind.OFFICIAL, appid=appid)
        url = oauth.oauth_start(browser_session=request.session, app=app, scope=request.GET.get("scope"),
                                next_path=request.GET.get("next"))
    except SiyuError as error:
        return _oauth_error(request, error)
    response = HttpResponseRedirect(url)
    if not oauth.device_id_valid(request.COOKIES.get(oauth.DEVICE_COOKIE)):
        # the store's first page sets the device id; a browser arriving here first gets one now
        response.set_cookie(oauth.DEVICE_COOKIE, oauth.device_id_new(), max_age=oauth.DEVICE_LIFETIME,
                            httponly=True, samesite="Lax", path="/",
                            secure=request.is_secure() or settings.SIYU_PUBLIC_URL.startswith("https://"))
    return response


@require_GET
def oauth_callback(request, appid: str):
    try:
        app = app_for(kind=AppKind.OFFICIAL, appid=appid)
        result = oauth.oauth_complete(browser_session=request.session, app=app, code=request.GET.get("code"),
                                      state=request.GET.get("state"),
                                      device_id=request.COOKIES.get(oauth.DEVICE_COOKIE))
    except SiyuError as error:
        return _oauth_error(request, error)
    response = HttpResponseRedirect(result.next_path)
    h5_cookie_set(response, request, result.token)
    return response
