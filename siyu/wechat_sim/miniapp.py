"""小程序 as WeChat serves it: ``wx.login`` codes, ``code2session``, phone-number codes and subscribe messages.

A simulated consumer's mini-program does what the real one does on the phone: :func:`wx_login` stands for
``wx.login()`` (a single-use code valid five minutes), :func:`phone_code` for the phone-number button
(``getPhoneNumber`` gives a code), :func:`subscribe_accept` for the user tapping "allow" in
``wx.requestSubscribeMessage`` (one send per template per tap). The same actions are reachable over HTTP
under ``/_sim/miniapp/...`` for the demo and separate processes.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp, SimUser
from siyu.wechat_sim.tokens import require_token

HOST = "api.weixin.qq.com"
CODE_LIFETIME = 300  # seconds: wx.login codes and phone codes both live five minutes


@dataclass
class IssuedCode:
    appid: str
    user_key: str
    expires_at: float
    used: bool = False


@dataclass
class SubscribeSend:
    appid: str
    touser: str
    template_id: str
    data: dict
    page: str
    msgid: int
    sent_at: float


@dataclass
class MiniappState:
    login_codes: dict[str, IssuedCode] = field(default_factory=dict)
    phone_codes: dict[str, IssuedCode] = field(default_factory=dict)
    session_keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (appid, user key) -> session_key
    # One-time subscribe authorisations the user granted: (appid, user key, template_id) -> sends left.
    authorisations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    sends: list[SubscribeSend] = field(default_factory=list)
    next_msgid: int = 1000


def area(sim: Simulator) -> MiniappState:
    return sim.state.area("miniapp", MiniappState)


def _user(sim: Simulator, user: SimUser | str) -> SimUser:
    return sim.state.user(user) if isinstance(user, str) else user


def _miniapp(sim: Simulator, appid: str) -> SimApp:
    app = sim.state.apps.get(appid)
    if app is None or app.kind != "miniapp":
        raise SimError(40013, "invalid appid")
    return app


# --- what the consumer's phone does -----------------------------------------------------------------
def wx_login(sim: Simulator, user: SimUser | str, appid: str) -> str:
    """``wx.login()`` in the mini-program: a fresh single-use login code for this user and app."""
    with sim.lock:
        _miniapp(sim, appid)
        user = _user(sim, user)
        code = secrets.token_hex(16)
        area(sim).login_codes[code] = IssuedCode(appid, user.key, time.time() + CODE_LIFETIME)
    return code


def phone_code(sim: Simulator, user: SimUser | str, appid: str) -> str:
    """The user taps the ``open-type="getPhoneNumber"`` button and allows: a single-use phone code."""
    with sim.lock:
        _miniapp(sim, appid)
        user = _user(sim, user)
        code = secrets.token_hex(16)
        area(sim).phone_codes[code] = IssuedCode(appid, user.key, time.time() + CODE_LIFETIME)
    return code


def subscribe_accept(sim: Simulator, user: SimUser | str, appid: str, template_ids: list[str],
                     *, reject: tuple[str, ...] = ()) -> dict[str, str]:
    """``wx.requestSubscribeMessage``: the user allows (or rejects) each template once.

    Returns what the mini-program receives, ``{template_id: "accept" | "reject"}``; each accept is worth
    exactly one send of that template to this user.
    """
    result: dict[str, str] = {}
    with sim.lock:
        _miniapp(sim, appid)
        user = _user(sim, user)
        state = area(sim)
        for template_id in template_ids:
            if template_id in reject:
                result[template_id] = "reject"
                continue
            key = (appid, user.key, template_id)
            state.authorisations[key] = state.authorisations.get(key, 0) + 1
            result[template_id] = "accept"
    return result


# --- the whole mini-program talking to Siyu (demo and scenario tests) ---------------------------------
def _post_siyu(sim: Simulator, path: str, payload: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, body = sim.deliver(path, json.dumps(payload).encode(), headers)
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}


def miniapp_open(sim: Simulator, user: SimUser | str, appid: str) -> tuple[int, dict]:
    """The user opens the mini-program: ``wx.login`` then the mini-program's POST to Siyu's login API.

    Returns Siyu's (status, answer); the answer holds the session token on success.
    """
    code = wx_login(sim, user, appid)
    return _post_siyu(sim, f"/wx/consumer/miniapp/{appid}/login", {"code": code})


def miniapp_bind_phone(sim: Simulator, user: SimUser | str, appid: str, token: str) -> tuple[int, dict]:
    """The user taps "use my WeChat phone number"; the mini-program sends the code to Siyu."""
    return _post_siyu(sim, "/wx/consumer/miniapp/phone", {"code": phone_code(sim, user, appid)}, token)


def miniapp_subscribe(sim: Simulator, user: SimUser | str, appid: str, token: str, template_ids: list[str],
                      *, reject: tuple[str, ...] = ()) -> tuple[int, dict]:
    """``wx.requestSubscribeMessage`` and then the mini-program telling Siyu what the user answered."""
    results = subscribe_accept(sim, user, appid, template_ids, reject=reject)
    return _post_siyu(sim, "/wx/consumer/miniapp/subscribe", {"results": results}, token)


def _take_code(codes: dict[str, IssuedCode], code: str, appid: str) -> IssuedCode:
    issued = codes.get(code)
    if issued is None or issued.appid != appid or issued.expires_at <= time.time():
        raise SimError(40029, "invalid code")
    if issued.used:
        raise SimError(40163, "code been used")
    issued.used = True
    return issued


# --- the server side WeChat offers ------------------------------------------------------------------
@route("GET", HOST, "/sns/jscode2session")
def jscode2session(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        sim.state.calls.append((time.time(), request.host, request.path))
        app = _miniapp(sim, request.arg("appid") or "")
        if request.arg("secret") != app.secret:
            raise SimError(40125, "invalid appsecret")
        if request.arg("grant_type") != "authorization_code":
            raise SimError(40002, "invalid grant_type")
        code = request.arg("js_code") or ""
        if not code:
            raise SimError(41008, "missing code")
        issued = _take_code(area(sim).login_codes, code, app.appid)
        user = sim.state.users[issued.user_key]
        session_key = secrets.token_urlsafe(18)  # 24 characters, like WeChat's base64 of 16 bytes
        area(sim).session_keys[(app.appid, user.key)] = session_key
        body = {"openid": sim.state.openid(user, app.appid), "session_key": session_key}
        if app.extra.get("open_platform"):
            body["unionid"] = sim.state.unionid(user, app.appid)
    return SimResponse.json(body)


@route("POST", HOST, "/wxa/business/getuserphonenumber")
def getuserphonenumber(sim: Simulator, request: SimRequest) -> SimResponse:
    app = require_token(sim, request, kinds={"miniapp"})
    payload = request.json()
    code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(code, str) or not code:
        raise SimError(41008, "missing code")
    with sim.lock:
        issued = _take_code(area(sim).phone_codes, code, app.appid)
        user = sim.state.users[issued.user_key]
        phone = user.phone
    return SimResponse.json({
        "errcode": 0, "errmsg": "ok",
        "phone_info": {"phoneNumber": phone, "purePhoneNumber": phone, "countryCode": "86",
                       "watermark": {"timestamp": int(time.time()), "appid": app.appid}},
    })


@route("POST", HOST, "/cgi-bin/message/subscribe/send")
def subscribe_send(sim: Simulator, request: SimRequest) -> SimResponse:
    app = require_token(sim, request, kinds={"miniapp"})
    payload = request.json()
    if not isinstance(payload, dict):
        raise SimError(47001, "data format error")
    touser, template_id = payload.get("touser"), payload.get("template_id")
    data = payload.get("data")
    if not isinstance(template_id, str) or not template_id:
        raise SimError(40037, "invalid template_id")
    if not isinstance(data, dict):
        raise SimError(47003, "argument invalid! data is empty")
    with sim.lock:
        user = sim.state.user_by_openid(app.appid, touser) if isinstance(touser, str) else None
        if user is None:
            raise SimError(40003, "invalid openid")
        state = area(sim)
        key = (app.appid, user.key, template_id)
        if state.authorisations.get(key, 0) <= 0:
            raise SimError(43101, "user refuse to accept the msg")
        state.authorisations[key] -= 1
        state.next_msgid += 1
        state.sends.append(SubscribeSend(app.appid, touser, template_id, data, str(payload.get("page") or ""),
                                         state.next_msgid, time.time()))
        msgid = state.next_msgid
    return SimResponse.json({"errcode": 0, "errmsg": "ok", "msgid": msgid})


# --- control endpoints (the demo's simulated consumers) --------------------------------------------------
def _control_args(request: SimRequest) -> tuple[str, str, dict]:
    payload = request.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), str) \
            or not isinstance(payload.get("appid"), str):
        raise SimError(40097, "user and appid are required", status=400)
    return payload["user"], payload["appid"], payload


@route("POST", "_sim", "/miniapp/login")
def control_login(sim: Simulator, request: SimRequest) -> SimResponse:
    user, appid, _ = _control_args(request)
    return SimResponse.json({"code": wx_login(sim, user, appid)})


@route("POST", "_sim", "/miniapp/phone_code")
def control_phone_code(sim: Simulator, request: SimRequest) -> SimResponse:
    user, appid, _ = _control_args(request)
    return SimResponse.json({"code": phone_code(sim, user, appid)})


@route("POST", "_sim", "/miniapp/subscribe")
def control_subscribe(sim: Simulator, request: SimRequest) -> SimResponse:
    user, appid, payload = _control_args(request)
    template_ids = payload.get("template_ids")
    if not isinstance(template_ids, list) or not all(isinstance(item, str) and item for item in template_ids):
        raise SimError(40097, "template_ids must be a list of strings", status=400)
    reject = tuple(item for item in payload.get("reject", []) if isinstance(item, str))
    return SimResponse.json(subscribe_accept(sim, user, appid, template_ids, reject=reject))


@route("GET", "_sim", "/miniapp/sends")
def control_sends(sim: Simulator, request: SimRequest) -> SimResponse:
    appid = request.arg("appid")
    with sim.lock:
        sends = [vars(send) for send in area(sim).sends if appid in (None, send.appid)]
    return SimResponse.json(sends)
