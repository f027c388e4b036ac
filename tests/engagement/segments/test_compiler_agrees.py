"""The issue's property: a condition tree compiled to SQL selects exactly the customers the plain-Python
evaluator accepts, for random customers and random trees (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.engagement.segments.compiler import segment_queryset
from siyu.engagement.segments.conditions import (
    CustomerFacts,
    EventFact,
    ScoreFacts,
    definition_evaluate,
    definition_validate,
)
from tests.engagement.segments.factories import communities_make, customer_make, tags_make

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=123456)
GENDERS = ["", "male", "female"]
CITIES = ["", "上海", "杭州"]
CHANNELS = ["", "store", "wecom"]
LAYERS = ["", "high", "low"]
STAGES = ["new", "active", "silent", "churned"]
TIERS = ["normal", "silver", "gold", "diamond"]
EVENT_TYPES = ["product_view", "order_paid"]
JSON_VALUES = st.sampled_from(["a", "b", "1", 1, 2, 2.0, None])
DAYS = st.sampled_from([1, 7, 30])


def _at(days: int, hours: int) -> object:
    return NOW - timedelta(days=days, hours=hours)


event_facts = st.builds(
    EventFact,
    type=st.sampled_from(EVENT_TYPES),
    occurred_at=st.builds(_at, st.integers(0, 40), st.integers(0, 23)),
    properties=st.dictionaries(st.sampled_from(["product_id", "qty"]), JSON_VALUES, max_size=2),
)
scores = st.builds(ScoreFacts, rfm5=st.sampled_from(LAYERS), rfm6=st.sampled_from(LAYERS),
                   lifecycle=st.sampled_from(STAGES), recency_days=st.none() | st.integers(0, 60),
                   frequency=st.integers(0, 4), monetary_fen=st.integers(0, 500))


@st.composite
def customers(draw, tag_ids, community_ids):
    states = {cid: draw(st.sampled_from(["none", "member", "left"])) for cid in community_ids}
    facts = CustomerFacts(
        gender=draw(st.sampled_from(GENDERS)), city=draw(st.sampled_from(CITIES)),
        first_channel=draw(st.sampled_from(CHANNELS)),
        first_seen_at=draw(st.builds(_at, st.integers(0, 60), st.integers(0, 23))),
        last_seen_at=draw(st.builds(_at, st.integers(0, 60), st.integers(0, 23))),
        attributes=draw(st.dictionaries(st.sampled_from(["vip", "level"]), JSON_VALUES, max_size=2)),
        tag_ids=frozenset(draw(st.sets(st.sampled_from(tag_ids)))),
        score=draw(st.none() | scores), tier=draw(st.none() | st.sampled_from(TIERS)),
        points=draw(st.none() | st.integers(0, 50)),
        community_ids=frozenset(cid for cid, state in states.items() if state == "member"),
        events=tuple(draw(st.lists(event_facts, max_size=6))),
    )
    return facts, [cid for cid, state in states.items() if state == "left"]


def leaves(tag_ids, community_ids):
    scalar = st.sampled_from(["a", "b", "1", 1, 2])
    return st.one_of(
        st.builds(lambda f, op, v: {"field": f, "op": op, "value": v}, st.sampled_from(["gender", "city", "first_channel"]),
                  st.sampled_from(["eq", "ne"]), st.sampled_from(GENDERS + CITIES + CHANNELS)),
        st.builds(lambda f, op, v: {"field": f, "op": op, "value": v}, st.sampled_from(["gender", "city", "first_channel"]),
                  st.sampled_from(["in", "not_in"]), st.lists(st.sampled_from(GENDERS + CITIES + CHANNELS), min_size=1,
                                                               max_size=3)),
        st.builds(lambda f, op, v: {"field": f, "op": op, "value": v}, st.sampled_from(["first_seen_at", "last_seen_at"]),
                  st.sampled_from(["within_days", "older_than_days"]), DAYS),
        st.builds(lambda op, k, v: {"field": "attribute", "op": op, "key": k, "value": v},
                  st.sampled_from(["eq", "ne"]), st.sampled_from(["vip", "level"]), scalar),
        st.builds(lambda op, k: {"field": "attribute", "op": op, "key": k}, st.sampled_from(["exists", "not_exists"]),
                  st.sampled_from(["vip", "level"])),
        st.builds(lambda op, v: {"field": "tag", "op": op, "value": v}, st.sampled_from(["has", "has_not"]),
                  st.sampled_from(tag_ids)),
        st.builds(lambda f, op, v: {"field": f, "op": op, "value": v}, st.sampled_from(["rfm5", "rfm6"]),
                  st.sampled_from(["in", "not_in"]), st.lists(st.sampled_from(["high", "low"]), min_size=1, max_size=2)),
        st.builds(lambda op, v: {"field": "lifecycle", "op": op, "value": v}, st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(STAGES), min_size=1, max_size=2)),
        st.builds(lambda f, op, v: {"field": f, "op": op, "value": v},
                  st.sampled_from(["recency_days", "frequency", "monetary_fen", "points"]),
                  st.sampled_from(["gte", "lte", "eq"]), st.integers(0, 40)),
        st.builds(lambda op, v: {"field": "tier", "op": op, "value": v}, st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(TIERS), min_size=1, max_size=2)),
        st.builds(lambda op, v: {"field": "community", "op": op, "value": v}, st.sampled_from(["member", "not_member"]),
                  st.none() | st.sampled_from(community_ids)),
        st.builds(_event_leaf, st.sampled_from(EVENT_TYPES), st.sampled_from(["gte", "lte", "eq"]), st.integers(0, 3),
                  st.none() | DAYS, st.dictionaries(st.sampled_from(["product_id", "qty"]), scalar, max_size=1)),
    )


def _event_leaf(kind, op, count, days, where):
    leaf = {"field": "event", "type": kind, "op": op, "count": count}
    if days is not None:
        leaf["days"] = days
    if where:
        leaf["where"] = where
    return leaf


def trees(tag_ids, community_ids):
    return st.recursive(
        leaves(tag_ids, community_ids),
        lambda children: st.one_of(
            st.builds(lambda items: {"and": items}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda items: {"or": items}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda child: {"not": child}, children)),
        max_leaves=6)


@pytest.fixture
def universe(workspace):
    return ([tag.pk for tag in tags_make(workspace, 3)], [row.pk for row in communities_make(workspace, 2)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_compiled_query_agrees_with_evaluator(workspace, universe, data):
    tag_ids, community_ids = universe
    population = data.draw(st.lists(customers(tag_ids, community_ids), min_size=1, max_size=5), label="customers")
    definitions = [{"version": 1, "root": root}
                   for root in data.draw(st.lists(trees(tag_ids, community_ids), min_size=1, max_size=6),
                                         label="trees")]
    with transaction.atomic():
        made = [(customer_make(workspace, facts, now=NOW, left_community_ids=left), facts) for facts, left in population]
        for definition in definitions:
            definition_validate(definition)
            expected = {customer.pk for customer, facts in made if definition_evaluate(definition, facts, now=NOW)}
            actual = set(segment_queryset(workspace=workspace, definition=definition, now=NOW)
                         .values_list("pk", flat=True))
            assert actual == expected, definition
        transaction.set_rollback(True)
