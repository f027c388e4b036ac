"""企业微信「微信客服」(qyapi.weixin.qq.com/cgi-bin/kf/...) as the simulator serves it.

A WeChat user writes to a 客服账号 (``open_kfid``): WeCom does not push the message itself, it calls the
corp's callback with ``Event=kf_msg_or_event`` and a short-lived ``Token``; the corp then pulls new messages
with ``kf/sync_msg`` from its ``cursor`` (pages of ``limit``, ``has_more``) and answers with ``kf/send_msg``.
WeCom's rules as enforced here: a reply only within 48 hours of the customer's last message and at most five
replies per customer message (refused here with ``errcode 95018``), unknown accounts ``95000``.
Messages the corp sent come back in later syncs with ``origin`` 5, like WeCom does.

Credentials: the kf APIs take a token fetched with the 微信客服 application's secret (``extra["secrets"]["kf"]``)
or with a self-built app's secret granted kf API access (``extra["kf_api_apps"]``, names of secrets; a corp
registered without a kf secret grants its ``app`` by default). Any other secret's token: ``48002`` api forbidden.

Consumers act through :func:`customer_says`; tests read :func:`sent_messages`.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from siyu.wechat_sim import crypto
from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.tokens import token_secret
from siyu.wechat_sim.work import HOST, _body, _corp_for, _ok, event_xml

REPLY_WINDOW_SECONDS = 48 * 3600
REPLIES_PER_MESSAGE = 5
SYNC_LIMIT_MAX = 1000
TOKEN_SECONDS = 600
ORIGIN_CUSTOMER, ORIGIN_SENT = 3, 5


@dataclass
class KfMessage:
    seq: int
    msgid: str
    open_kfid: str
    external_userid: str
    send_time: int
    origin: int
    msgtype: str
    content: str

    def as_dict(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "open_kfid": self.open_kfid, "external_userid": self.external_userid,
                "send_time": self.send_time, "origin": self.origin, "msgtype": self.msgtype,
                self.msgtype: {"content": self.content}}


@dataclass
class KfCorp:
    accounts: dict[str, str] = field(default_factory=dict)  # open_kfid -> name
    messages: list[KfMessage] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # sync token -> expiry
    last_in: dict[tuple[str, str], float] = field(default_factory=dict)  # (open_kfid, external_userid) -> time
    replies: dict[tuple[str, str], int] = field(default_factory=dict)  # replies since that message
    sent_msgids: set[str] = field(default_factory=set)


class KfState:
    def __init__(self):
        self.corps: dict[str, KfCorp] = {}
        self.seq = itertools.count(1)

    def corp(self, corpid: str) -> KfCorp:
        return self.corps.setdefault(corpid, KfCorp())

    def account_corp(self, corpid: str, open_kfid: Any) -> KfCorp:
        """The corp, provided ``open_kfid`` is one of its 客服账号 (else WeCom's 95000)."""
        corp = self.corp(corpid)
        if open_kfid not in corp.accounts:
            raise SimError(95000, "invalid open_kfid")
        return corp


def kf_state(sim: Simulator) -> KfState:
    return sim.state.area("kf", KfState)


def account_add(sim: Simulator, corpid: str, name: str = "客服") -> str:
    """Create a 客服账号 in the corp; returns its ``open_kfid``."""
    with sim.lock:
        open_kfid = f"wk{secrets.token_hex(8)}"
        kf_state(sim).corp(corpid).accounts[open_kfid] = name
    return open_kfid


def customer_says(sim: Simulator, corpid: str, open_kfid: str, external_userid: str, text: str) -> tuple[int, bytes]:
    """A WeChat user writes to the account: the message waits in WeCom and the corp gets the event callback."""
    now = time.time()
    with sim.lock:
        state = kf_state(sim)
        corp = state.account_corp(corpid, open_kfid)
        seq = next(state.seq)
        corp.messages.append(KfMessage(seq, f"kfmsg{seq:08d}{secrets.token_hex(4)}", open_kfid, external_userid,
                                       int(now), ORIGIN_CUSTOMER, "text", text))
        corp.last_in[(open_kfid, external_userid)] = now
        corp.replies[(open_kfid, external_userid)] = 0
        token = secrets.token_hex(12)
        corp.tokens[token] = now + TOKEN_SECONDS
    return _deliver_kf_event(sim, corpid, {"Token": token, "OpenKfId": open_kfid})


def kf_callback_url(sim: Simulator, corpid: str) -> str:
    """微信客服 has its own callback URL (set in its admin page): ``extra["kf_callback_url"]`` or Siyu's."""
    app = sim.state.apps.get(corpid)
    return (app.extra.get("kf_callback_url") if app else "") or f"/wx/work/{corpid}/kf/callback"


def _deliver_kf_event(sim: Simulator, corpid: str, fields: dict[str, Any]) -> tuple[int, bytes]:
    """Encrypt, sign and deliver the event outside ``sim.lock`` (Siyu calls sync_msg while handling it)."""
    with sim.lock:
        app = sim.state.apps.get(corpid)
        if app is None or app.kind != "work":
            raise SimError(40013, "invalid corpid")
        xml = event_xml(corpid, "kf_msg_or_event", fields)
        url = kf_callback_url(sim, corpid)
        duplicate = sim.faults.take("duplicate_notify", HOST, "/kf/callback") is not None
    body, query = crypto.safe_envelope(app.token, app.encoding_aes_key, corpid, xml)
    params = {name: query[name] for name in ("msg_signature", "timestamp", "nonce")}
    target = url + "?" + urlencode(params)
    answer = sim.deliver(target, body.encode(), {"Content-Type": "text/xml"})
    if duplicate:  # WeCom retries: a fresh envelope (new nonce) around the same event
        body, query = crypto.safe_envelope(app.token, app.encoding_aes_key, corpid, xml)
        params = {name: query[name] for name in ("msg_signature", "timestamp", "nonce")}
        sim.deliver(url + "?" + urlencode(params), body.encode(), {"Content-Type": "text/xml"})
    return answer


def kf_secrets_allowed(sim: Simulator, corpid: str) -> set[str]:
    """The names of the corp's secrets whose tokens may call the kf APIs."""
    with sim.lock:
        app = sim.state.apps.get(corpid)
        extra = app.extra if app is not None else {}
    has_kf = bool((extra.get("secrets") or {}).get("kf"))
    granted = extra.get("kf_api_apps")
    return {"kf", *(granted if granted is not None else ([] if has_kf else ["app"]))}


def _kf_corp_for(sim: Simulator, request: SimRequest):
    corp = _corp_for(sim, request)
    if token_secret(sim, request) not in kf_secrets_allowed(sim, corp.corpid):
        raise SimError(48002, "api forbidden: this secret's application may not call 微信客服 APIs")
    return corp


def sent_messages(sim: Simulator, corpid: str) -> list[dict[str, Any]]:
    with sim.lock:
        return [message.as_dict() for message in kf_state(sim).corp(corpid).messages if message.origin == ORIGIN_SENT]


@route("POST", HOST, "/cgi-bin/kf/sync_msg")
def sync_msg(sim: Simulator, request: SimRequest) -> SimResponse:
    corpid = _kf_corp_for(sim, request).corpid
    payload = _body(request)
    limit = payload.get("limit", SYNC_LIMIT_MAX)
    if not isinstance(limit, int) or not 1 <= limit <= SYNC_LIMIT_MAX:
        raise SimError(40058, "invalid limit")
    cursor = str(payload.get("cursor") or "0")
    if not cursor.isdigit():
        raise SimError(95007, "invalid cursor")
    with sim.lock:
        corp = kf_state(sim).corp(corpid)
        token = payload.get("token")
        if token and corp.tokens.get(str(token), 0) < time.time():
            raise SimError(95007, "invalid msg token")
        open_kfid = payload.get("open_kfid")
        after = int(cursor)
        pending = [message for message in corp.messages if message.seq > after
                   and (not open_kfid or message.open_kfid == open_kfid)]
        page = pending[:limit]
        next_cursor = str(page[-1].seq) if page else cursor
        return _ok(next_cursor=next_cursor, has_more=int(len(pending) > limit),
                   msg_list=[message.as_dict() for message in page])


@route("POST", HOST, "/cgi-bin/kf/send_msg")
def send_msg(sim: Simulator, request: SimRequest) -> SimResponse:
    corpid = _kf_corp_for(sim, request).corpid
    payload = _body(request)
    open_kfid, touser = payload.get("open_kfid"), payload.get("touser")
    text = (payload.get("text") or {}).get("content") if isinstance(payload.get("text"), dict) else None
    if payload.get("msgtype") != "text" or not isinstance(text, str) or not text:
        raise SimError(40008, "invalid message type")
    if len(text.encode()) > 2048:
        raise SimError(45002, "content size out of limit")
    now = time.time()
    with sim.lock:
        state = kf_state(sim)
        corp = state.account_corp(corpid, open_kfid)
        key = (open_kfid, touser)
        last = corp.last_in.get(key)
        if last is None or now - last > REPLY_WINDOW_SECONDS:
            raise SimError(95018, "send msg not allowed: no customer message in the last 48 hours")
        if corp.replies.get(key, 0) >= REPLIES_PER_MESSAGE:
            raise SimError(95018, "send msg not allowed: at most 5 messages per customer message")
        msgid = str(payload.get("msgid") or f"kfsend{next(state.seq):08d}")
        if msgid in corp.sent_msgids:
            raise SimError(95016, "duplicate msgid")  # WeCom refuses a msgid it has already sent
        corp.sent_msgids.add(msgid)
        corp.replies[key] = corp.replies.get(key, 0) + 1
        corp.messages.append(KfMessage(next(state.seq), msgid, open_kfid, str(touser), int(now), ORIGIN_SENT,
                                       "text", text))
    return _ok(msgid=msgid)
