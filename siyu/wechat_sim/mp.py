"""公众号 in the simulator: the api.weixin.qq.com endpoints Siyu uses, and simulated consumers acting on it.

APIs (shapes and error codes as WeChat documents them): parametric QR codes and ``showqrcode``, custom
menus, ``user/info`` (with unionid), customer-service, template and mass messages with WeChat's limits:
- mass send: a 订阅号 (``extra["account_type"] == "subscription"``) may mass-send once per day, a 服务号
  four times per month → 45028; ``mass/send`` needs 2–10,000 openids → 40130; a repeated ``clientmsgid``
  → 45065 (so a retried request never sends twice);
- custom (customer-service) messages only within 48 hours of the user's last message or event → 45015,
  and at most ``CUSTOM_MESSAGES_PER_WINDOW`` per user message → 45047;
- template messages only to followers → 43004, a daily quota per template → 45009.
What was sent is kept in ``MpState.sent`` so tests (and ``GET /_sim/mp/sent``) can look.

Consumer actions (``scan``, ``unsubscribe``, ``send_text``, ``click_menu``) build the event XML, wrap it
for the app's message mode (``extra["message_mode"]``: plain | compat | safe) and deliver it to the app's
``callback_url``; they are also reachable as ``POST /_sim/mp/...`` for other processes.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from siyu.wechat_sim import crypto
from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp, SimUser
from siyu.wechat_sim.tokens import MP_HOST, require_token

MP_WEB = "mp.weixin.qq.com"
MAX_TEMP_EXPIRE = 2_592_000  # 30 days
DEFAULT_TEMP_EXPIRE = 60
CUSTOM_WINDOW = 48 * 3600
CUSTOM_MESSAGES_PER_WINDOW = 5
MASS_PER_DAY_SUBSCRIPTION = 1
MASS_PER_MONTH_SERVICE = 4
TEMPLATE_DAILY_QUOTA = 100_000
BEIJING = timezone(timedelta(hours=8))


@dataclass
class Follower:
    appid: str
    openid: str
    user_key: str
    subscribed: bool = False
    subscribe_time: int = 0
    scene: str = ""  # qr_scene_str of the code that brought them
    last_interaction: float = 0.0  # last message or event from the user (opens the 48-hour window)
    custom_sent_in_window: int = 0
    tag_ids: set[int] = field(default_factory=set)


@dataclass
class QrCode:
    appid: str
    ticket: str
    action_name: str
    scene: str  # scene_str, or the scene_id as text
    expires_at: float | None  # None for permanent codes
    url: str


@dataclass
class MpState:
    followers: dict[tuple[str, str], Follower] = field(default_factory=dict)
    qrcodes: dict[str, QrCode] = field(default_factory=dict)
    menus: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)  # every message accepted for delivery
    mass_jobs: list[tuple[str, float]] = field(default_factory=list)  # (appid, time) of each mass send
    client_msg_ids: dict[tuple[str, str], float] = field(default_factory=dict)
    template_counts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (appid, template, day)
    replies: list[dict[str, Any]] = field(default_factory=list)  # what Siyu answered to callbacks
    ids: Any = field(default_factory=lambda: itertools.count(1000001))


def mp(sim: Simulator) -> MpState:
    return sim.state.area("mp", MpState)


def _official(sim: Simulator, request: SimRequest) -> SimApp:
    return require_token(sim, request, kinds={"official"})


def _payload(request: SimRequest) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict):
        raise SimError(47001, "data format error")
    return payload


def _follower(state: MpState, app: SimApp, openid: str) -> Follower:
    follower = state.followers.get((app.appid, openid or ""))
    if follower is None:
        raise SimError(40003, "invalid openid")
    return follower


# --- QR codes ---------------------------------------------------------------------------------------
@route("POST", MP_HOST, "/cgi-bin/qrcode/create")
def qrcode_create(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    payload = _payload(request)
    action = payload.get("action_name")
    if action not in {"QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"}:
        raise SimError(40052, "invalid action name")
    scene = ((payload.get("action_info") or {}).get("scene") or {}) if isinstance(payload.get("action_info"),
                                                                                  dict) else {}
    if action.endswith("STR_SCENE"):
        value = scene.get("scene_str")
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise SimError(40053, "invalid action info, scene_str must be 1-64 characters")
    else:
        value = scene.get("scene_id")
        upper = 100_000 if action == "QR_LIMIT_SCENE" else 2**32 - 1
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
            raise SimError(40053, "invalid action info, scene_id out of range")
        value = str(value)
    permanent = action.startswith("QR_LIMIT")
    answer: dict[str, Any] = {}
    expires_at = None
    if not permanent:
        expire = payload.get("expire_seconds", DEFAULT_TEMP_EXPIRE)
        if not isinstance(expire, int) or isinstance(expire, bool) or expire < 1:
            raise SimError(40009, "invalid expire_seconds")
        expire = min(expire, MAX_TEMP_EXPIRE)  # WeChat caps rather than refuses
        expires_at = time.time() + expire
        answer["expire_seconds"] = expire
    ticket = "gQ" + base64.urlsafe_b64encode(secrets.token_bytes(36)).decode().rstrip("=")
    url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
    with sim.lock:
        mp(sim).qrcodes[ticket] = QrCode(app.appid, ticket, action, value, expires_at, url)
    return SimResponse.json({"ticket": ticket, **answer, "url": url})


@route("GET", MP_WEB, "/cgi-bin/showqrcode")
def qrcode_show(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        code = mp(sim).qrcodes.get(request.arg("ticket") or "")
    if code is None or (code.expires_at is not None and code.expires_at < time.time()):
        return SimResponse.error(40001, "invalid ticket", status=404)
    return SimResponse(200, _placeholder_png(code.ticket), {"Content-Type": "image/png"})


def _placeholder_png(seed: str, size: int = 21) -> bytes:
    """A small black-and-white PNG whose pattern depends on the ticket (not a scannable QR code)."""
    bits = bytes(b % 2 for b in (seed.encode() * (size * size // max(len(seed), 1) + 1))[: size * size])
    rows = b"".join(b"\x00" + bytes(0 if bits[r * size + c] else 255 for c in range(size)) for r in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# --- menus ------------------------------------------------------------------------------------------
def _check_menu(menu: Any) -> None:
    buttons = menu.get("button") if isinstance(menu, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise SimError(40016, "invalid button size")
    for button in buttons:
        if not isinstance(button, dict):
            raise SimError(40017, "invalid button type")
        name = button.get("name")
        if not isinstance(name, str) or not 1 <= len(name.encode()) <= 16:
            raise SimError(40018, "invalid button name size")
        subs = button.get("sub_button")
        if subs:
            if not isinstance(subs, list) or len(subs) > 5:
                raise SimError(40023, "invalid sub button size")
            for sub in subs:
                if not isinstance(sub, dict):
                    raise SimError(40024, "invalid sub button type")
                sub_name = sub.get("name")
                if not isinstance(sub_name, str) or not 1 <= len(sub_name.encode()) <= 60:
                    raise SimError(40025, "invalid sub button name size")
                _check_action(sub, sub_button=True)
        else:
            _check_action(button, sub_button=False)


def _check_action(button: dict[str, Any], *, sub_button: bool) -> None:
    kind = button.get("type")
    if kind == "click":
        key = button.get("key")
        if not isinstance(key, str) or not 1 <= len(key.encode()) <= 128:
            raise SimError(40026 if sub_button else 40019, "invalid button key size")
    elif kind == "view":
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 1024:
            raise SimError(40027 if sub_button else 40020, "invalid button url size")
    else:
        raise SimError(40024 if sub_button else 40017, "invalid button type")


@route("POST", MP_HOST, "/cgi-bin/menu/create")
def menu_create(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    menu = _payload(request)
    _check_menu(menu)
    with sim.lock:
        mp(sim).menus[app.appid] = {"button": menu["button"]}
    return SimResponse.error(0, "ok")


@route("GET", MP_HOST, "/cgi-bin/menu/get")
def menu_get(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    with sim.lock:
        menu = mp(sim).menus.get(app.appid)
    if menu is None:
        raise SimError(46003, "menu no exist")
    return SimResponse.json({"menu": menu})


@route("GET", MP_HOST, "/cgi-bin/menu/delete")
def menu_delete(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    with sim.lock:
        mp(sim).menus.pop(app.appid, None)
    return SimResponse.error(0, "ok")


# --- users ------------------------------------------------------------------------------------------
def _has_unionid(app: SimApp) -> bool:
    return bool(app.extra.get("unionid", True))


@route("GET", MP_HOST, "/cgi-bin/user/info")
def user_info(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    openid = request.arg("openid") or ""
    with sim.lock:
        follower = _follower(mp(sim), app, openid)
        user = sim.state.users[follower.user_key]
        info: dict[str, Any] = {"subscribe": int(follower.subscribed), "openid": openid}
        if follower.subscribed:
            info.update(language=request.arg("lang", "zh_CN"), subscribe_time=follower.subscribe_time,
                        remark="", groupid=0, tagid_list=sorted(follower.tag_ids),
                        subscribe_scene="ADD_SCENE_QR_CODE" if follower.scene else "ADD_SCENE_SEARCH",
                        qr_scene=0, qr_scene_str=follower.scene)
        if _has_unionid(app):
            info["unionid"] = sim.state.unionid(user, app.appid)
    return SimResponse.json(info)


# --- messages ---------------------------------------------------------------------------------------
def _record(state: MpState, app: SimApp, api: str, touser: str, payload: dict[str, Any], msgid: int) -> None:
    state.sent.append({"api": api, "appid": app.appid, "touser": touser, "payload": payload, "msgid": msgid,
                       "time": time.time()})


@route("POST", MP_HOST, "/cgi-bin/message/custom/send")
def custom_send(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    payload = _payload(request)
    if payload.get("msgtype") not in {"text", "image", "news", "mpnews", "voice", "video", "music", "msgmenu",
                                       "miniprogrampage"}:
        raise SimError(40008, "invalid message type")
    with sim.lock:
        state = mp(sim)
        follower = _follower(state, app, payload.get("touser", ""))
        if not follower.subscribed or time.time() - follower.last_interaction > CUSTOM_WINDOW:
            raise SimError(45015, "response out of time limit or subscription is canceled")
        if follower.custom_sent_in_window >= CUSTOM_MESSAGES_PER_WINDOW:
            raise SimError(45047, "out of response count limit")
        follower.custom_sent_in_window += 1
        _record(state, app, "custom", follower.openid, payload, next(state.ids))
    return SimResponse.error(0, "ok")


@route("POST", MP_HOST, "/cgi-bin/message/template/send")
def template_send(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    payload = _payload(request)
    template_id = payload.get("template_id")
    known = app.extra.get("templates")
    if not isinstance(template_id, str) or not template_id or (known is not None and template_id not in known):
        raise SimError(40037, "invalid template_id")
    if not isinstance(payload.get("data"), dict):
        raise SimError(47001, "data format error")
    with sim.lock:
        state = mp(sim)
        follower = _follower(state, app, payload.get("touser", ""))
        if not follower.subscribed:
            raise SimError(43004, "require subscribe")
        day = datetime.now(BEIJING).strftime("%Y-%m-%d")
        key = (app.appid, template_id, day)
        if state.template_counts.get(key, 0) >= int(app.extra.get("template_daily_quota", TEMPLATE_DAILY_QUOTA)):
            raise SimError(45009, "reach max api daily quota limit")
        state.template_counts[key] = state.template_counts.get(key, 0) + 1
        msgid = next(state.ids)
        _record(state, app, "template", follower.openid, payload, msgid)
    return SimResponse.json({"errcode": 0, "errmsg": "ok", "msgid": msgid})


def _mass_quota_left(state: MpState, app: SimApp, now: float) -> bool:
    local = datetime.fromtimestamp(now, BEIJING)
    jobs = [datetime.fromtimestamp(at, BEIJING) for appid, at in state.mass_jobs if appid == app.appid]
    if app.extra.get("account_type", "service") == "subscription":
        return sum(1 for job in jobs if job.date() == local.date()) < MASS_PER_DAY_SUBSCRIPTION
    return sum(1 for job in jobs if (job.year, job.month) == (local.year, local.month)) < MASS_PER_MONTH_SERVICE


def _mass(sim: Simulator, app: SimApp, payload: dict[str, Any], recipients: list[Follower]) -> SimResponse:
    if payload.get("msgtype") != "text" or not isinstance((payload.get("text") or {}).get("content"), str):
        raise SimError(40008, "invalid message type")  # the simulator only carries text mass messages
    now = time.time()
    with sim.lock:
        state = mp(sim)
        client_msg_id = payload.get("clientmsgid")
        if client_msg_id:
            seen = state.client_msg_ids.get((app.appid, str(client_msg_id)))
            if seen is not None and now - seen < 24 * 3600:
                raise SimError(45065, "clientmsgid exist")
        if not _mass_quota_left(state, app, now):
            raise SimError(45028, "has no masssend quota")
        state.mass_jobs.append((app.appid, now))
        if client_msg_id:
            state.client_msg_ids[(app.appid, str(client_msg_id))] = now
        msg_id = next(state.ids)
        for follower in recipients:
            if follower.subscribed:
                _record(state, app, "mass", follower.openid, payload, msg_id)
    return SimResponse.json({"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id,
                             "msg_data_id": msg_id * 10})


@route("POST", MP_HOST, "/cgi-bin/message/mass/sendall")
def mass_sendall(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    payload = _payload(request)
    target = payload.get("filter") or {}
    if not isinstance(target, dict):
        raise SimError(47001, "data format error")
    tag_id = target.get("tag_id", target.get("group_id"))
    with sim.lock:
        followers = [f for f in mp(sim).followers.values() if f.appid == app.appid and f.subscribed]
    if not target.get("is_to_all"):
        if tag_id in (None, ""):
            raise SimError(40050, "invalid tag_id")
        followers = [f for f in followers if int(tag_id) in f.tag_ids]
    return _mass(sim, app, payload, followers)


@route("POST", MP_HOST, "/cgi-bin/message/mass/send")
def mass_send(sim: Simulator, request: SimRequest) -> SimResponse:
    app = _official(sim, request)
    payload = _payload(request)
    openids = payload.get("touser")
    if not isinstance(openids, list) or not 2 <= len(openids) <= 10_000:
        raise SimError(40130, "invalid openid list size, at least two openid")
    with sim.lock:
        state = mp(sim)
        followers = [state.followers[(app.appid, openid)] for openid in openids
                     if (app.appid, openid) in state.followers]
    return _mass(sim, app, payload, followers)


# --- simulated consumers ----------------------------------------------------------------------------
def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def event_xml(app: SimApp, openid: str, msg_type: str, fields: dict[str, Any], *, create_time: int) -> str:
    """A callback body as WeChat writes it (text fields in CDATA, numbers bare)."""
    parts = [f"<ToUserName>{_cdata(app.extra.get('original_id', 'gh_' + app.appid[-12:]))}</ToUserName>",
             f"<FromUserName>{_cdata(openid)}</FromUserName>", f"<CreateTime>{create_time}</CreateTime>",
             f"<MsgType>{_cdata(msg_type)}</MsgType>"]
    for name, value in fields.items():
        parts.append(f"<{name}>{value}</{name}>" if isinstance(value, int) else f"<{name}>{_cdata(str(value))}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


@dataclass
class Delivery:
    """What happened when a consumer action reached Siyu: HTTP status, raw answer, the reply decrypted."""

    status: int
    body: bytes
    reply: str  # the plain reply XML (decrypted in safe mode); "" for "success" or an empty answer
    attempts: int = 1


def deliver_callback(sim: Simulator, app: SimApp, xml: str) -> Delivery:
    """Wrap ``xml`` for the app's message mode and POST it to the app's callback URL (honouring the
    ``delay_callback`` and ``duplicate_notify`` faults: WeChat retries the same body when unsure)."""
    if not app.callback_url:
        raise SimError(-1, f"app {app.appid} has no callback_url", status=400)
    mode = app.extra.get("message_mode", "safe" if app.encoding_aes_key else "plain")
    delay = sim.faults.take("delay_callback", MP_HOST, "/callback")
    if delay is not None:
        time.sleep(min(float(delay.params.get("seconds", 0.2)), 5.0))
    status, answer = _post_callback(sim, app, xml, mode)
    attempts = 1
    if sim.faults.take("duplicate_notify", MP_HOST, "/callback") is not None:
        # WeChat's retry: the same message (same CreateTime / MsgId) in a new request, new nonce and timestamp.
        status, answer = _post_callback(sim, app, xml, mode)
        attempts = 2
    reply = _reply_plain(app, answer, mode) if status == 200 else ""
    with sim.lock:
        mp(sim).replies.append({"appid": app.appid, "status": status, "reply": reply})
    return Delivery(status, answer, reply, attempts)


def _post_callback(sim: Simulator, app: SimApp, xml: str, mode: str) -> tuple[int, bytes]:
    if mode == "safe":
        body, query = crypto.safe_envelope(app.token, app.encoding_aes_key, app.appid, xml)
    elif mode == "compat":
        body, query = crypto.compat_envelope(app.token, app.encoding_aes_key, app.appid, xml)
    else:
        body, query = xml, crypto.plain_query(app.token)
    query = {"openid": _from_user(xml), **query}
    separator = "&" if "?" in app.callback_url else "?"
    return sim.deliver(app.callback_url + separator + urlencode(query), body.encode(), {"Content-Type": "text/xml"})


def _from_user(xml: str) -> str:
    start = xml.index("<FromUserName><![CDATA[") + len("<FromUserName><![CDATA[")
    return xml[start:xml.index("]]>", start)]


def _reply_plain(app: SimApp, answer: bytes, mode: str) -> str:
    text = answer.decode("utf-8", "replace").strip()
    if not text or text == "success":
        return ""
    if "<Encrypt>" in text and app.encoding_aes_key:  # safe mode (and compatible mode may answer encrypted)
        start = text.index("<Encrypt>") + len("<Encrypt>")
        cipher = text[start:text.index("</Encrypt>")].removeprefix("<![CDATA[").removesuffix("]]>")
        signature = _element(text, "MsgSignature")
        timestamp, nonce = _element(text, "TimeStamp"), _element(text, "Nonce")
        if crypto.signature(app.token, timestamp, nonce, cipher) != signature:
            raise SimError(-40001, "reply signature does not verify", status=502)
        message, receive_id = crypto.decrypt(app.encoding_aes_key, cipher)
        if receive_id != app.appid:
            raise SimError(-40005, "reply encrypted for another appid", status=502)
        return message.decode()
    return text


def _element(text: str, name: str) -> str:
    start = text.index(f"<{name}>") + len(name) + 2
    value = text[start:text.index(f"</{name}>")]
    return value.removeprefix("<![CDATA[").removesuffix("]]>")


def _app(sim: Simulator, appid: str) -> SimApp:
    with sim.lock:
        app = sim.state.apps.get(appid)
    if app is None or app.kind != "official":
        raise SimError(40013, "invalid appid", status=404)
    return app


def _touch(sim: Simulator, app: SimApp, user: SimUser) -> Follower:
    """The user's follower record for this app (created unsubscribed), with their interaction window renewed."""
    openid = sim.state.openid(user, app.appid)
    with sim.lock:
        state = mp(sim)
        follower = state.followers.setdefault((app.appid, openid), Follower(app.appid, openid, user.key))
        follower.custom_sent_in_window = 0  # each message or event from the user allows five more
        follower.last_interaction = time.time()
    return follower


def scan(sim: Simulator, user: SimUser, ticket: str) -> Delivery:
    """The user scans a parametric QR code: a subscribe event with ``qrscene_`` if they did not follow yet,
    else a SCAN event. An expired temporary code does nothing in WeChat; here it is an error."""
    with sim.lock:
        code = mp(sim).qrcodes.get(ticket)
    if code is None or (code.expires_at is not None and code.expires_at < time.time()):
        raise SimError(40001, "invalid or expired ticket", status=404)
    app = _app(sim, code.appid)
    follower = _touch(sim, app, user)
    now = int(time.time())
    if follower.subscribed:
        fields = {"Event": "SCAN", "EventKey": code.scene, "Ticket": ticket}
    else:
        with sim.lock:
            follower.subscribed, follower.subscribe_time, follower.scene = True, now, code.scene
        fields = {"Event": "subscribe", "EventKey": "qrscene_" + code.scene, "Ticket": ticket}
    return deliver_callback(sim, app, event_xml(app, follower.openid, "event", fields, create_time=now))


def subscribe(sim: Simulator, user: SimUser, appid: str) -> Delivery:
    """The user follows the account from search or a shared card (no scene)."""
    app = _app(sim, appid)
    follower = _touch(sim, app, user)
    now = int(time.time())
    with sim.lock:
        follower.subscribed, follower.subscribe_time = True, now
    xml = event_xml(app, follower.openid, "event", {"Event": "subscribe", "EventKey": ""}, create_time=now)
    return deliver_callback(sim, app, xml)


def unsubscribe(sim: Simulator, user: SimUser, appid: str) -> Delivery:
    app = _app(sim, appid)
    follower = _touch(sim, app, user)
    with sim.lock:
        follower.subscribed = False
    xml = event_xml(app, follower.openid, "event", {"Event": "unsubscribe", "EventKey": ""},
                    create_time=int(time.time()))
    return deliver_callback(sim, app, xml)


def send_text(sim: Simulator, user: SimUser, appid: str, text: str) -> Delivery:
    app = _app(sim, appid)
    follower = _touch(sim, app, user)
    with sim.lock:
        msg_id = next(mp(sim).ids) * 1_000_000_007
    xml = event_xml(app, follower.openid, "text", {"Content": text, "MsgId": msg_id}, create_time=int(time.time()))
    return deliver_callback(sim, app, xml)


def click_menu(sim: Simulator, user: SimUser, appid: str, key: str) -> Delivery:
    app = _app(sim, appid)
    follower = _touch(sim, app, user)
    xml = event_xml(app, follower.openid, "event", {"Event": "CLICK", "EventKey": key}, create_time=int(time.time()))
    return deliver_callback(sim, app, xml)


def tag_user(sim: Simulator, user: SimUser, appid: str, tag_id: int) -> None:
    """Put a follower under one of the account's user tags (what ``tags/members/batchtagging`` does)."""
    app = _app(sim, appid)
    follower = _touch(sim, app, user)
    with sim.lock:
        follower.tag_ids.add(int(tag_id))


def sent_messages(sim: Simulator, appid: str | None = None, api: str | None = None) -> list[dict[str, Any]]:
    with sim.lock:
        return [dict(item) for item in mp(sim).sent
                if (appid is None or item["appid"] == appid) and (api is None or item["api"] == api)]


# --- control endpoints for other processes ---------------------------------------------------------
def _control_args(request: SimRequest, *names: str) -> list[Any]:
    payload = request.json()
    if not isinstance(payload, dict) or any(not payload.get(name) for name in names):
        raise SimError(40097, "required: " + ", ".join(names), status=400)
    return [payload[name] for name in names]


def _delivery_json(delivery: Delivery) -> SimResponse:
    return SimResponse.json({"status": delivery.status, "reply": delivery.reply, "attempts": delivery.attempts,
                             "answer": delivery.body.decode("utf-8", "replace")[:2000]})


@route("POST", "_sim", "/mp/scan")
def control_scan(sim: Simulator, request: SimRequest) -> SimResponse:
    user_key, ticket = _control_args(request, "user", "ticket")
    return _delivery_json(scan(sim, sim.state.user(str(user_key)), str(ticket)))


@route("POST", "_sim", "/mp/subscribe")
def control_subscribe(sim: Simulator, request: SimRequest) -> SimResponse:
    user_key, appid = _control_args(request, "user", "appid")
    return _delivery_json(subscribe(sim, sim.state.user(str(user_key)), str(appid)))


@route("POST", "_sim", "/mp/unsubscribe")
def control_unsubscribe(sim: Simulator, request: SimRequest) -> SimResponse:
    user_key, appid = _control_args(request, "user", "appid")
    return _delivery_json(unsubscribe(sim, sim.state.user(str(user_key)), str(appid)))


@route("POST", "_sim", "/mp/text")
def control_text(sim: Simulator, request: SimRequest) -> SimResponse:
    user_key, appid, text = _control_args(request, "user", "appid", "text")
    return _delivery_json(send_text(sim, sim.state.user(str(user_key)), str(appid), str(text)))


@route("POST", "_sim", "/mp/click")
def control_click(sim: Simulator, request: SimRequest) -> SimResponse:
    user_key, appid, key = _control_args(request, "user", "appid", "key")
    return _delivery_json(click_menu(sim, sim.state.user(str(user_key)), str(appid), str(key)))


@route("POST", "_sim", "/mp/tag")
def control_tag(sim: Simulator, request: SimRequest) -> SimResponse:
    user_key, appid, tag_id = _control_args(request, "user", "appid", "tag_id")
    tag_user(sim, sim.state.user(str(user_key)), str(appid), int(tag_id))
    return SimResponse.json({"errcode": 0, "errmsg": "ok"})


@route("GET", "_sim", "/mp/sent")
def control_sent(sim: Simulator, request: SimRequest) -> SimResponse:
    return SimResponse.json(sent_messages(sim, request.arg("appid"), request.arg("api")))


@route("GET", "_sim", "/mp/qrcodes")
def control_qrcodes(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        codes = [{"appid": c.appid, "ticket": c.ticket, "action_name": c.action_name, "scene": c.scene,
                  "expires_at": c.expires_at, "url": c.url} for c in mp(sim).qrcodes.values()
                 if not request.arg("appid") or c.appid == request.arg("appid")]
    return SimResponse.json(codes)


__all__ = ["Delivery", "click_menu", "deliver_callback", "event_xml", "mp", "scan", "send_text",
           "sent_messages", "subscribe", "tag_user", "unsubscribe"]
