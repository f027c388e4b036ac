"""The rule language of rule tags (SPEC O2): a small JSON tree over a customer's events and attributes.

Pure domain code: validation and evaluation need no database. ``siyu.customers.tagging`` compiles a
validated rule into a queryset filter (``rule_to_q`` below needs Django's ``Q`` only) so that one SQL
query evaluates it over many customers; the two must always agree (tests/customers/test_tag_rules.py).

Grammar (every node is a JSON object with exactly one of these shapes)::

    {"all": [node, ...]}          every child matches (at least one child)
    {"any": [node, ...]}          at least one child matches (at least one child)
    {"not": node}                 the child does not match
    {"event": "product_view",     the customer has at least ``min_count`` (default 1) events of this type
     "min_count": 2,              occurred at or after ``now - within_days`` days (no window: all time)
     "within_days": 7,            whose properties equal every ``where`` entry (values: strings or
     "where": {"product_id": "p1"}}   integers; numbers compare by value, so 1.0 matches 1; a string "1"
                                      never matches 1; do not compare true/false properties with integers)
    {"attribute": "city",         a customer attribute: first_channel, city or gender
     "equals": "上海"}              exact value; or ``"in": ["上海", "杭州"]`` for one of several

Example — viewed product p1 twice in the last week but has not paid in the last week::

    {"all": [{"event": "product_view", "min_count": 2, "within_days": 7, "where": {"product_id": "p1"}},
             {"not": {"event": "order_paid", "within_days": 7}}]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from siyu.core.errors import SiyuError

ATTRIBUTES = ("first_channel", "city", "gender")
MAX_DEPTH = 8
MAX_NODES = 64
MAX_WITHIN_DAYS = 3660
MAX_MIN_COUNT = 100_000
_PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_EVENT_KEYS = {"event", "min_count", "within_days", "where"}
_ATTRIBUTE_KEYS = {"attribute", "equals", "in"}


@dataclass(frozen=True)
class EventFact:
    """What the evaluator needs to know about one event."""

    type: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


class RuleInvalid(SiyuError):
    """A rule that cannot be stored: ``details["path"]`` says where (e.g. ``all[1].not.within_days``)."""


def _invalid(path: str, code_suffix: str, zh: str, en: str) -> RuleInvalid:
    return RuleInvalid(f"rule_{code_suffix}", f"规则无效（{path or '根节点'}）：{zh}",
                       f"Invalid rule at {path or 'root'}: {en}", status=400, details={"path": path})


def rule_validate(rule: Any) -> dict[str, Any]:
    """Check ``rule`` against the grammar and return it unchanged; raise ``RuleInvalid`` otherwise."""
    counter = [0]
    _validate_node(rule, "", 0, counter)
    return rule


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_node(node: Any, path: str, depth: int, counter: list[int]) -> None:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise _invalid(path, "too_large", f"最多 {MAX_NODES} 个条件", f"at most {MAX_NODES} conditions")
    if depth > MAX_DEPTH:
        raise _invalid(path, "too_deep", f"嵌套最多 {MAX_DEPTH} 层", f"at most {MAX_DEPTH} levels of nesting")
    if not isinstance(node, dict) or not node:
        raise _invalid(path, "not_object", "每个条件必须是非空 JSON 对象", "each condition must be a non-empty JSON object")
    prefix = f"{path}." if path else ""
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        if len(node) != 1:
            raise _invalid(path, "unknown_key", f"{key} 节点只能有一个键", f'a "{key}" node has exactly one key')
        children = node[key]
        if not isinstance(children, list) or not children:
            raise _invalid(f"{prefix}{key}", "empty_group", "必须是非空数组", "must be a non-empty array")
        for index, child in enumerate(children):
            _validate_node(child, f"{prefix}{key}[{index}]", depth + 1, counter)
        return
    if "not" in node:
        if len(node) != 1:
            raise _invalid(path, "unknown_key", "not 节点只能有一个键", 'a "not" node has exactly one key')
        _validate_node(node["not"], f"{prefix}not", depth + 1, counter)
        return
    if "event" in node:
        _validate_event(node, path, prefix)
        return
    if "attribute" in node:
        _validate_attribute(node, path, prefix)
        return
    raise _invalid(path, "unknown_condition", "需要 all、any、not、event 或 attribute",
                   'expected one of "all", "any", "not", "event", "attribute"')


def _validate_event(node: dict[str, Any], path: str, prefix: str) -> None:
    extra = set(node) - _EVENT_KEYS
    if extra:
        raise _invalid(path, "unknown_key", f"未知字段 {sorted(extra)}", f"unknown keys {sorted(extra)}")
    name = node["event"]
    if not isinstance(name, str) or not name or len(name) > 48:
        raise _invalid(f"{prefix}event", "bad_event", "事件名必须是 1–48 个字符的字符串",
                       "event must be a string of 1-48 characters")
    if "min_count" in node and not (_is_int(node["min_count"]) and 1 <= node["min_count"] <= MAX_MIN_COUNT):
        raise _invalid(f"{prefix}min_count", "bad_min_count", f"必须是 1–{MAX_MIN_COUNT} 的整数",
                       f"must be an integer from 1 to {MAX_MIN_COUNT}")
    if "within_days" in node and not (_is_int(node["within_days"]) and 1 <= node["within_days"] <= MAX_WITHIN_DAYS):
        raise _invalid(f"{prefix}within_days", "bad_within_days", f"必须是 1–{MAX_WITHIN_DAYS} 的整数",
                       f"must be an integer from 1 to {MAX_WITHIN_DAYS}")
    where = node.get("where", {})
    if not isinstance(where, dict):
        raise _invalid(f"{prefix}where", "bad_where", "必须是 JSON 对象", "must be a JSON object")
    for key, value in where.items():
        if not _PROPERTY_NAME.match(key):
            raise _invalid(f"{prefix}where.{key}", "bad_property", "属性名只能包含字母、数字和下划线",
                           "property names use letters, digits and underscores")
        if not (isinstance(value, str) or _is_int(value)):
            raise _invalid(f"{prefix}where.{key}", "bad_value", "属性值必须是字符串或整数",
                           "property values must be strings or integers")


def _validate_attribute(node: dict[str, Any], path: str, prefix: str) -> None:
    extra = set(node) - _ATTRIBUTE_KEYS
    if extra:
        raise _invalid(path, "unknown_key", f"未知字段 {sorted(extra)}", f"unknown keys {sorted(extra)}")
    if node["attribute"] not in ATTRIBUTES:
        raise _invalid(f"{prefix}attribute", "bad_attribute", f"只支持 {', '.join(ATTRIBUTES)}",
                       f"supported attributes: {', '.join(ATTRIBUTES)}")
    if ("equals" in node) == ("in" in node):
        raise _invalid(path, "bad_comparison", "需要 equals 或 in 其中之一", 'needs exactly one of "equals" or "in"')
    values = [node["equals"]] if "equals" in node else node["in"]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _invalid(f"{prefix}{'equals' if 'equals' in node else 'in'}", "bad_value",
                       "比较值必须是字符串（in 为非空字符串数组）", "values must be strings (a non-empty array for in)")


def window_start(node: Mapping[str, Any], now: datetime) -> datetime | None:
    days = node.get("within_days")
    return None if days is None else now - timedelta(days=days)


def _property_matches(actual: Any, expected: str | int) -> bool:
    # As in SQL over JSON: strings equal strings, numbers compare by value, never across the two.
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return isinstance(actual, int | float) and not isinstance(actual, bool) and actual == expected


def rule_evaluate(rule: Mapping[str, Any], *, events: Iterable[EventFact], attributes: Mapping[str, str],
                  now: datetime) -> bool:
    """Does one customer (its events and attributes) match a validated rule at ``now``?"""
    facts = list(events)
    return _evaluate(rule, facts, attributes, now)


def _evaluate(node: Mapping[str, Any], events: list[EventFact], attributes: Mapping[str, str], now: datetime) -> bool:
    if "all" in node:
        return all(_evaluate(child, events, attributes, now) for child in node["all"])
    if "any" in node:
        return any(_evaluate(child, events, attributes, now) for child in node["any"])
    if "not" in node:
        return not _evaluate(node["not"], events, attributes, now)
    if "attribute" in node:
        values = [node["equals"]] if "equals" in node else node["in"]
        return (attributes.get(node["attribute"]) or "") in values
    start = window_start(node, now)
    where = node.get("where", {})
    count = sum(
        1 for event in events
        if event.type == node["event"]
        and (start is None or event.occurred_at >= start)
        and all(_property_matches(event.properties.get(key), value) for key, value in where.items())
    )
    return count >= node.get("min_count", 1)


def rule_event_types(rule: Mapping[str, Any]) -> set[str]:
    """The event types a rule looks at (to skip rules an ingested batch cannot affect)."""
    if "all" in rule or "any" in rule:
        return set().union(*(rule_event_types(child) for child in rule.get("all") or rule.get("any")))
    if "not" in rule:
        return rule_event_types(rule["not"])
    return {rule["event"]} if "event" in rule else set()


def rule_has_time_window(rule: Mapping[str, Any]) -> bool:
    """True when the rule's answer can change with time alone (needs the daily re-evaluation)."""
    if "all" in rule or "any" in rule:
        return any(rule_has_time_window(child) for child in rule.get("all") or rule.get("any"))
    if "not" in rule:
        return rule_has_time_window(rule["not"])
    return "within_days" in rule
