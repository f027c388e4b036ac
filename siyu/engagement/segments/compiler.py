"""A validated condition tree (``segments.conditions``) compiled to one Django ORM filter on ``Customer``.

Every leaf becomes a column test or an ``EXISTS`` / ``IN`` subquery, so a whole segment is one SQL
statement on SQLite and PostgreSQL alike. Semantics are those of ``conditions.node_evaluate`` (the
hypothesis test holds the two together); the comments say where SQL needs care to agree with Python.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTransform

from siyu.core.models import Workspace
from siyu.customers.models import Customer, CustomerStatus, CustomerTag, Event
from siyu.engagement.communities.models import CommunityMember
from siyu.engagement.rfm.models import CustomerScore
from siyu.engagement.segments.conditions import (
    ATTRIBUTE_FIELDS,
    LAYER_FIELDS,
    NEGATED,
    SCORE_NUMBER_FIELDS,
    TIME_FIELDS,
    compare,
    definition_validate,
    window_start,
)
from siyu.loyalty.models import CustomerTier, PointsAccount

ALWAYS = Q(pk__isnull=False)
NEVER = Q(pk__isnull=True)
_NUMBER_LOOKUP = {"gte": "gte", "lte": "lte", "eq": "exact"}


def definition_to_q(definition: dict[str, Any], *, now: datetime, workspace_id: int) -> Q:
    return node_to_q(definition["root"], now=now, workspace_id=workspace_id)


def node_to_q(node: dict[str, Any], *, now: datetime, workspace_id: int) -> Q:
    if "and" in node:
        combined = node_to_q(node["and"][0], now=now, workspace_id=workspace_id)
        for child in node["and"][1:]:
            combined &= node_to_q(child, now=now, workspace_id=workspace_id)
        return combined
    if "or" in node:
        combined = node_to_q(node["or"][0], now=now, workspace_id=workspace_id)
        for child in node["or"][1:]:
            combined |= node_to_q(child, now=now, workspace_id=workspace_id)
        return combined
    if "not" in node:
        return ~node_to_q(node["not"], now=now, workspace_id=workspace_id)
    op = node["op"]
    if op in NEGATED:
        return ~_leaf_to_q({**node, "op": NEGATED[op]}, now, workspace_id)
    return _leaf_to_q(node, now, workspace_id)


def _number(op: str, value: int) -> dict[str, int]:
    return {_NUMBER_LOOKUP[op]: value}


def _leaf_to_q(node: dict[str, Any], now: datetime, workspace_id: int) -> Q:
    name, op, value = node["field"], node["op"], node.get("value")
    if name in ATTRIBUTE_FIELDS:
        # The columns are NOT NULL (blank is ""), so a plain negation is exact.
        return Q(**{name: value}) if op == "eq" else Q(**{f"{name}__in": value})
    if name in TIME_FIELDS:
        start = now - timedelta(days=value)
        return Q(**{f"{name}__gte": start}) if op == "within_days" else Q(**{f"{name}__lt": start})
    if name == "attribute":
        if op == "exists":
            return Q(attributes__has_key=node["key"])
        # Through an EXISTS on the same row: a plain ~Q over a JSON key would also drop customers whose
        # key is missing (SQL NULL) from the negation, which Python counts as "not equal".
        same = Customer.objects.filter(pk=OuterRef("pk")).alias(_value=KeyTransform(node["key"], "attributes"))
        return Q(Exists(same.filter(_value=value)))
    if name == "tag":
        return Q(Exists(CustomerTag.objects.filter(customer_id=OuterRef("pk"), tag_id=value)))
    if name in LAYER_FIELDS:
        return Q(Exists(CustomerScore.objects.filter(customer_id=OuterRef("pk"), **{f"{name}__in": value})))
    if name in SCORE_NUMBER_FIELDS:
        # recency_days is NULL for customers who never ordered: a comparison with NULL matches nothing.
        return Q(Exists(CustomerScore.objects.filter(customer_id=OuterRef("pk"),
                                                     **{f"{name}__{k}": v for k, v in _number(op, value).items()})))
    if name == "tier":
        has = Q(Exists(CustomerTier.objects.filter(customer_id=OuterRef("pk"), code__in=value)))
        if "normal" in value:  # no tier row means 普通
            return has | ~Q(Exists(CustomerTier.objects.filter(customer_id=OuterRef("pk"))))
        return has
    if name == "points":
        accounts = PointsAccount.objects.filter(customer_id=OuterRef("pk"))
        has = Q(Exists(accounts.filter(**{f"balance__{k}": v for k, v in _number(op, value).items()})))
        if compare(0, op, value):  # no account means a balance of 0
            return has | ~Q(Exists(accounts))
        return has
    if name == "community":
        members = CommunityMember.objects.filter(customer_id=OuterRef("pk"), left_at__isnull=True)
        return Q(Exists(members if value is None else members.filter(community_id=value)))
    if name == "event":
        return _event_to_q(node, now, workspace_id)
    raise AssertionError(f"unvalidated field {name}")


def _events(node: dict[str, Any], now: datetime, workspace_id: int) -> QuerySet[Event]:
    events = Event.objects.filter(workspace_id=workspace_id, type=node["type"])
    start = window_start(node, now)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    # Aliases keep property names from ever being read as lookups ("in", "contains", ...).
    for index, (key, expected) in enumerate(node.get("where", {}).items()):
        alias = f"_where_{index}"
        events = events.alias(**{alias: KeyTransform(key, "properties")}).filter(**{alias: expected})
    return events


def _at_least(node: dict[str, Any], now: datetime, workspace_id: int, count: int) -> Q:
    """Customers with at least ``count`` (≥ 1) matching events."""
    events = _events(node, now, workspace_id)
    if count == 1:
        # A plain correlated EXISTS: PostgreSQL plans it as a semi-join (or anti-join under NOT).
        return Q(Exists(events.filter(identity__customer_id=OuterRef("pk"))))
    # Counted per customer once, set-based: the planner hashes the (small) set of qualifying customers
    # instead of counting events again for every customer.
    counted = (events.order_by().values("identity__customer_id").annotate(_matched=Count("*"))
               .filter(_matched__gte=count).values("identity__customer_id"))
    return Q(pk__in=counted)


def _event_to_q(node: dict[str, Any], now: datetime, workspace_id: int) -> Q:
    op, count = node["op"], node["count"]
    if op == "gte":
        return ALWAYS if count == 0 else _at_least(node, now, workspace_id, count)
    if op == "lte":
        return ~_at_least(node, now, workspace_id, count + 1)
    if count == 0:
        return ~_at_least(node, now, workspace_id, 1)
    return _at_least(node, now, workspace_id, count) & ~_at_least(node, now, workspace_id, count + 1)


def segment_queryset(*, workspace: Workspace | int, definition: dict[str, Any], now: datetime,
                     validate: bool = True) -> QuerySet[Customer]:
    """Live customers of the workspace that match ``definition`` at ``now``."""
    if validate:
        definition_validate(definition)
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    return Customer.objects.filter(workspace_id=workspace_id, status=CustomerStatus.ACTIVE).filter(
        definition_to_q(definition, now=now, workspace_id=workspace_id))

