"""公众号 web authorisation (网页授权) as WeChat serves it: the authorize page and the ``sns`` APIs.

The simulated browser user is named by ``sim_user=`` on the authorize URL (the simulator then remembers
it in a ``sim_user`` cookie, as WeChat's in-app browser "knows" who is logged in) or by that cookie.
``sim_consent=deny`` stands for the user refusing the snsapi_userinfo consent screen: WeChat then
redirects back with the state and no code.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode, urlsplit

from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp, SimUser

OPEN_HOST = "open.weixin.qq.com"
API_HOST = "api.weixin.qq.com"
SCOPES = frozenset({"snsapi_base", "snsapi_userinfo"})
CODE_LIFETIME = 300
ACCESS_LIFETIME = 7200
REFRESH_LIFETIME = 30 * 86400
COOKIE = "sim_user"


@dataclass
class OAuthCode:
    appid: str
    user_key: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class OAuthToken:
    appid: str
    user_key: str
    scope: str
    expires_at: float


@dataclass
class OAuthState:
    codes: dict[str, OAuthCode] = field(default_factory=dict)
    access_tokens: dict[str, OAuthToken] = field(default_factory=dict)
    refresh_tokens: dict[str, OAuthToken] = field(default_factory=dict)


def area(sim: Simulator) -> OAuthState:
    return sim.state.area("oauth", OAuthState)


def _official(sim: Simulator, appid: str) -> SimApp | None:
    app = sim.state.apps.get(appid)
    return app if app is not None and app.kind == "official" else None


def _error_page(errcode: int, message: str) -> SimResponse:
    # WeChat shows an error page inside its browser, not JSON; keep the code visible for tests and people.
    html = (f"<!doctype html><meta charset=utf-8><title>微信网页授权</title>"
            f"<p>出错了 ({errcode}): {message}</p>")
    return SimResponse.text(html, status=400, content_type="text/html; charset=utf-8")


def _browser_user(request: SimRequest) -> tuple[str, bool]:
    """(user key, whether it came from the query and must be remembered in the cookie)."""
    if request.arg("sim_user"):
        return request.arg("sim_user") or "", True
    cookie = SimpleCookie()
    try:
        cookie.load(request.headers.get("cookie", ""))
    except CookieError:  # a mangled cookie header is just "no user"
        return "", False
    morsel = cookie.get(COOKIE)
    return (morsel.value if morsel else ""), False


def authorize_url_for(sim: Simulator, *, user: SimUser | str, url: str) -> str:
    """A URL Siyu produced (pointing at the simulator's authorize page) with the simulated user added."""
    key = user if isinstance(user, str) else user.key
    url, hash_mark, fragment = url.partition("#")  # WeChat's URLs end in #wechat_redirect
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'sim_user': key})}{hash_mark}{fragment}"


@route("GET", OPEN_HOST, "/connect/oauth2/authorize")
def authorize(sim: Simulator, request: SimRequest) -> SimResponse:
    appid = request.arg("appid") or ""
    redirect_uri = request.arg("redirect_uri") or ""
    scope = request.arg("scope") or ""
    state = request.arg("state") or ""
    if not appid:
        return _error_page(10012, "appid 参数错误")
    with sim.lock:
        app = _official(sim, appid)
    if app is None:
        return _error_page(10016, "不支持的 appid")
    parts = urlsplit(redirect_uri)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return _error_page(10003, "redirect_uri 参数错误")
    domain = app.extra.get("oauth_domain")
    if domain and parts.hostname != domain:
        return _error_page(10003, "redirect_uri 域名与后台配置不一致")
    if request.arg("response_type") != "code":
        return _error_page(10004, "response_type 参数错误")
    if not scope:
        return _error_page(10010, "scope 为空")
    if scope not in SCOPES:
        return _error_page(10005, "此公众号并没有这些 scope 的权限")
    user_key, remember = _browser_user(request)
    if not user_key:
        return _error_page(10009, "模拟器:没有登录的微信用户(请在链接上加 sim_user=)")
    with sim.lock:
        user = sim.state.user(user_key)
        query: dict[str, str] = {}
        if not (scope == "snsapi_userinfo" and request.arg("sim_consent") == "deny"):
            code = secrets.token_hex(16)
            area(sim).codes[code] = OAuthCode(appid, user.key, scope, time.time() + CODE_LIFETIME)
            query["code"] = code
        query["state"] = state
    location = f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(query)}"
    headers = {"Location": location}
    if remember:
        headers["Set-Cookie"] = f"{COOKIE}={user.key}; Path=/; HttpOnly"
    return SimResponse(302, b"", headers)


def _issue_tokens(state: OAuthState, appid: str, user_key: str, scope: str) -> tuple[str, str]:
    access, refresh = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    state.access_tokens[access] = OAuthToken(appid, user_key, scope, time.time() + ACCESS_LIFETIME)
    state.refresh_tokens[refresh] = OAuthToken(appid, user_key, scope, time.time() + REFRESH_LIFETIME)
    return access, refresh


def _token_body(sim: Simulator, app: SimApp, user: SimUser, scope: str, access: str, refresh: str) -> dict:
    body = {"access_token": access, "expires_in": ACCESS_LIFETIME, "refresh_token": refresh,
            "openid": sim.state.openid(user, app.appid), "scope": scope}
    if scope == "snsapi_userinfo" and app.extra.get("open_platform"):
        body["unionid"] = sim.state.unionid(user, app.appid)
    return body


@route("GET", API_HOST, "/sns/oauth2/access_token")
def access_token(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        sim.state.calls.append((time.time(), request.host, request.path))
        app = _official(sim, request.arg("appid") or "")
        if app is None:
            raise SimError(40013, "invalid appid")
        if request.arg("secret") != app.secret:
            raise SimError(40125, "invalid appsecret")
        if request.arg("grant_type") != "authorization_code":
            raise SimError(40002, "invalid grant_type")
        code = request.arg("code") or ""
        if not code:
            raise SimError(41008, "missing code")
        state = area(sim)
        issued = state.codes.get(code)
        if issued is None or issued.appid != app.appid or issued.expires_at <= time.time():
            raise SimError(40029, "invalid code")
        if issued.used:
            raise SimError(40163, "code been used")
        issued.used = True
        user = sim.state.users[issued.user_key]
        access, refresh = _issue_tokens(state, app.appid, user.key, issued.scope)
        body = _token_body(sim, app, user, issued.scope, access, refresh)
    return SimResponse.json(body)


@route("GET", API_HOST, "/sns/oauth2/refresh_token")
def refresh_token(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        sim.state.calls.append((time.time(), request.host, request.path))
        app = _official(sim, request.arg("appid") or "")
        if app is None:
            raise SimError(40013, "invalid appid")
        if request.arg("grant_type") != "refresh_token":
            raise SimError(40002, "invalid grant_type")
        state = area(sim)
        issued = state.refresh_tokens.get(request.arg("refresh_token") or "")
        if issued is None or issued.appid != app.appid:
            raise SimError(40030, "invalid refresh_token")
        if issued.expires_at <= time.time():
            raise SimError(42002, "refresh_token expired")
        user = sim.state.users[issued.user_key]
        access = secrets.token_urlsafe(48)
        state.access_tokens[access] = OAuthToken(app.appid, user.key, issued.scope, time.time() + ACCESS_LIFETIME)
        body = _token_body(sim, app, user, issued.scope, access, request.arg("refresh_token") or "")
    return SimResponse.json(body)


def _user_token(sim: Simulator, request: SimRequest) -> tuple[OAuthToken, SimUser, SimApp]:
    value = request.arg("access_token") or ""
    if not value:
        raise SimError(41001, "access_token missing")
    issued = area(sim).access_tokens.get(value)
    if issued is None:
        raise SimError(40001, "invalid credential, access_token is invalid or not latest")
    if issued.expires_at <= time.time():
        raise SimError(42001, "access_token expired")
    user = sim.state.users[issued.user_key]
    openid = request.arg("openid") or ""
    if openid != sim.state.openid(user, issued.appid):
        raise SimError(40003, "invalid openid")
    return issued, user, sim.state.apps[issued.appid]


@route("GET", API_HOST, "/sns/userinfo")
def userinfo(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        sim.state.calls.append((time.time(), request.host, request.path))
        issued, user, app = _user_token(sim, request)
        if issued.scope != "snsapi_userinfo":
            raise SimError(48001, "api unauthorized")
        body = {
            "openid": sim.state.openid(user, app.appid),
            "nickname": user.nickname or f"微信用户{user.key[-4:]}",
            "sex": int(user.extra.get("sex", 0)),
            "province": user.extra.get("province", ""),
            "city": user.extra.get("city", ""),
            "country": user.extra.get("country", "中国"),
            "headimgurl": user.extra.get("headimgurl", ""),
            "privilege": [],
        }
        if app.extra.get("open_platform"):
            body["unionid"] = sim.state.unionid(user, app.appid)
    return SimResponse.json(body)


@route("GET", API_HOST, "/sns/auth")
def auth_check(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        sim.state.calls.append((time.time(), request.host, request.path))
        _user_token(sim, request)
    return SimResponse.json({"errcode": 0, "errmsg": "ok"})


@route("GET", "_sim", "/oauth/authorize_url")
def control_authorize_url(sim: Simulator, request: SimRequest) -> SimResponse:
    """Helper for the demo: ``?user=…&url=…`` → the same URL with the simulated browser user on it."""
    user, url = request.arg("user") or "", request.arg("url") or ""
    if not user or not url:
        raise SimError(40097, "user and url are required", status=400)
    return SimResponse.json({"url": authorize_url_for(sim, user=user, url=url)})
