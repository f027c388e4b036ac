"""企业微信 (qyapi.weixin.qq.com) as the simulator serves it: members, 「联系我」 contact ways, external
contacts and their staff relations, the corp tag library, customer groups, mass-send tasks that each
staff member confirms, moments tasks, and transfers of a resigned member's customers.

Consumers and staff act through plain functions (``add_contact``, ``delete_contact``, ``join_group``,
``staff_confirm_mass_send``, ``staff_resign`` …), also reachable as ``/_sim/work/...`` JSON endpoints for
separate processes. Each action that WeCom reports delivers the encrypted callback Siyu would receive.
API frequency (SPEC W6): each API allows ``limits["minute"]`` calls a minute and ``limits["hour"]`` an hour
per corp; beyond that the call answers 45009.
"""

from __future__ import annotations

import calendar
import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from siyu.wechat_sim import crypto
from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp, SimUser
from siyu.wechat_sim.tokens import require_token

HOST = "qyapi.weixin.qq.com"
SIM = "_sim"
SHANGHAI = timezone(timedelta(hours=8))
WELCOME_CODE_SECONDS = 20  # WeCom: a WelcomeCode is usable for 20 seconds, once
MASS_SEND_MAX_CUSTOMERS = 10000


@dataclass
class Staff:
    userid: str
    name: str
    status: int = 1  # 1 active, 5 left the corp


@dataclass
class ContactWay:
    config_id: str
    type: int  # 1 single, 2 multiple
    scene: int  # 1 mini-program, 2 QR code
    users: list[str]
    state: str = ""
    remark: str = ""
    skip_verify: bool = True
    qr_code: str = ""
    turn: int = 0  # round robin over users


@dataclass
class Relation:
    userid: str
    external_userid: str
    createtime: int
    state: str = ""
    remark: str = ""
    tags: set[str] = field(default_factory=set)
    add_way: int = 1
    active: bool = True


@dataclass
class CorpTag:
    id: str
    name: str
    group_id: str
    order: int = 0
    create_time: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    order: int = 0
    create_time: int = 0


@dataclass
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # userid / external_userid -> member
    status: int = 0
    dismissed: bool = False


@dataclass
class MsgTemplate:
    msgid: str
    chat_type: str
    text: str
    create_time: int
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)  # staff userid -> {status, send_time}
    targets: dict[str, str] = field(default_factory=dict)  # external_userid -> staff userid
    results: dict[str, dict[str, int]] = field(default_factory=dict)  # external_userid -> {status, send_time}


@dataclass
class Transfer:
    handover: str
    takeover: str
    external_userid: str
    status: int = 2  # 1 done, 2 waiting, 3 refused by the customer, 4 takeover at its limit
    takeover_time: int = 0


@dataclass
class Corp:
    corpid: str
    staff: dict[str, Staff] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    relations: dict[tuple[str, str], Relation] = field(default_factory=dict)  # (userid, external_userid)
    customers: dict[str, str] = field(default_factory=dict)  # external_userid -> SimUser key
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    tags: dict[str, CorpTag] = field(default_factory=dict)
    groups: dict[str, GroupChat] = field(default_factory=dict)
    templates: dict[str, MsgTemplate] = field(default_factory=dict)
    # mass messages received: (external_userid, "YYYY-MM") -> count, and (chat_id, "YYYY-MM-DD") -> count
    received: dict[tuple[str, str], int] = field(default_factory=dict)
    moments: dict[str, dict[str, Any]] = field(default_factory=dict)  # jobid -> task
    transfers: list[Transfer] = field(default_factory=list)
    welcome_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcomes: list[dict[str, Any]] = field(default_factory=list)  # welcome messages sent, for tests
    limits: dict[str, int] = field(default_factory=lambda: {"minute": 10000, "hour": 150000})
    calls: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (api, window, bucket) -> count


class WorkState:
    def __init__(self):
        self.corps: dict[str, Corp] = {}
        self.counter = itertools.count(1)

    def corp(self, corpid: str) -> Corp:
        if corpid not in self.corps:
            self.corps[corpid] = Corp(corpid)
        return self.corps[corpid]


def work_state(sim: Simulator) -> WorkState:
    return sim.state.area("work", WorkState)


def _new_id(sim: Simulator, prefix: str) -> str:
    return f"{prefix}{next(work_state(sim).counter):06d}{secrets.token_hex(6)}"


def _month(at: float) -> str:
    return datetime.fromtimestamp(at, SHANGHAI).strftime("%Y-%m")


def monthly_limit(at: float) -> int:
    """WeCom: each customer receives at most as many mass messages a month as the month has days."""
    moment = datetime.fromtimestamp(at, SHANGHAI)
    return calendar.monthrange(moment.year, moment.month)[1]


# --- API plumbing -------------------------------------------------------------------------------------
def _corp_for(sim: Simulator, request: SimRequest) -> Corp:
    """The calling corp, after the access token and the per-API frequency limits are checked."""
    app = require_token(sim, request, kinds={"work"})
    now = time.time()
    with sim.lock:
        corp = work_state(sim).corp(app.appid)
        for window, seconds in (("minute", 60), ("hour", 3600)):
            key = (request.path, window, int(now // seconds))
            count = corp.calls.get(key, 0) + 1
            if count > corp.limits[window]:
                raise SimError(45009, f"api freq out of limit ({window})")
            corp.calls[key] = count
    return corp


def _ok(**payload: Any) -> SimResponse:
    return SimResponse.json({"errcode": 0, "errmsg": "ok", **payload})


def _body(request: SimRequest) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict):
        raise SimError(47001, "data format error")
    return payload


def _staff(corp: Corp, userid: Any, *, active: bool = True) -> Staff:
    staff = corp.staff.get(userid) if isinstance(userid, str) else None
    if staff is None:
        raise SimError(60111, f"invalid userid {userid!r}")
    if active and staff.status != 1:
        raise SimError(60111, f"userid {userid!r} has left the corp")
    return staff


def _relation(corp: Corp, userid: str, external_userid: Any) -> Relation:
    relation = corp.relations.get((userid, external_userid)) if isinstance(external_userid, str) else None
    if relation is None or not relation.active:
        raise SimError(84061, "not external contact")
    return relation


# --- members ------------------------------------------------------------------------------------------
@route("GET", HOST, "/cgi-bin/user/list")
def user_list(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        users = [{"userid": staff.userid, "name": staff.name, "department": [1], "status": staff.status}
                 for staff in corp.staff.values() if staff.status == 1]
    return _ok(userlist=users)


@route("GET", HOST, "/cgi-bin/user/simplelist")
def user_simplelist(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        users = [{"userid": staff.userid, "name": staff.name, "department": [1]}
                 for staff in corp.staff.values() if staff.status == 1]
    return _ok(userlist=users)


@route("GET", HOST, "/cgi-bin/user/get")
def user_get(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        staff = _staff(corp, request.arg("userid"), active=False)
        return _ok(userid=staff.userid, name=staff.name, department=[1], status=staff.status)


@route("GET", HOST, "/cgi-bin/externalcontact/get_follow_user_list")
def follow_user_list(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        return _ok(follow_user=[staff.userid for staff in corp.staff.values() if staff.status == 1])


# --- external contacts --------------------------------------------------------------------------------
@route("GET", HOST, "/cgi-bin/externalcontact/list")
def contact_list(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        staff = _staff(corp, request.arg("userid"), active=False)
        ids = [relation.external_userid for relation in corp.relations.values()
               if relation.userid == staff.userid and relation.active]
    if not ids:
        raise SimError(84061, "not external contact")
    return _ok(external_userid=ids)


def _tag_view(corp: Corp, tag_id: str) -> dict[str, Any]:
    tag = corp.tags[tag_id]
    return {"group_name": corp.tag_groups[tag.group_id].group_name, "tag_name": tag.name, "tag_id": tag.id,
            "type": 1}


@route("GET", HOST, "/cgi-bin/externalcontact/get")
def contact_get(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    external_userid = request.arg("external_userid") or ""
    with sim.lock:
        key = corp.customers.get(external_userid)
        if key is None:
            raise SimError(40096, "invalid external userid")
        user = sim.state.users[key]
        follow = [{"userid": relation.userid, "remark": relation.remark, "description": "",
                   "createtime": relation.createtime, "state": relation.state, "add_way": relation.add_way,
                   "oper_userid": relation.userid,
                   "tags": [_tag_view(corp, tag_id) for tag_id in sorted(relation.tags) if tag_id in corp.tags]}
                  for relation in corp.relations.values()
                  if relation.external_userid == external_userid and relation.active]
        if not follow:
            raise SimError(84061, "not external contact")
        contact = {"external_userid": external_userid, "name": user.nickname or user.key, "type": 1,
                   "avatar": "", "gender": 0}
        if user.extra.get("has_unionid", True):
            contact["unionid"] = sim.state.unionid(user, corp.corpid)
    return _ok(external_contact=contact, follow_user=follow)


@route("POST", HOST, "/cgi-bin/externalcontact/remark")
def contact_remark(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    with sim.lock:
        relation = _relation(corp, str(payload.get("userid", "")), payload.get("external_userid"))
        relation.remark = str(payload.get("remark", ""))[:20]
    return _ok()


# --- 「联系我」 ------------------------------------------------------------------------------------------
def _way_users(corp: Corp, payload: dict[str, Any], way_type: int) -> list[str]:
    users = payload.get("user") or []
    if not isinstance(users, list) or not users:
        raise SimError(40097, "user is required")
    for userid in users:
        _staff(corp, userid)
    if way_type == 1 and len(users) != 1:
        raise SimError(40097, "a single contact way takes exactly one user")
    if len(users) > 100:
        raise SimError(40097, "at most 100 users")
    return list(users)


def _check_state(value: Any) -> str:
    state = "" if value is None else value
    if not isinstance(state, str) or len(state) > 30:
        raise SimError(40097, "state must be a string of at most 30 characters")
    return state


@route("POST", HOST, "/cgi-bin/externalcontact/add_contact_way")
def contact_way_add(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    way_type, scene = payload.get("type"), payload.get("scene")
    if way_type not in (1, 2) or scene not in (1, 2):
        raise SimError(40097, "invalid type or scene")
    with sim.lock:
        users = _way_users(corp, payload, way_type)
        config_id = secrets.token_hex(16)
        qr_code = f"https://wework.qpic.cn/wwpic/{config_id}/0" if scene == 2 else ""
        corp.contact_ways[config_id] = ContactWay(
            config_id, way_type, scene, users, _check_state(payload.get("state")),
            str(payload.get("remark") or "")[:30], bool(payload.get("skip_verify", True)), qr_code)
    return _ok(config_id=config_id, qr_code=qr_code) if qr_code else _ok(config_id=config_id)


def _way(corp: Corp, config_id: Any) -> ContactWay:
    way = corp.contact_ways.get(config_id) if isinstance(config_id, str) else None
    if way is None:
        raise SimError(41044, "invalid config_id")
    return way


@route("POST", HOST, "/cgi-bin/externalcontact/get_contact_way")
def contact_way_get(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        way = _way(corp, _body(request).get("config_id"))
        return _ok(contact_way={"config_id": way.config_id, "type": way.type, "scene": way.scene,
                                "remark": way.remark, "skip_verify": way.skip_verify, "state": way.state,
                                "qr_code": way.qr_code, "user": list(way.users), "party": []})


@route("POST", HOST, "/cgi-bin/externalcontact/update_contact_way")
def contact_way_update(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    with sim.lock:
        way = _way(corp, payload.get("config_id"))
        if "user" in payload:
            way.users = _way_users(corp, payload, way.type)
        if "state" in payload:
            way.state = _check_state(payload["state"])
        if "remark" in payload:
            way.remark = str(payload["remark"] or "")[:30]
        if "skip_verify" in payload:
            way.skip_verify = bool(payload["skip_verify"])
    return _ok()


@route("POST", HOST, "/cgi-bin/externalcontact/del_contact_way")
def contact_way_delete(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        way = _way(corp, _body(request).get("config_id"))
        del corp.contact_ways[way.config_id]
    return _ok()


@route("POST", HOST, "/cgi-bin/externalcontact/send_welcome_msg")
def welcome_send(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    code = payload.get("welcome_code")
    text = (payload.get("text") or {}).get("content", "") if isinstance(payload.get("text"), dict) else ""
    if not text and not payload.get("attachments"):
        raise SimError(41033, "text or attachments required")
    with sim.lock:
        issued = corp.welcome_codes.get(code) if isinstance(code, str) else None
        if issued is None:
            raise SimError(40097, "invalid welcome_code")
        if issued["used"] or issued["expires_at"] < time.time():
            raise SimError(41051, "welcome_code expired or already used")
        issued["used"] = True
        corp.welcomes.append({"userid": issued["userid"], "external_userid": issued["external_userid"],
                              "text": text, "sent_at": time.time()})
    return _ok()


# --- corp tags -------------------------------------------------------------------------------------------
def _tag_group_view(corp: Corp, group: TagGroup, only: set[str] | None = None) -> dict[str, Any]:
    tags = [{"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order, "deleted": False}
            for tag in corp.tags.values() if tag.group_id == group.group_id and (only is None or tag.id in only)]
    return {"group_id": group.group_id, "group_name": group.group_name, "create_time": group.create_time,
            "order": group.order, "deleted": False, "tag": tags}


@route("POST", HOST, "/cgi-bin/externalcontact/get_corp_tag_list")
def corp_tag_list(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    only = set(payload["tag_id"]) if isinstance(payload.get("tag_id"), list) and payload["tag_id"] else None
    groups = set(payload["group_id"]) if isinstance(payload.get("group_id"), list) and payload["group_id"] else None
    with sim.lock:
        views = [_tag_group_view(corp, group, only) for group in corp.tag_groups.values()
                 if groups is None or group.group_id in groups]
    return _ok(tag_group=[view for view in views if view["tag"] or only is None])


def corp_tag_add(sim: Simulator, corpid: str, *, group_name: str, names: list[str], group_id: str = "",
                 notify: bool = False) -> dict[str, Any]:
    """Add tags (and their group when new) to the corp library; ``notify`` delivers change_external_tag
    callbacks as WeCom does when an administrator edits the library in the admin console."""
    now = int(time.time())
    created: list[CorpTag] = []
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        group = corp.tag_groups.get(group_id) if group_id else next(
            (item for item in corp.tag_groups.values() if item.group_name == group_name), None)
        if group_id and group is None:
            raise SimError(40068, "invalid tag group id")
        if group is None:
            if not group_name or len(group_name) > 30:
                raise SimError(40071, "invalid tag group name")
            group = TagGroup(_new_id(sim, "et"), group_name, 0, now)
            corp.tag_groups[group.group_id] = group
        existing = {tag.name for tag in corp.tags.values() if tag.group_id == group.group_id}
        for name in names:
            if not isinstance(name, str) or not name or len(name) > 30:
                raise SimError(40071, "invalid tag name")
            if name in existing:
                raise SimError(40071, f"tag name exists: {name}")
        for name in names:
            tag = CorpTag(_new_id(sim, "et"), name, group.group_id, 0, now)
            corp.tags[tag.id] = tag
            created.append(tag)
        view = _tag_group_view(corp, group, {tag.id for tag in created})
    if notify:
        for tag in created:
            _deliver_event(sim, corpid, "change_external_tag", {"Id": tag.id, "TagType": "tag", "ChangeType": "create"})
    return view


@route("POST", HOST, "/cgi-bin/externalcontact/add_corp_tag")
def corp_tag_add_api(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    tags = payload.get("tag") or []
    if not isinstance(tags, list) or not tags or not all(isinstance(item, dict) for item in tags):
        raise SimError(40097, "tag is required")
    view = corp_tag_add(sim, corp.corpid, group_name=str(payload.get("group_name") or ""),
                        group_id=str(payload.get("group_id") or ""), names=[item.get("name") for item in tags])
    return _ok(tag_group=view)


@route("POST", HOST, "/cgi-bin/externalcontact/edit_corp_tag")
def corp_tag_edit_api(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    corp_tag_edit(sim, corp.corpid, tag_id=str(payload.get("id", "")), name=payload.get("name"))
    return _ok()


def corp_tag_edit(sim: Simulator, corpid: str, *, tag_id: str, name: Any, notify: bool = False) -> None:
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        if tag_id in corp.tags:
            target: Any = corp.tags[tag_id]
            if not isinstance(name, str) or not name or len(name) > 30:
                raise SimError(40071, "invalid tag name")
            target.name = name
            kind = "tag"
        elif tag_id in corp.tag_groups:
            if not isinstance(name, str) or not name or len(name) > 30:
                raise SimError(40071, "invalid tag group name")
            corp.tag_groups[tag_id].group_name = name
            kind = "tag_group"
        else:
            raise SimError(40068, "invalid tagid")
    if notify:
        _deliver_event(sim, corpid, "change_external_tag", {"Id": tag_id, "TagType": kind, "ChangeType": "update"})


def corp_tag_delete(sim: Simulator, corpid: str, *, tag_ids: list[str], notify: bool = False) -> None:
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        for tag_id in tag_ids:
            if tag_id not in corp.tags:
                raise SimError(40068, "invalid tagid")
        for tag_id in tag_ids:
            del corp.tags[tag_id]
            for relation in corp.relations.values():
                relation.tags.discard(tag_id)
    if notify:
        for tag_id in tag_ids:
            _deliver_event(sim, corpid, "change_external_tag", {"Id": tag_id, "TagType": "tag", "ChangeType": "delete"})


@route("POST", HOST, "/cgi-bin/externalcontact/del_corp_tag")
def corp_tag_delete_api(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    tag_ids = _body(request).get("tag_id") or []
    if not isinstance(tag_ids, list) or not tag_ids:
        raise SimError(40097, "tag_id is required")
    corp_tag_delete(sim, corp.corpid, tag_ids=tag_ids)
    return _ok()


@route("POST", HOST, "/cgi-bin/externalcontact/mark_tag")
def mark_tag(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    add, remove = payload.get("add_tag") or [], payload.get("remove_tag") or []
    if not isinstance(add, list) or not isinstance(remove, list) or not (add or remove):
        raise SimError(40097, "add_tag or remove_tag is required")
    with sim.lock:
        relation = _relation(corp, str(payload.get("userid", "")), payload.get("external_userid"))
        for tag_id in [*add, *remove]:
            if tag_id not in corp.tags:
                raise SimError(40068, "invalid tagid")
        relation.tags |= set(add)
        relation.tags -= set(remove)
    return _ok()


# --- customer groups -------------------------------------------------------------------------------------
@route("POST", HOST, "/cgi-bin/externalcontact/groupchat/list")
def group_list(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    limit = payload.get("limit", 100)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise SimError(40058, "limit must be 1..1000")
    owners = ((payload.get("owner_filter") or {}).get("userid_list") or None)
    with sim.lock:
        chats = sorted((chat for chat in corp.groups.values() if not chat.dismissed
                        and (owners is None or chat.owner in owners)), key=lambda chat: chat.chat_id)
    start = int(payload.get("cursor") or 0) if str(payload.get("cursor") or "0").isdigit() else 0
    page = chats[start:start + limit]
    cursor = str(start + limit) if start + limit < len(chats) else ""
    return _ok(group_chat_list=[{"chat_id": chat.chat_id, "status": chat.status} for chat in page],
               next_cursor=cursor)


@route("POST", HOST, "/cgi-bin/externalcontact/groupchat/get")
def group_get(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    chat_id = _body(request).get("chat_id")
    with sim.lock:
        chat = corp.groups.get(chat_id) if isinstance(chat_id, str) else None
        if chat is None or chat.dismissed:
            raise SimError(40050, "chatid not found")
        return _ok(group_chat={"chat_id": chat.chat_id, "name": chat.name, "owner": chat.owner,
                               "create_time": chat.create_time, "notice": "",
                               "member_list": [dict(member) for member in chat.members.values()],
                               "admin_list": []})


# --- mass send ---------------------------------------------------------------------------------------------
@route("POST", HOST, "/cgi-bin/externalcontact/add_msg_template")
def msg_template_add(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    chat_type = payload.get("chat_type", "single")
    text = (payload.get("text") or {}).get("content", "") if isinstance(payload.get("text"), dict) else ""
    if chat_type not in ("single", "group"):
        raise SimError(40097, "chat_type must be single or group")
    if not text:
        raise SimError(41033, "text is required")
    if chat_type == "group":
        return _group_template_add(sim, corp, payload, text)
    targets_in = payload.get("external_userid") or []
    if not isinstance(targets_in, list) or len(targets_in) > MASS_SEND_MAX_CUSTOMERS:
        raise SimError(40097, f"external_userid must be a list of at most {MASS_SEND_MAX_CUSTOMERS}")
    sender = payload.get("sender")
    with sim.lock:
        if sender is not None:
            _staff(corp, sender)
        targets: dict[str, str] = {}
        fail: list[str] = []
        for external_userid in targets_in:
            staff = sorted(relation.userid for relation in corp.relations.values()
                           if relation.external_userid == external_userid and relation.active
                           and corp.staff[relation.userid].status == 1 and (sender is None or relation.userid == sender))
            if staff:
                targets[external_userid] = staff[0]
            else:
                fail.append(external_userid)
        if not targets:
            raise SimError(41048, "no customer to send to")
        msgid = _new_id(sim, "msg")
        template = MsgTemplate(msgid, chat_type, text, int(time.time()))
        template.targets = targets
        template.tasks = {userid: {"status": 0, "send_time": 0} for userid in sorted(set(targets.values()))}
        template.results = {external_userid: {"status": 0, "send_time": 0} for external_userid in targets}
        corp.templates[msgid] = template
    return _ok(fail_list=fail, msgid=msgid)


def _group_template_add(sim: Simulator, corp: Corp, payload: dict, text: str) -> SimResponse:
    """A 群发 to customer groups: ``sender`` (the groups' owner) is required; ``chat_id_list`` narrows it to
    some of the sender's groups. The owner confirms it in their client like a single-chat task."""
    sender, chat_ids = payload.get("sender"), payload.get("chat_id_list")
    if not isinstance(sender, str) or not sender:
        raise SimError(40097, "sender is required when chat_type is group")
    if chat_ids is not None and (not isinstance(chat_ids, list) or not all(isinstance(c, str) for c in chat_ids)):
        raise SimError(40097, "chat_id_list must be a list of chat ids")
    with sim.lock:
        _staff(corp, sender)
        chats = sorted(chat.chat_id for chat in corp.groups.values()
                       if chat.owner == sender and not chat.dismissed and (chat_ids is None or chat.chat_id in chat_ids))
        if not chats:
            raise SimError(41048, "no customer group to send to")
        msgid = _new_id(sim, "msg")
        template = MsgTemplate(msgid, "group", text, int(time.time()))
        template.targets = dict.fromkeys(chats, sender)
        template.tasks = {sender: {"status": 0, "send_time": 0}}
        template.results = {chat_id: {"status": 0, "send_time": 0} for chat_id in chats}
        corp.templates[msgid] = template
    return _ok(fail_list=[], msgid=msgid)


def _template(corp: Corp, msgid: Any) -> MsgTemplate:
    template = corp.templates.get(msgid) if isinstance(msgid, str) else None
    if template is None:
        raise SimError(40097, "invalid msgid")
    return template


@route("POST", HOST, "/cgi-bin/externalcontact/get_groupmsg_task")
def groupmsg_task(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        template = _template(corp, _body(request).get("msgid"))
        tasks = [{"userid": userid, **task} for userid, task in sorted(template.tasks.items())]
    return _ok(next_cursor="", task_list=tasks)


@route("POST", HOST, "/cgi-bin/externalcontact/get_groupmsg_send_result")
def groupmsg_send_result(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    with sim.lock:
        template = _template(corp, payload.get("msgid"))
        userid = payload.get("userid")
        if userid not in template.tasks:
            raise SimError(60111, "invalid userid")
        group = template.chat_type == "group"
        rows = [{"external_userid": "" if group else target, "chat_id": target if group else "", "userid": staff,
                 **template.results[target]}
                for target, staff in sorted(template.targets.items()) if staff == userid]
    return _ok(next_cursor="", send_list=rows)


def staff_confirm_mass_send(sim: Simulator, corpid: str, msgid: str, userid: str) -> dict[str, int]:
    """A staff member confirms a mass-send task in their WeCom client: their customers receive it, except
    those no longer related (status 2) and those at this month's limit (status 3)."""
    now = time.time()
    month, limit = _month(now), monthly_limit(now)
    counts = {1: 0, 2: 0, 3: 0}
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        template = _template(corp, msgid)
        task = template.tasks.get(userid)
        if task is None:
            raise SimError(60111, "this member has no task in this mass send")
        if task["status"] == 2:
            return counts
        task.update(status=2, send_time=int(now))
        if template.chat_type == "group":
            return _group_template_confirm(corp, template, now, counts)
        for external_userid, staff in template.targets.items():
            if staff != userid:
                continue
            relation = corp.relations.get((userid, external_userid))
            if relation is None or not relation.active:
                status = 2
            elif corp.received.get((external_userid, month), 0) >= limit:
                status = 3
            else:
                status = 1
                corp.received[(external_userid, month)] = corp.received.get((external_userid, month), 0) + 1
            template.results[external_userid] = {"status": status, "send_time": int(now) if status == 1 else 0}
            counts[status] += 1
    return counts


def _group_template_confirm(corp: Corp, template: MsgTemplate, now: float, counts: dict[int, int]) -> dict[int, int]:
    """Each customer group receives at most one mass message a day (Asia/Shanghai) from the corp; a group
    dismissed since the task was made is skipped (status 2), one already sent to today gets status 3."""
    day = datetime.fromtimestamp(now, SHANGHAI).strftime("%Y-%m-%d")
    for chat_id in template.targets:
        chat = corp.groups.get(chat_id)
        if chat is None or chat.dismissed:
            status = 2
        elif corp.received.get((chat_id, day), 0) >= 1:
            status = 3
        else:
            status = 1
            corp.received[(chat_id, day)] = 1
        template.results[chat_id] = {"status": status, "send_time": int(now) if status == 1 else 0}
        counts[status] += 1
    return counts


# --- moments ----------------------------------------------------------------------------------------------
@route("POST", HOST, "/cgi-bin/externalcontact/add_moment_task")
def moment_task_add(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    text = (payload.get("text") or {}).get("content", "") if isinstance(payload.get("text"), dict) else ""
    if not text and not payload.get("attachments"):
        raise SimError(41033, "text or attachments required")
    senders = (((payload.get("visible_range") or {}).get("sender_list") or {}).get("user_list") or [])
    with sim.lock:
        if not senders:
            senders = [staff.userid for staff in corp.staff.values() if staff.status == 1]
        invalid = [userid for userid in senders if userid not in corp.staff or corp.staff[userid].status != 1]
        jobid = _new_id(sim, "job")
        corp.moments[jobid] = {"moment_id": _new_id(sim, "mom"), "text": text, "checks": 0,
                               "senders": [userid for userid in senders if userid not in invalid], "invalid": invalid}
    return _ok(jobid=jobid)


@route("GET", HOST, "/cgi-bin/externalcontact/get_moment_task_result")
def moment_task_result(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    with sim.lock:
        job = corp.moments.get(request.arg("jobid") or "")
        if job is None:
            raise SimError(40097, "invalid jobid")
        job["checks"] += 1
        if job["checks"] == 1:  # like WeCom, the job is still running when first asked
            return _ok(status=2, type="add_moment_task", result={})
        return _ok(status=3, type="add_moment_task",
                   result={"errcode": 0, "errmsg": "ok", "moment_id": job["moment_id"],
                           "invalid_sender_list": {"user_list": job["invalid"], "department_list": []},
                           "invalid_external_contact_list": {"tag_list": []}})


# --- transfer of a resigned member's customers -----------------------------------------------------------------
@route("POST", HOST, "/cgi-bin/externalcontact/resigned/transfer_customer")
def resigned_transfer(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    ids = payload.get("external_userid") or []
    if not isinstance(ids, list) or not ids or len(ids) > 100:
        raise SimError(40097, "external_userid: 1..100 ids")
    with sim.lock:
        handover = _staff(corp, payload.get("handover_userid"), active=False)
        if handover.status == 1:
            raise SimError(40098, "handover member has not resigned")
        takeover = _staff(corp, payload.get("takeover_userid"))
        answers = []
        for external_userid in ids:
            relation = corp.relations.get((handover.userid, external_userid))
            if relation is None or not relation.active:
                answers.append({"external_userid": external_userid, "errcode": 84061})
                continue
            if any(item.external_userid == external_userid and item.handover == handover.userid and item.status == 2
                   for item in corp.transfers):
                answers.append({"external_userid": external_userid, "errcode": 40129})
                continue
            corp.transfers.append(Transfer(handover.userid, takeover.userid, external_userid))
            answers.append({"external_userid": external_userid, "errcode": 0})
    return _ok(customer=answers)


@route("POST", HOST, "/cgi-bin/externalcontact/resigned/transfer_result")
def resigned_transfer_result(sim: Simulator, request: SimRequest) -> SimResponse:
    corp = _corp_for(sim, request)
    payload = _body(request)
    with sim.lock:
        rows = [{"external_userid": item.external_userid, "status": item.status, "takeover_time": item.takeover_time}
                for item in corp.transfers
                if item.handover == payload.get("handover_userid") and item.takeover == payload.get("takeover_userid")]
    return _ok(customer=rows, next_cursor="")


def transfers_complete(sim: Simulator, corpid: str, *, refuse: set[str] | frozenset[str] = frozenset()) -> int:
    """WeCom completes waiting transfers after 24 hours: the takeover member now has the customer; a
    customer in ``refuse`` refused and WeCom reports transfer_fail. Returns how many finished."""
    finished: list[Transfer] = []
    now = int(time.time())
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        for item in corp.transfers:
            if item.status != 2:
                continue
            if item.external_userid in refuse:
                item.status = 3
            else:
                item.status, item.takeover_time = 1, now
                old = corp.relations[(item.handover, item.external_userid)]
                old.active = False
                corp.relations[(item.takeover, item.external_userid)] = Relation(
                    item.takeover, item.external_userid, now, old.state, old.remark, set(old.tags), add_way=201)
            finished.append(item)
    for item in finished:
        if item.status == 3:
            _deliver_event(sim, corpid, "change_external_contact", {
                "ChangeType": "transfer_fail", "FailReason": "customer_refused", "UserID": item.takeover,
                "ExternalUserID": item.external_userid})
    return len(finished)


# --- callbacks to Siyu -------------------------------------------------------------------------------------------
def _xml(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        if isinstance(value, list):
            inner = "".join(f"<Item>{escape(str(item))}</Item>" for item in value)
            parts.append(f"<{name}>{inner}</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def callback_url(app: SimApp) -> str:
    return app.callback_url or f"/wx/work/{app.appid}/callback"


def event_xml(corpid: str, event: str, fields: dict[str, Any], *, at: int | None = None) -> str:
    return _xml({"ToUserName": corpid, "FromUserName": "sys", "CreateTime": at or int(time.time()),
                 "MsgType": "event", "Event": event, **fields})


def _deliver_event(sim: Simulator, corpid: str, event: str, fields: dict[str, Any]) -> tuple[int, bytes]:
    """Encrypt and sign one event callback and deliver it to Siyu (never while holding ``sim.lock``:
    Siyu may call back into the simulator while handling it)."""
    with sim.lock:
        app = sim.state.apps.get(corpid)
        if app is None or app.kind != "work":
            raise SimError(40013, "invalid corpid")
        xml = event_xml(corpid, event, fields)
        delayed = sim.faults.take("delay_callback", HOST, "/callback")
    if delayed is not None:
        time.sleep(float(delayed.params.get("seconds", 0.2)))
    body, query = crypto.safe_envelope(app.token, app.encoding_aes_key, corpid, xml)
    params = {name: query[name] for name in ("msg_signature", "timestamp", "nonce")}
    url = callback_url(app) + "?" + urlencode(params)
    answer = sim.deliver(url, body.encode(), {"Content-Type": "text/xml"})
    if sim.faults.take("duplicate_notify", HOST, "/callback") is not None:
        sim.deliver(url, body.encode(), {"Content-Type": "text/xml"})  # WeChat retries with the same nonce
    return answer


# --- what people do: staff, consumers, administrators ---------------------------------------------------------------
def corp_register(sim: Simulator, corpid: str, *, secret: str, token: str, encoding_aes_key: str,
                  callback_url: str = "", staff: dict[str, str] | None = None) -> SimApp:
    """Register a WeCom corp (one secret serves contacts and the app here) with its members."""
    with sim.lock:
        app = sim.state.app_register(SimApp("work", corpid, secret, token, encoding_aes_key, callback_url))
        corp = work_state(sim).corp(corpid)
        for userid, name in (staff or {}).items():
            corp.staff[userid] = Staff(userid, name)
    return app


def staff_add(sim: Simulator, corpid: str, userid: str, name: str) -> Staff:
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        corp.staff[userid] = Staff(userid, name)
        return corp.staff[userid]


def _way_for(corp: Corp, config_id_or_state: str) -> ContactWay:
    way = corp.contact_ways.get(config_id_or_state) or next(
        (item for item in corp.contact_ways.values() if item.state and item.state == config_id_or_state), None)
    if way is None:
        raise SimError(41044, f"no contact way {config_id_or_state!r}")
    return way


def add_contact(sim: Simulator, user: SimUser | str, corpid: str, config_id_or_state: str, *,
                half: bool = False) -> dict[str, Any]:
    """A consumer scans a 「联系我」 code: WeCom picks the next member of its rotation, the relation starts,
    and Siyu receives add_external_contact (or add_half_external_contact while verification is pending)
    with the code's State and a WelcomeCode."""
    user = sim.state.user(user) if isinstance(user, str) else user
    now = int(time.time())
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        way = _way_for(corp, config_id_or_state)
        candidates = [userid for userid in way.users if userid in corp.staff and corp.staff[userid].status == 1]
        if not candidates:
            raise SimError(60111, "no active member on this contact way")
        userid = candidates[way.turn % len(candidates)]
        way.turn += 1
        external_userid = sim.state.external_userid(user, corpid)
        corp.customers[external_userid] = user.key
        relation = corp.relations.get((userid, external_userid))
        if relation is None or not relation.active:
            corp.relations[(userid, external_userid)] = Relation(userid, external_userid, now, way.state)
        welcome_code = secrets.token_urlsafe(24)
        corp.welcome_codes[welcome_code] = {"userid": userid, "external_userid": external_userid, "used": False,
                                            "expires_at": time.time() + WELCOME_CODE_SECONDS}
    change = "add_half_external_contact" if half else "add_external_contact"
    status, _answer = _deliver_event(sim, corpid, "change_external_contact", {
        "ChangeType": change, "UserID": userid, "ExternalUserID": external_userid, "State": way.state,
        "WelcomeCode": welcome_code})
    return {"userid": userid, "external_userid": external_userid, "welcome_code": welcome_code, "status": status}


def delete_contact(sim: Simulator, user: SimUser | str, corpid: str, userid: str, *, by: str = "customer") -> int:
    """End a relation: ``by="customer"`` (the customer deleted the member: del_follow_user) or
    ``by="staff"`` (the member deleted the customer: del_external_contact)."""
    user = sim.state.user(user) if isinstance(user, str) else user
    external_userid = sim.state.external_userid(user, corpid)
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        _relation(corp, userid, external_userid).active = False
    change = "del_follow_user" if by == "customer" else "del_external_contact"
    status, _answer = _deliver_event(sim, corpid, "change_external_contact", {
        "ChangeType": change, "UserID": userid, "ExternalUserID": external_userid})
    return status


def staff_tag_customer(sim: Simulator, corpid: str, userid: str, user: SimUser | str, *,
                       add: list[str] = (), remove: list[str] = ()) -> int:
    """A member edits a customer's tags in their WeCom client: WeCom reports edit_external_contact."""
    user = sim.state.user(user) if isinstance(user, str) else user
    external_userid = sim.state.external_userid(user, corpid)
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        relation = _relation(corp, userid, external_userid)
        for tag_id in [*add, *remove]:
            if tag_id not in corp.tags:
                raise SimError(40068, "invalid tagid")
        relation.tags |= set(add)
        relation.tags -= set(remove)
    status, _answer = _deliver_event(sim, corpid, "change_external_contact", {
        "ChangeType": "edit_external_contact", "UserID": userid, "ExternalUserID": external_userid})
    return status


def group_create(sim: Simulator, corpid: str, owner: str, name: str) -> str:
    now = int(time.time())
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        _staff(corp, owner)
        chat_id = _new_id(sim, "wr")
        corp.groups[chat_id] = GroupChat(chat_id, name, owner, now, {
            owner: {"userid": owner, "type": 1, "join_time": now, "join_scene": 1}})
    _deliver_event(sim, corpid, "change_external_chat", {"ChatId": chat_id, "ChangeType": "create"})
    return chat_id


def join_group(sim: Simulator, user: SimUser | str, corpid: str, chat_id: str, *, scene: int = 3) -> int:
    """A consumer joins a customer group (scene 3: by scanning the group QR code)."""
    user = sim.state.user(user) if isinstance(user, str) else user
    external_userid = sim.state.external_userid(user, corpid)
    now = int(time.time())
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        chat = corp.groups.get(chat_id)
        if chat is None or chat.dismissed:
            raise SimError(40050, "chatid not found")
        corp.customers[external_userid] = user.key
        member = {"userid": external_userid, "type": 2, "join_time": now, "join_scene": scene}
        if user.extra.get("has_unionid", True):
            member["unionid"] = sim.state.unionid(user, corpid)
        chat.members[external_userid] = member
    status, _answer = _deliver_event(sim, corpid, "change_external_chat", {
        "ChatId": chat_id, "ChangeType": "update", "UpdateDetail": "add_member", "JoinScene": scene,
        "MemChangeCnt": 1, "MemChangeList": [external_userid]})
    return status


def leave_group(sim: Simulator, user: SimUser | str, corpid: str, chat_id: str) -> int:
    user = sim.state.user(user) if isinstance(user, str) else user
    external_userid = sim.state.external_userid(user, corpid)
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        chat = corp.groups.get(chat_id)
        if chat is None or external_userid not in chat.members:
            raise SimError(40050, "not a member of this group")
        del chat.members[external_userid]
    status, _answer = _deliver_event(sim, corpid, "change_external_chat", {
        "ChatId": chat_id, "ChangeType": "update", "UpdateDetail": "del_member", "QuitScene": 0,
        "MemChangeCnt": 1, "MemChangeList": [external_userid]})
    return status


def staff_resign(sim: Simulator, corpid: str, userid: str) -> int:
    """A member leaves the corp: their customers wait for a transfer; Siyu hears change_contact delete_user."""
    with sim.lock:
        corp = work_state(sim).corp(corpid)
        _staff(corp, userid).status = 5
    status, _answer = _deliver_event(sim, corpid, "change_contact", {"ChangeType": "delete_user", "UserID": userid})
    return status


# --- control endpoints for separate processes (/_sim/work/...) ----------------------------------------------------
def _control(request: SimRequest, *required: str) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict) or any(not payload.get(name) for name in required):
        raise SimError(40097, f"required: {', '.join(required)}", status=400)
    return payload


@route("POST", SIM, "/work/corps")
def control_corp(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "secret", "token", "encoding_aes_key")
    app = corp_register(sim, payload["corpid"], secret=payload["secret"], token=payload["token"],
                        encoding_aes_key=payload["encoding_aes_key"], callback_url=payload.get("callback_url", ""),
                        staff=payload.get("staff") or {})
    return SimResponse.json({"corpid": app.appid, "staff": sorted(work_state(sim).corp(app.appid).staff)})


@route("POST", SIM, "/work/staff")
def control_staff(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "userid", "name")
    staff = staff_add(sim, payload["corpid"], payload["userid"], payload["name"])
    return SimResponse.json({"userid": staff.userid, "name": staff.name})


@route("POST", SIM, "/work/add_contact")
def control_add_contact(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "user", "corpid", "config_id")
    return SimResponse.json(add_contact(sim, payload["user"], payload["corpid"], payload["config_id"],
                                        half=bool(payload.get("half"))))


@route("POST", SIM, "/work/delete_contact")
def control_delete_contact(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "user", "corpid", "userid")
    return SimResponse.json({"status": delete_contact(sim, payload["user"], payload["corpid"], payload["userid"],
                                                      by=payload.get("by", "customer"))})


@route("POST", SIM, "/work/groups")
def control_group_create(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "owner", "name")
    return SimResponse.json({"chat_id": group_create(sim, payload["corpid"], payload["owner"], payload["name"])})


@route("POST", SIM, "/work/join_group")
def control_join_group(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "user", "corpid", "chat_id")
    return SimResponse.json({"status": join_group(sim, payload["user"], payload["corpid"], payload["chat_id"])})


@route("POST", SIM, "/work/leave_group")
def control_leave_group(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "user", "corpid", "chat_id")
    return SimResponse.json({"status": leave_group(sim, payload["user"], payload["corpid"], payload["chat_id"])})


@route("POST", SIM, "/work/confirm_mass_send")
def control_confirm(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "msgid", "userid")
    counts = staff_confirm_mass_send(sim, payload["corpid"], payload["msgid"], payload["userid"])
    return SimResponse.json({"sent": counts[1], "not_friend": counts[2], "over_limit": counts[3]})


@route("POST", SIM, "/work/resign")
def control_resign(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid", "userid")
    return SimResponse.json({"status": staff_resign(sim, payload["corpid"], payload["userid"])})


@route("POST", SIM, "/work/transfers/complete")
def control_transfers(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control(request, "corpid")
    return SimResponse.json({"finished": transfers_complete(sim, payload["corpid"],
                                                            refuse=set(payload.get("refuse") or []))})


@route("POST", SIM, "/work/tags")
def control_tags(sim: Simulator, request: SimRequest) -> SimResponse:
    """An administrator adds tags in the WeCom admin console (Siyu hears change_external_tag)."""
    payload = _control(request, "corpid", "group_name", "names")
    return SimResponse.json(corp_tag_add(sim, payload["corpid"], group_name=payload["group_name"],
                                         names=list(payload["names"]), notify=True))


@route("GET", SIM, "/work/state")
def control_state(sim: Simulator, request: SimRequest) -> SimResponse:
    corpid = request.arg("corpid") or ""
    with sim.lock:
        corp = work_state(sim).corps.get(corpid)
        if corp is None:
            raise SimError(40013, "invalid corpid", status=404)
        return SimResponse.json({
            "staff": {userid: staff.status for userid, staff in corp.staff.items()},
            "contact_ways": {way.config_id: {"users": way.users, "state": way.state} for way in corp.contact_ways.values()},
            "relations": [{"userid": relation.userid, "external_userid": relation.external_userid,
                           "active": relation.active, "tags": sorted(relation.tags)} for relation in corp.relations.values()],
            "welcomes": list(corp.welcomes),
            "groups": {chat.chat_id: sorted(chat.members) for chat in corp.groups.values()},
        })
