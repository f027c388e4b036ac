"""公众号 H5 网页授权 (snsapi_base / snsapi_userinfo): who is browsing the H5 store in WeChat's browser.

``oauth_start`` sends the browser to WeChat's authorize page with a fresh ``state`` remembered in the
browser's own Django session (so a callback from another browser, a forged one or a replay is refused);
``oauth_complete`` checks and consumes that state, exchanges the code (WeChat refuses a used or forged
code), records a ``wechat_oauth`` event, and opens an H5 consumer session. ``next`` may only be a path on
this site: never an absolute URL, a scheme-relative ``//host`` or anything a browser could read as one.

The H5 store's browser carries an anonymous first-party device id (cookie ``siyu_did``, set on the first
visit, before any login). When OAuth identifies the browser, that device id is part of the same
observation, so it becomes one of the customer's identities (kind ``device``, namespace ``h5``) and later
anonymous browsing on that device is theirs. A device id is a weak identity: it never merges customers.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from siyu.core.crypto import encrypt_text, name_hash
from siyu.core.errors import SiyuError
from siyu.customers.models import Customer
from siyu.wechat.clients import WeChatApiError, oauth_client, wechat_call
from siyu.wechat.consumer.identify import consumer_identify, event_id_for
from siyu.wechat.consumer.models import ConsumerSession, SessionKind
from siyu.wechat.consumer.sessions import consumer_session_create
from siyu.wechat.models import WeChatApp
from siyu.wechat.transport import gateway

SCOPES = ("snsapi_base", "snsapi_userinfo")
SESSION_KEY = "siyu_wx_oauth"
STATE_LIFETIME = 600  # seconds between leaving for WeChat and coming back
MAX_PENDING = 5  # states kept per browser (several tabs); the oldest is dropped first
_SAFE_PATH = re.compile(r"/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*")
DEVICE_COOKIE = "siyu_did"
DEVICE_NAMESPACE = "h5"
DEVICE_LIFETIME = 365 * 86400
_DEVICE_ID = re.compile(r"d_[A-Za-z0-9_-]{16,64}")


def device_id_valid(value: str | None) -> str | None:
    """The browser's device id if it has our format (anything else is ignored, never stored)."""
    return value if isinstance(value, str) and _DEVICE_ID.fullmatch(value) else None


def device_id_new() -> str:
    return "d_" + secrets.token_urlsafe(16)


def safe_next(raw: str | None) -> str:
    """``next`` if it is a same-site path, else a refusal (open redirects are never followed)."""
    value = raw or "/"
    parts = urlsplit(value)
    if (not _SAFE_PATH.fullmatch(value) or value.startswith(("//", "/\\")) or parts.scheme or parts.netloc
            or "\\" in value or len(value) > 512):
        raise SiyuError("oauth_next_invalid", "跳转地址无效:只能跳转到本站页面",
                        "The return address is invalid: only paths on this site are allowed", status=400)
    return value


def callback_url(app: WeChatApp) -> str:
    return settings.SIYU_PUBLIC_URL + reverse("wechat_consumer:oauth_callback", kwargs={"appid": app.appid})


def oauth_start(*, browser_session, app: WeChatApp, scope: str | None, next_path: str | None) -> str:
    """Remember a new state for this browser and return WeChat's authorize URL to redirect to."""
    scope = scope or "snsapi_base"
    if scope not in SCOPES:
        raise SiyuError("oauth_scope_invalid", "scope 只能是 snsapi_base 或 snsapi_userinfo",
                        "scope must be snsapi_base or snsapi_userinfo", status=400)
    next_path = safe_next(next_path)
    state = secrets.token_urlsafe(24)
    now = time.time()
    pending = {key: value for key, value in (browser_session.get(SESSION_KEY) or {}).items()
               if now - value.get("at", 0) < STATE_LIFETIME}
    pending[state] = {"appid": app.appid, "scope": scope, "next": next_path, "at": now}
    browser_session[SESSION_KEY] = dict(sorted(pending.items(), key=lambda item: item[1]["at"])[-MAX_PENDING:])
    client = oauth_client(app, redirect_uri=callback_url(app), scope=scope, state=state)
    client.OAUTH_BASE_URL = gateway("open.weixin.qq.com") + "/connect/"  # the simulator in simulator mode
    return client.authorize_url


def _state_refused() -> SiyuError:
    return SiyuError("oauth_state_invalid", "授权请求已失效或不是从本浏览器发起的,请重新打开页面",
                     "This authorisation is stale, already used or was not started in this browser; "
                     "open the page again", status=400)


@dataclass(frozen=True)
class OAuthResult:
    session: ConsumerSession
    token: str
    next_path: str


def oauth_complete(*, browser_session, app: WeChatApp, code: str | None, state: str | None,
                   device_id: str | None = None) -> OAuthResult:
    """Check and consume the state, exchange the code, identify the consumer (with the browser's device
    id, when it carries a valid one) and open an H5 session."""
    pending = dict(browser_session.get(SESSION_KEY) or {})
    entry = pending.pop(state, None) if isinstance(state, str) and state else None
    browser_session[SESSION_KEY] = pending  # a state works once, whatever happens next
    if entry is None or entry.get("appid") != app.appid or time.time() - entry.get("at", 0) >= STATE_LIFETIME:
        raise _state_refused()
    if not code:
        raise SiyuError("oauth_declined", "您没有同意授权,无法识别身份", "You declined the authorisation", status=403)
    if not isinstance(code, str) or len(code) > 128:
        raise SiyuError("wx_code_invalid", "授权 code 无效", "The authorisation code is invalid", status=400)
    scope = entry["scope"]
    client = oauth_client(app, redirect_uri=callback_url(app), scope=scope, state=state)
    try:
        token = wechat_call(app, "sns/oauth2/access_token", client.fetch_access_token, code)
        profile = {}
        if scope == "snsapi_userinfo" and token.get("scope", scope) == "snsapi_userinfo":
            profile = wechat_call(app, "sns/userinfo", client.get_user_info, token["openid"], token["access_token"])
    except WeChatApiError as error:
        if error.errcode in (40029, 40163):
            raise SiyuError("wx_code_invalid" if error.errcode == 40029 else "wx_code_used",
                            "授权 code 无效或已被使用,请重新打开页面",
                            "The authorisation code is invalid or already used; open the page again",
                            status=400, details={"errcode": error.errcode}) from None
        raise
    openid = token.get("openid")
    if not isinstance(openid, str) or not openid:
        raise SiyuError("wechat_bad_answer", "微信未返回 openid", "WeChat answered without an openid", status=502)
    unionid = profile.get("unionid") or token.get("unionid")
    device = device_id_valid(device_id)
    devices = [{"kind": "device", "namespace": DEVICE_NAMESPACE, "value": device}] if device else None
    with transaction.atomic():
        identified = consumer_identify(app=app, event_type="wechat_oauth",
                                       event_id=event_id_for("wxoauth", app.appid, code), openid=openid,
                                       unionid=unionid if isinstance(unionid, str) else None,
                                       extra_identities=devices,
                                       properties={"scope": scope, "url": entry["next"]})
        nickname = profile.get("nickname")
        if isinstance(nickname, str) and nickname.strip():
            # snsapi_userinfo is asked for precisely to know the name: keep it when the profile has none.
            Customer.objects.filter(pk=identified.customer_id, name_hash="").update(
                name_enc=encrypt_text(nickname.strip()[:64]), name_hash=name_hash(nickname.strip()[:64]))
        session, raw_token = consumer_session_create(app=app, identity=identified.identity, kind=SessionKind.H5,
                                                     scope=scope, is_new_customer=identified.is_new)
    return OAuthResult(session=session, token=raw_token, next_path=entry["next"])
