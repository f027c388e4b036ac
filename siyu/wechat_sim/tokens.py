"""Access tokens, as WeChat issues and checks them (公众号/小程序 ``cgi-bin/token``, WeCom ``gettoken``)."""

from __future__ import annotations

import time

from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp

MP_HOST = "api.weixin.qq.com"
WORK_HOST = "qyapi.weixin.qq.com"


@route("GET", MP_HOST, "/cgi-bin/token")
def mp_token(sim: Simulator, request: SimRequest) -> SimResponse:
    if request.arg("grant_type") != "client_credential":
        raise SimError(40002, "invalid grant_type")
    with sim.lock:
        app = sim.state.apps.get(request.arg("appid") or "")
        if app is None or app.kind not in {"official", "miniapp"}:
            raise SimError(40013, "invalid appid")
        if request.arg("secret") != app.secret:
            raise SimError(40125, "invalid appsecret")
        token, lifetime = sim.state.token_issue(app.appid, MP_HOST)
    return SimResponse.json({"access_token": token, "expires_in": lifetime})


@route("GET", WORK_HOST, "/cgi-bin/gettoken")
def work_token(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        app = sim.state.apps.get(request.arg("corpid") or "")
        if app is None or app.kind != "work":
            raise SimError(40013, "invalid corpid")
        secret = request.arg("corpsecret") or ""
        name = work_secret_name(app, secret)
        if name is None:
            raise SimError(40001, "invalid secret")
        token, lifetime = sim.state.token_issue(app.appid, WORK_HOST, secret=name)
    return SimResponse.json({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": lifetime})


def work_secret_name(app: SimApp, secret: str) -> str | None:
    """Which of a corp's secrets this is: a name of ``extra["secrets"]`` ({"contact", "app", "kf"} …), else
    "contact" for the corp's main secret, else None (not one of the corp's)."""
    if not secret:
        return None
    for name, value in (app.extra.get("secrets") or {}).items():
        if value and value == secret:
            return str(name)
    return "contact" if secret == app.secret else None


def token_secret(sim: Simulator, request: SimRequest) -> str:
    """The name of the secret the call's (already checked) access token was fetched with."""
    with sim.lock:
        issued = sim.state.tokens.get(request.arg("access_token") or "")
        return issued.secret if issued is not None else ""


def require_token(sim: Simulator, request: SimRequest, *, kinds: set[str] | None = None) -> SimApp:
    """The app an API call's ``access_token`` belongs to, or the WeChat error for it. Records the call."""
    value = request.arg("access_token")
    with sim.lock:
        sim.state.calls.append((time.time(), request.host, request.path))
        if not value:
            raise SimError(41001, "access_token missing")
        issued = sim.state.tokens.get(value)
        if issued is None or issued.host != request.host or issued.revoked:
            raise SimError(40001 if request.host == MP_HOST else 40014,
                           "invalid credential, access_token is invalid or not latest")
        if issued.expires_at <= time.time():
            raise SimError(42001, "access_token expired")
        app = sim.state.apps[issued.appid]
    if kinds is not None and app.kind not in kinds:
        raise SimError(48001, "api unauthorized")
    return app
