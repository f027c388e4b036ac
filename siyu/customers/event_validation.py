"""Validation of one incoming event against the catalogue. Pure: no database, microseconds per event.

Returns a normalised dict, or raises EventRejected with a stable code and a Chinese/English message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from siyu.core.channel_codes import channel_normalize
from siyu.core.crypto import normalize_phone, phone_hash
from siyu.core.timeutil import SHANGHAI
from siyu.customers.event_catalogue import EventType

EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
IDENTITY_KINDS = ("unionid", "openid", "external_userid", "phone", "device", "lead")
NAMESPACED = {"openid", "external_userid", "device", "lead"}
_PLAIN_KINDS = frozenset({"unionid", "openid", "external_userid", "device", "lead"})  # stored as sent
UTM_FIELDS = ("source", "medium", "campaign", "content", "term")
UTM_LIMITS = {"source": 64, "medium": 64, "campaign": 128, "content": 128, "term": 128}
MAX_PROPERTIES_BYTES = 8 * 1024


@dataclass
class EventRejected(Exception):
    code: str
    message_zh: str
    message_en: str
    field: str = ""


def _reject(code: str, zh: str, en: str, field: str = "") -> EventRejected:
    return EventRejected(code, zh, en, field)


def parse_time(value: Any, field: str) -> datetime:
    if isinstance(value, bool) or value is None:
        raise _reject("invalid_timestamp", f"{field} 必须是 ISO 8601 时间", f"{field} must be an ISO 8601 time", field)
    if isinstance(value, int | float):
        # Unix epoch milliseconds, as browsers and mini-programs send them.
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _reject("invalid_timestamp", f"{field} 超出范围", f"{field} is out of range", field) from None
    if not isinstance(value, str):
        raise _reject("invalid_timestamp", f"{field} 必须是 ISO 8601 时间", f"{field} must be an ISO 8601 time", field)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _reject("invalid_timestamp", f"{field} 不是有效的 ISO 8601 时间",
                      f"{field} is not a valid ISO 8601 time", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)  # documented: times without an offset are Beijing time
    return moment


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_PROPERTY_CHECKS = {
    "string": lambda v: isinstance(v, str) and len(v) <= 1024,
    "integer": _is_int,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "fen": lambda v: _is_int(v) and 0 <= v <= 10**12,
    "datetime": lambda v: isinstance(v, str),
}
_PROPERTY_HINTS = {"fen": "非负整数(分)", "integer": "整数", "number": "数字", "boolean": "布尔值",
                   "string": "字符串(≤1024字)", "datetime": "ISO 8601 时间"}


def _check_property(name: str, kind: str, value: Any) -> None:
    check = _PROPERTY_CHECKS.get(kind)
    if check is None or not check(value):
        hint = _PROPERTY_HINTS.get(kind, kind)
        raise _reject("invalid_property", f"属性 {name} 应为{hint}", f"property {name} must be of type {kind}",
                      f"properties.{name}")
    if kind == "datetime":
        parse_time(value, f"properties.{name}")


def _identity(item: Any, index: int, phones: dict[str, str] | None = None) -> tuple[str, str, str]:
    if type(item) is dict:
        # The common shape, checked in one go; anything unusual takes the detailed checks below.
        kind, value, namespace = item.get("kind"), item.get("value"), item.get("namespace", "")
        if (kind in _PLAIN_KINDS and type(value) is str and type(namespace) is str and 0 < len(value) <= 128
                and len(namespace) <= 64 and not value[0].isspace() and not value[-1].isspace()
                and (namespace or kind not in NAMESPACED)):
            return (kind, "" if kind == "unionid" else namespace, value)
        if kind == "phone" and phones is not None and type(value) is str and value in phones \
                and type(namespace) is str and len(namespace) <= 64:
            return ("phone", "", phones[value])
    field = f"identities[{index}]"
    if not isinstance(item, dict):
        raise _reject("invalid_identity", "身份必须是对象", "each identity must be an object", field)
    kind, value, namespace = item.get("kind"), item.get("value"), item.get("namespace", "")
    if kind not in IDENTITY_KINDS:
        raise _reject("invalid_identity", f"未知身份类型:{kind}", f"unknown identity kind: {kind}", field)
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise _reject("invalid_identity", "身份值必须是 1-128 字的字符串",
                      "identity value must be a string of 1-128 characters", field)
    if not isinstance(namespace, str) or len(namespace) > 64:
        raise _reject("invalid_identity", "namespace 必须是 ≤64 字的字符串",
                      "namespace must be a string of at most 64 characters", field)
    if kind in NAMESPACED and not namespace:
        raise _reject("invalid_identity", f"{kind} 需要 namespace(AppID/CorpID/平台)",
                      f"{kind} needs a namespace (AppID, CorpID or platform)", field)
    if kind == "phone":
        try:
            hashed = phone_hash(normalize_phone(value))
        except ValueError:
            raise _reject("invalid_phone", "手机号格式不正确", "not a valid phone number", field) from None
        if phones is not None:
            phones[value] = hashed  # a keyed hash costs as much as the rest of the event: once per batch
        return ("phone", "", hashed)
    if kind in {"unionid"}:
        namespace = ""
    return (kind, namespace, value.strip())


def validate_event(raw: Any, *, catalogue: dict[str, EventType], now: datetime,
                   max_future: timedelta, max_age: timedelta, phones: dict[str, str] | None = None) -> dict[str, Any]:
    """``phones``: a dict shared by the events of one batch (phone as sent → keyed hash), optional."""
    if not isinstance(raw, dict):
        raise _reject("invalid_event", "事件必须是 JSON 对象", "an event must be a JSON object")
    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id):
        raise _reject("invalid_event_id", "event_id 必须是 1-64 位字母、数字或 _.:-",
                      "event_id must be 1-64 characters of letters, digits or _.:-", "event_id")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in catalogue:
        raise _reject("unknown_event_type", f"未知事件类型:{event_type}", f"unknown event type: {event_type}", "type")
    definition = catalogue[event_type]
    occurred_at = parse_time(raw.get("occurred_at"), "occurred_at")
    if occurred_at > now + max_future:
        raise _reject("timestamp_in_future", "事件时间晚于当前时间", "occurred_at is in the future", "occurred_at")
    if occurred_at < now - max_age:
        raise _reject("timestamp_too_old", "事件时间过早(超过保留期限)", "occurred_at is older than the retention limit",
                      "occurred_at")

    identities = raw.get("identities")
    if not isinstance(identities, list) or not identities or len(identities) > 10:
        raise _reject("missing_identity", "每个事件需要 1-10 个身份标识", "each event needs 1-10 identities",
                      "identities")
    keys = [_identity(item, index, phones) for index, item in enumerate(identities)]

    properties = raw.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise _reject("invalid_properties", "properties 必须是对象", "properties must be an object", "properties")
    for name, (kind, required) in definition.properties.items():
        if name not in properties or properties[name] is None:
            if required:
                raise _reject("missing_property", f"缺少必填属性 {name}", f"required property {name} is missing",
                              f"properties.{name}")
            continue
        _check_property(name, kind, properties[name])
    properties_json = orjson.dumps(properties)
    if len(properties_json) > MAX_PROPERTIES_BYTES:
        raise _reject("properties_too_large", "properties 过大(≤8KB)", "properties are too large (8 KB at most)",
                      "properties")
    if b"\\u0000" in properties_json:
        # PostgreSQL cannot store NUL in text or jsonb; refuse it here rather than fail the batch.
        raise _reject("invalid_character", "properties 不能包含 NUL 字符", "properties must not contain NUL characters",
                      "properties")

    utm = _utm(raw)
    channel_raw = raw.get("channel")
    if channel_raw is not None and not isinstance(channel_raw, str):
        raise _reject("invalid_channel", "channel 必须是字符串", "channel must be a string", "channel")
    channel = _channel(channel_raw or utm["source"])
    # one scan of every text field (PostgreSQL cannot store NUL in text)
    if "\x00" in channel or "\x00" in "".join(utm.values()) or "\x00" in "".join(map("".join, keys)):
        raise _reject("invalid_character", "字段不能包含 NUL 字符", "fields must not contain NUL characters")
    return {
        "event_id": event_id,
        "type": event_type,
        "occurred_at": occurred_at,
        "keys": keys,
        "channel": channel,
        "utm": utm,
        "properties": properties,
        "properties_json": properties_json,
    }


_NO_UTM = dict.fromkeys(UTM_FIELDS, "")
_UTM_KEYS = {f"utm_{name}": name for name in UTM_FIELDS}
# Anything that makes urlsplit/parse_qs do more than split: escapes, '+', brackets (IPv6 hosts),
# spaces and control characters (stripped or removed by urlsplit).
_URL_NEEDS_PARSER = re.compile(r"[%+\[\]\x00-\x20\x7f]")


@lru_cache(maxsize=4096)
def _channel(value: str | None) -> str:
    return channel_normalize(value)


def _utm_from_url(page_url: str) -> dict[str, str]:
    """The utm_* query parameters of a URL, first value of each, as ``parse_qs(urlsplit(url).query)``
    reads them; plain URLs (most) are split by hand, the rest go through the standard library."""
    if _URL_NEEDS_PARSER.search(page_url) is None:
        query = page_url.split("#", 1)[0].partition("?")[2]
        found: dict[str, str] = {}
        if "utm_" in query:
            for pair in query.split("&"):
                name, equals, value = pair.partition("=")
                field_name = _UTM_KEYS.get(name)
                if field_name is not None and equals and value and field_name not in found:
                    found[field_name] = value
        return found
    try:
        query = parse_qs(urlsplit(page_url).query)
    except ValueError:  # e.g. an unbalanced '[' in the host
        raise _reject("invalid_page_url", "page_url 不是有效的 URL", "page_url is not a valid URL", "page_url") from None
    return {name: query[key][0] for key, name in _UTM_KEYS.items() if key in query}


def _utm(raw: dict[str, Any]) -> dict[str, str]:
    page_url = raw.get("page_url")
    given = raw.get("utm")
    if page_url is None and given is None:
        return dict(_NO_UTM)  # most events: nothing to parse or check
    utm = dict(_NO_UTM)
    if page_url is not None:
        if not isinstance(page_url, str) or len(page_url) > 2048:
            raise _reject("invalid_page_url", "page_url 必须是 ≤2048 字的字符串",
                          "page_url must be a string of at most 2048 characters", "page_url")
        utm.update(_utm_from_url(page_url))
    if given is not None:
        if not isinstance(given, dict):
            raise _reject("invalid_utm", "utm 必须是对象", "utm must be an object", "utm")
        for name in UTM_FIELDS:
            value = given.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise _reject("invalid_utm", f"utm.{name} 必须是字符串", f"utm.{name} must be a string", f"utm.{name}")
            utm[name] = value
    for name, limit in UTM_LIMITS.items():
        if len(utm[name]) > limit:
            raise _reject("invalid_utm", f"utm.{name} 过长(≤{limit})", f"utm.{name} is too long ({limit} at most)",
                          f"utm.{name}")
    return utm
