"""Group chat in customer groups, as 会话内容存档 would archive it, delivered to Siyu's bridge.

Real group message content only comes out of WeCom's archive SDK (native, not HTTP); a brand runs a
small bridge next to it that posts the messages to Siyu. The simulator plays archive and bridge at
once: ``say`` records what a member says in a group and posts it, signed with the bridge key
(HMAC-SHA256 over "<timestamp>.<body>"), to the bridge URL registered with ``bridge_register``. The
``duplicate_notify`` fault (host ``qyapi.weixin.qq.com``, path ``/bridge``) posts a message twice, as a
bridge retrying after a lost answer would. Also reachable as ``/_sim/groupchat/...`` JSON endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimUser
from siyu.wechat_sim.work import HOST, SIM, work_state

DEFAULT_BRIDGE_PATH = "/api/v1/communities/messages"


@dataclass
class Bridge:
    url: str
    key_id: str
    secret: str


@dataclass
class GroupChatState:
    bridges: dict[str, Bridge] = field(default_factory=dict)  # corpid -> bridge
    archive: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # chat_id -> messages, in order
    counter: Any = field(default_factory=lambda: itertools.count(1))


def groupchat_state(sim: Simulator) -> GroupChatState:
    return sim.state.area("groupchat", GroupChatState)


def bridge_register(sim: Simulator, corpid: str, *, key_id: str, secret: str, url: str = DEFAULT_BRIDGE_PATH) -> None:
    with sim.lock:
        groupchat_state(sim).bridges[corpid] = Bridge(url, key_id, secret)


def _signed(bridge: Bridge, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = hmac.new(bridge.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Siyu-Bridge-Key": bridge.key_id, "X-Siyu-Timestamp": stamp,
            "X-Siyu-Signature": signature}


def say(sim: Simulator, corpid: str, chat_id: str, speaker: SimUser | str, content: str = "", *,
        staff: bool = False, msg_type: str = "text", reply_to: str = "", qr: bool = False) -> dict[str, Any]:
    """``speaker`` (a consumer's user key, or a staff userid with ``staff=True``) says something in the group.
    Returns the archived message with the bridge's HTTP status (0 when no bridge is registered)."""
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        chat = corp.groups.get(chat_id)
        if chat is None or chat.dismissed:
            raise SimError(40050, "chatid not found")
        if staff:
            sender = str(speaker)
        else:
            user = sim.state.user(speaker) if isinstance(speaker, str) else speaker
            sender = sim.state.external_userid(user, corpid)
        if sender not in chat.members and sender != chat.owner:
            raise SimError(40050, "not a member of this group")
        state = groupchat_state(sim)
        message = {"msg_id": f"sim-{corpid}-{next(state.counter)}", "chat_id": chat_id,
                   "sender": {"id": sender, "type": "staff" if staff else "external"}, "msg_type": msg_type,
                   "content": content, "sent_at": int(time.time())}
        if reply_to:
            message["reply_to"] = reply_to
        if qr:
            message["qr"] = True
        state.archive.setdefault(chat_id, []).append(message)
        bridge = state.bridges.get(corpid)
        twice = sim.faults.take("duplicate_notify", HOST, "/bridge") is not None
    status = 0
    if bridge is not None:
        body = json.dumps({"messages": [message]}, ensure_ascii=False).encode()
        status, _answer = sim.deliver(bridge.url, body, _signed(bridge, body))
        if twice:
            sim.deliver(bridge.url, body, _signed(bridge, body))
    return {**message, "bridge_status": status}


def _control(request: SimRequest, *required: str) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict) or any(not payload.get(name) for name in required):
        raise SimError(40097, f"required: {', '.join(required)}", status=400)
    return payload


@route("POST", SIM, "/groupchat/bridge")
def control_bridge(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "key_id", "secret")
    bridge_register(sim, payload["corpid"], key_id=payload["key_id"], secret=payload["secret"],
                    url=payload.get("url") or DEFAULT_BRIDGE_PATH)
    return SimResponse.json({"corpid": payload["corpid"]})


@route("POST", SIM, "/groupchat/say")
def control_say(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "chat_id", "speaker")
    return SimResponse.json(say(sim, payload["corpid"], payload["chat_id"], payload["speaker"],
                                str(payload.get("content") or ""), staff=bool(payload.get("staff")),
                                msg_type=str(payload.get("msg_type") or "text"),
                                reply_to=str(payload.get("reply_to") or ""), qr=payload.get("qr") is True))


@route("GET", SIM, "/groupchat/messages")
def control_messages(sim: Simulator, request: SimRequest) -> SimResponse:
    chat_id = request.arg("chat_id", "") or ""
    with sim.lock:
        return SimResponse.json({"messages": list(groupchat_state(sim).archive.get(chat_id, []))})
