"""The segment condition language (schema version 1): validation, plain-Python evaluation, readable text.

Pure domain code, no ORM: ``segments.compiler`` turns the same tree into one SQL query over ``Customer``;
the two must always agree (tests/engagement/segments/test_compiler_agrees.py, a hypothesis property).

A definition is ``{"version": 1, "root": node}``. A node is a group or a leaf::

    {"and": [node, ...]}     every child matches (1–32 children)
    {"or":  [node, ...]}     at least one child matches
    {"not": node}            the child does not match

Leaves are ``{"field": ..., "op": ..., ...}``:

    field                      ops                      value / other keys
    gender, city,              eq, ne                   "value": string
    first_channel              in, not_in               "value": [string, ...] (1–50)
    first_seen_at,             within_days              "value": days (1–3660): at or after now − days
    last_seen_at               older_than_days          "value": days: before now − days
    attribute                  eq, ne                   "key": JSON key of Customer.attributes,
                               exists, not_exists       "value": string or integer (eq/ne only)
    tag                        has, has_not             "value": tag id
    rfm5, rfm6, lifecycle      in, not_in               "value": [code, ...]   (no score row: no layer)
    recency_days, frequency,   gte, lte, eq             "value": integer ≥ 0   (no score row, or never
    monetary_fen                                                                ordered for R: no match)
    tier                       in, not_in               "value": [tier code, ...] (no tier row: "normal")
    points                     gte, lte, eq             "value": integer ≥ 0   (no account: balance 0)
    community                  member, not_member       "value": community id, or null for any community
    event                      gte, lte, eq             "type": event type, "count": integer ≥ 0,
                                                        "days": window (optional; none: all time),
                                                        "where": {property: string or integer} (optional)

``ne`` and ``not_in`` are the negation of ``eq`` and ``in`` (a customer without the value is "not equal").
Attribute and event-property equality follows SQL over JSON: strings equal strings, integers compare with
numbers by value, never a string with a number. An event window counts events with
``occurred_at >= now - days``. Events belong to the customer through the identities it holds now.

Example — 近 7 天 浏览商品 ≥ 2 次 且 近 30 天 没有 支付订单::

    {"version": 1, "root": {"and": [
        {"field": "event", "type": "product_view", "op": "gte", "count": 2, "days": 7},
        {"field": "event", "type": "order_paid", "op": "eq", "count": 0, "days": 30}]}}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from siyu.core.errors import SiyuError

SCHEMA_VERSION = 1
MAX_DEPTH = 8
MAX_NODES = 64
MAX_CHILDREN = 32
MAX_DAYS = 3660
MAX_COUNT = 100_000
MAX_NUMBER = 10**15
MAX_IN_VALUES = 50

ATTRIBUTE_FIELDS = ("gender", "city", "first_channel")
TIME_FIELDS = ("first_seen_at", "last_seen_at")
LAYER_FIELDS = ("rfm5", "rfm6", "lifecycle")
SCORE_NUMBER_FIELDS = ("recency_days", "frequency", "monetary_fen")
TIER_CODES = ("normal", "silver", "gold", "diamond")
NUMBER_OPS = ("gte", "lte", "eq")

FIELD_OPS: dict[str, tuple[str, ...]] = {
    **{name: ("eq", "ne", "in", "not_in") for name in ATTRIBUTE_FIELDS},
    **{name: ("within_days", "older_than_days") for name in TIME_FIELDS},
    "attribute": ("eq", "ne", "exists", "not_exists"),
    "tag": ("has", "has_not"),
    **{name: ("in", "not_in") for name in LAYER_FIELDS},
    **{name: NUMBER_OPS for name in SCORE_NUMBER_FIELDS},
    "tier": ("in", "not_in"),
    "points": NUMBER_OPS,
    "community": ("member", "not_member"),
    "event": NUMBER_OPS,
}
_LEAF_KEYS: dict[str, set[str]] = {name: {"field", "op", "value"} for name in FIELD_OPS}
_LEAF_KEYS["attribute"] = {"field", "op", "key", "value"}
_LEAF_KEYS["event"] = {"field", "op", "type", "count", "days", "where"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CODE = re.compile(r"^[a-z0-9_]{1,32}$")
# Negated operators: evaluated (and compiled) as NOT of their positive twin.
NEGATED = {"ne": "eq", "not_in": "in", "not_exists": "exists", "has_not": "has", "not_member": "member"}


class SegmentInvalid(SiyuError):
    """A definition that cannot be stored: ``details["path"]`` says where (e.g. ``root.and[1].not.value``)."""


def _invalid(path: str, code: str, zh: str, en: str) -> SegmentInvalid:
    return SegmentInvalid(f"segment_{code}", f"分群条件无效（{path}）：{zh}", f"Invalid segment condition at {path}: {en}",
                          status=400, details={"path": path})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- validation -----------------------------------------------------------------------------------

def definition_validate(definition: Any) -> dict[str, Any]:
    """Check a whole definition and return it; raise ``SegmentInvalid`` (code ``segment_*``) otherwise."""
    if not isinstance(definition, dict):
        raise _invalid("definition", "not_object", "必须是 JSON 对象", "must be a JSON object")
    if definition.get("version") != SCHEMA_VERSION:
        raise _invalid("version", "bad_version", f"只支持版本 {SCHEMA_VERSION}",
                       f"only schema version {SCHEMA_VERSION} is supported")
    extra = set(definition) - {"version", "root"}
    if extra:
        raise _invalid("definition", "unknown_key", f"未知字段 {sorted(extra)}", f"unknown keys {sorted(extra)}")
    if "root" not in definition:
        raise _invalid("root", "empty", "至少需要一个条件", "at least one condition is required")
    counter = [0]
    _validate_node(definition["root"], "root", 0, counter)
    return definition


def _validate_node(node: Any, path: str, depth: int, counter: list[int]) -> None:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise _invalid(path, "too_large", f"最多 {MAX_NODES} 个条件", f"at most {MAX_NODES} conditions")
    if depth > MAX_DEPTH:
        raise _invalid(path, "too_deep", f"嵌套最多 {MAX_DEPTH} 层", f"at most {MAX_DEPTH} levels of nesting")
    if not isinstance(node, dict) or not node:
        raise _invalid(path, "not_object", "每个条件必须是非空 JSON 对象", "each condition must be a non-empty JSON object")
    for key in ("and", "or"):
        if key in node:
            if len(node) != 1:
                raise _invalid(path, "unknown_key", f"{key} 节点只能有一个键", f'an "{key}" node has exactly one key')
            children = node[key]
            if not isinstance(children, list) or not children:
                raise _invalid(f"{path}.{key}", "empty_group", "条件组不能为空", "a group needs at least one condition")
            if len(children) > MAX_CHILDREN:
                raise _invalid(f"{path}.{key}", "too_large", f"一组最多 {MAX_CHILDREN} 个条件",
                               f"at most {MAX_CHILDREN} conditions in a group")
            for index, child in enumerate(children):
                _validate_node(child, f"{path}.{key}[{index}]", depth + 1, counter)
            return
    if "not" in node:
        if len(node) != 1:
            raise _invalid(path, "unknown_key", "not 节点只能有一个键", 'a "not" node has exactly one key')
        _validate_node(node["not"], f"{path}.not", depth + 1, counter)
        return
    if "field" in node:
        _validate_leaf(node, path)
        return
    raise _invalid(path, "unknown_condition", "需要 and、or、not 或 field", 'expected one of "and", "or", "not", "field"')


def _validate_leaf(node: dict[str, Any], path: str) -> None:
    name = node["field"]
    if name not in FIELD_OPS:
        raise _invalid(f"{path}.field", "bad_field", f"未知字段 {name!r}", f"unknown field {name!r}")
    extra = set(node) - _LEAF_KEYS[name]
    if extra:
        raise _invalid(path, "unknown_key", f"未知字段 {sorted(extra)}", f"unknown keys {sorted(extra)}")
    op = node.get("op")
    if op not in FIELD_OPS[name]:
        raise _invalid(f"{path}.op", "bad_operator", f"{name} 只支持 {', '.join(FIELD_OPS[name])}",
                       f"{name} supports {', '.join(FIELD_OPS[name])}")
    value = node.get("value")
    at = f"{path}.value"
    if name in ATTRIBUTE_FIELDS:
        if op in ("eq", "ne"):
            if not isinstance(value, str) or len(value) > 64:
                raise _invalid(at, "bad_value", "必须是字符串（最多 64 字）", "must be a string of at most 64 characters")
        else:
            _check_string_list(value, at, pattern=None)
    elif name in TIME_FIELDS:
        _check_int(value, at, 1, MAX_DAYS)
    elif name == "attribute":
        key = node.get("key")
        if not isinstance(key, str) or not _NAME.match(key):
            raise _invalid(f"{path}.key", "bad_key", "属性名只能包含字母、数字和下划线（最多 64 个）",
                           "attribute keys use letters, digits and underscores (at most 64)")
        if op in ("eq", "ne"):
            _check_scalar(value, at)
        elif "value" in node:
            raise _invalid(at, "unknown_key", "exists 不需要比较值", "exists takes no value")
    elif name == "tag":
        _check_int(value, at, 1, 2**62)
    elif name in LAYER_FIELDS or name == "tier":
        _check_string_list(value, at, pattern=_CODE)
        if name == "tier" and not set(value) <= set(TIER_CODES):
            raise _invalid(at, "bad_value", f"会员等级只能是 {', '.join(TIER_CODES)}",
                           f"tiers are {', '.join(TIER_CODES)}")
    elif name in SCORE_NUMBER_FIELDS or name == "points":
        _check_int(value, at, 0, MAX_NUMBER)
    elif name == "community":
        if value is not None:
            _check_int(value, at, 1, 2**62)
    elif name == "event":
        _validate_event(node, path)


def _validate_event(node: dict[str, Any], path: str) -> None:
    kind = node.get("type")
    if not isinstance(kind, str) or not _NAME.match(kind) or len(kind) > 48:
        raise _invalid(f"{path}.type", "bad_event", "事件类型必须是 1–48 个字母、数字或下划线",
                       "the event type must be 1-48 letters, digits or underscores")
    _check_int(node.get("count"), f"{path}.count", 0, MAX_COUNT)
    if "days" in node:
        _check_int(node["days"], f"{path}.days", 1, MAX_DAYS)
    where = node.get("where", {})
    if not isinstance(where, dict) or len(where) > 8:
        raise _invalid(f"{path}.where", "bad_where", "必须是 JSON 对象（最多 8 个属性）",
                       "must be a JSON object of at most 8 properties")
    for key, value in where.items():
        if not _NAME.match(key):
            raise _invalid(f"{path}.where.{key}", "bad_property", "属性名只能包含字母、数字和下划线",
                           "property names use letters, digits and underscores")
        _check_scalar(value, f"{path}.where.{key}")


def _check_int(value: Any, at: str, low: int, high: int) -> None:
    if not (_is_int(value) and low <= value <= high):
        raise _invalid(at, "bad_value", f"必须是 {low}–{high} 的整数", f"must be an integer from {low} to {high}")


def _check_scalar(value: Any, at: str) -> None:
    if not ((isinstance(value, str) and len(value) <= 128) or (_is_int(value) and abs(value) <= MAX_NUMBER)):
        raise _invalid(at, "bad_value", "比较值必须是字符串或整数", "the value must be a string or an integer")


def _check_string_list(value: Any, at: str, *, pattern: re.Pattern | None) -> None:
    if (not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES
            or not all(isinstance(item, str) and len(item) <= 64 for item in value)):
        raise _invalid(at, "bad_value", f"必须是 1–{MAX_IN_VALUES} 个字符串的数组",
                       f"must be an array of 1 to {MAX_IN_VALUES} strings")
    if pattern is not None and not all(pattern.match(item) for item in value):
        raise _invalid(at, "bad_value", "代码只能包含小写字母、数字和下划线", "codes use lower-case letters, digits and underscores")


# --- evaluation over in-memory data ---------------------------------------------------------------

@dataclass(frozen=True)
class EventFact:
    type: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreFacts:
    rfm5: str = ""
    rfm6: str = ""
    lifecycle: str = ""
    recency_days: int | None = None
    frequency: int = 0
    monetary_fen: int = 0


@dataclass(frozen=True)
class CustomerFacts:
    """Everything a condition can look at for one customer (``None`` score/tier/points: no row)."""

    gender: str = ""
    city: str = ""
    first_channel: str = ""
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tag_ids: frozenset[int] = frozenset()
    score: ScoreFacts | None = None
    tier: str | None = None
    points: int | None = None
    community_ids: frozenset[int] = frozenset()  # communities the customer is in now (not left)
    events: tuple[EventFact, ...] = ()


def json_equals(actual: Any, expected: str | int) -> bool:
    """SQL-over-JSON equality: strings with strings, numbers by value, never across (nor with booleans)."""
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return isinstance(actual, int | float) and not isinstance(actual, bool) and actual == expected


def compare(actual: int, op: str, expected: int) -> bool:
    return actual >= expected if op == "gte" else actual <= expected if op == "lte" else actual == expected


def window_start(node: Mapping[str, Any], now: datetime) -> datetime | None:
    return None if node.get("days") is None else now - timedelta(days=node["days"])


def definition_evaluate(definition: Mapping[str, Any], facts: CustomerFacts, *, now: datetime) -> bool:
    """Does one customer match a validated definition at ``now``?"""
    return node_evaluate(definition["root"], facts, now=now)


def node_evaluate(node: Mapping[str, Any], facts: CustomerFacts, *, now: datetime) -> bool:
    if "and" in node:
        return all(node_evaluate(child, facts, now=now) for child in node["and"])
    if "or" in node:
        return any(node_evaluate(child, facts, now=now) for child in node["or"])
    if "not" in node:
        return not node_evaluate(node["not"], facts, now=now)
    op = node["op"]
    if op in NEGATED:
        return not _leaf_evaluate({**node, "op": NEGATED[op]}, facts, now)
    return _leaf_evaluate(node, facts, now)


def _leaf_evaluate(node: Mapping[str, Any], facts: CustomerFacts, now: datetime) -> bool:
    name, op, value = node["field"], node["op"], node.get("value")
    if name in ATTRIBUTE_FIELDS:
        actual = getattr(facts, name) or ""
        return actual == value if op == "eq" else actual in value
    if name in TIME_FIELDS:
        moment = getattr(facts, name)
        start = now - timedelta(days=value)
        return moment is not None and (moment >= start if op == "within_days" else moment < start)
    if name == "attribute":
        if op == "exists":
            return node["key"] in facts.attributes
        return node["key"] in facts.attributes and json_equals(facts.attributes[node["key"]], value)
    if name == "tag":
        return value in facts.tag_ids
    if name in LAYER_FIELDS:
        return facts.score is not None and getattr(facts.score, name) in value
    if name in SCORE_NUMBER_FIELDS:
        actual = getattr(facts.score, name) if facts.score is not None else None
        return actual is not None and compare(actual, op, value)
    if name == "tier":
        return (facts.tier or "normal") in value
    if name == "points":
        return compare(facts.points or 0, op, value)
    if name == "community":
        return bool(facts.community_ids) if value is None else value in facts.community_ids
    if name == "event":
        start = window_start(node, now)
        where = node.get("where", {})
        count = sum(1 for event in facts.events
                    if event.type == node["type"] and (start is None or event.occurred_at >= start)
                    and all(key in event.properties and json_equals(event.properties[key], expected)
                            for key, expected in where.items()))
        return compare(count, op, node["count"])
    raise AssertionError(f"unvalidated field {name}")


# --- what a definition depends on (to decide which changes call for a refresh) ----------------------

def definition_fields(definition: Mapping[str, Any]) -> set[str]:
    """The leaf fields a definition uses."""
    found: set[str] = set()

    def walk(node: Mapping[str, Any]) -> None:
        for key in ("and", "or"):
            if key in node:
                for child in node[key]:
                    walk(child)
                return
        if "not" in node:
            walk(node["not"])
        elif "field" in node:
            found.add(node["field"])

    if isinstance(definition, Mapping) and isinstance(definition.get("root"), Mapping):
        walk(definition["root"])
    return found


# --- readable text --------------------------------------------------------------------------------

_OP_TEXT = {
    "eq": ("是", "is"), "ne": ("不是", "is not"), "in": ("属于", "is one of"), "not_in": ("不属于", "is not one of"),
    "gte": ("≥", "≥"), "lte": ("≤", "≤"), "exists": ("已填写", "is set"), "not_exists": ("未填写", "is not set"),
}
FIELD_LABELS = {
    "gender": ("性别", "Gender"), "city": ("城市", "City"), "first_channel": ("首次来源渠道", "First channel"),
    "first_seen_at": ("首次访问", "First seen"), "last_seen_at": ("最近访问", "Last seen"),
    "attribute": ("自定义属性", "Attribute"), "tag": ("标签", "Tag"),
    "rfm5": ("RFM 五层", "RFM (5 tiers)"), "rfm6": ("RFM 六类", "RFM (6 classes)"),
    "lifecycle": ("生命周期", "Lifecycle"), "recency_days": ("距上次购买天数", "Days since last order"),
    "frequency": ("购买次数", "Orders"), "monetary_fen": ("累计消费（分）", "Total spend (fen)"),
    "tier": ("会员等级", "Tier"), "points": ("积分余额", "Points balance"), "community": ("社群", "Community"),
    "event": ("行为", "Behaviour"),
}

Labeller = Callable[[str, Any], str]  # (field, raw value) -> display label


def definition_describe(definition: Mapping[str, Any], *, english: bool = False,
                        label: Labeller | None = None) -> str:
    """The definition as one readable sentence, e.g. "近 7 天 浏览商品 ≥ 2 次 且 没有 支付订单"."""
    label = label or (lambda _field, raw: str(raw))
    return _describe(definition["root"], 1 if english else 0, label, top=True)


def _describe(node: Mapping[str, Any], lang: int, label: Labeller, *, top: bool = False) -> str:
    for key, words in (("and", (" 且 ", " and ")), ("or", (" 或 ", " or "))):
        if key in node:
            text = words[lang].join(_describe(child, lang, label) for child in node[key])
            return text if top or len(node[key]) == 1 else f"({text})"
    if "not" in node:
        return ("非 " if lang == 0 else "not ") + _describe(node["not"], lang, label)
    return _describe_leaf(node, lang, label)


def _describe_leaf(node: Mapping[str, Any], lang: int, label: Labeller) -> str:
    name, op, value = node["field"], node["op"], node.get("value")
    title = FIELD_LABELS[name][lang]
    joiner = "、" if lang == 0 else ", "
    if name == "event":
        event = label("event", node["type"])
        where = "".join(f"（{k}={v}）" if lang == 0 else f" ({k}={v})" for k, v in node.get("where", {}).items())
        days = node.get("days")
        window = (f"近 {days} 天 " if lang == 0 else f"in the last {days} days ") if days else ""
        count = node["count"]
        if count == 0 and op in ("eq", "lte"):
            return f"{window}没有 {event}{where}" if lang == 0 else f"no {event}{where} {window}".rstrip()
        if lang == 0:
            return f"{window}{event}{where} {_OP_TEXT[op][0] if op != 'eq' else '='} {count} 次"
        return f"{event}{where} {_OP_TEXT[op][1] if op != 'eq' else '='} {count} times {window}".rstrip()
    if name in TIME_FIELDS:
        if lang == 0:
            return f"{title}在近 {value} 天内" if op == "within_days" else f"{title}在 {value} 天以前"
        return f"{title} within the last {value} days" if op == "within_days" else f"{title} over {value} days ago"
    if name == "tag":
        tag = label("tag", value)
        return (f"有标签「{tag}」" if op == "has" else f"没有标签「{tag}」") if lang == 0 else \
            (f"has tag “{tag}”" if op == "has" else f"has no tag “{tag}”")
    if name == "community":
        group = label("community", value) if value is not None else ("任一社群" if lang == 0 else "any community")
        return (f"在{group}中" if op == "member" else f"不在{group}中") if lang == 0 else \
            (f"in {group}" if op == "member" else f"not in {group}")
    if name == "attribute":
        title = f"{title} {node['key']}"
    if isinstance(value, list):
        shown = joiner.join(label(name, item) for item in value)
    elif value is None:
        shown = ""
    else:
        shown = label(name, value)
    text = f"{title} {_OP_TEXT[op][lang]} {shown}".rstrip()
    return text


def codes_used(definition: Mapping[str, Any], field_name: str) -> Iterable[Any]:
    """Every raw value a definition uses for one field (tag ids, community ids, event types)."""
    found: list[Any] = []

    def walk(node: Mapping[str, Any]) -> None:
        for key in ("and", "or"):
            if key in node:
                for child in node[key]:
                    walk(child)
                return
        if "not" in node:
            walk(node["not"])
        elif node.get("field") == field_name:
            raw = node.get("type") if field_name == "event" else node.get("value")
            found.extend(raw if isinstance(raw, list) else [raw])

    walk(definition["root"])
    return found
