"""Each leaf kind against the database with explicit expectations, bad definitions refused with codes,
and the readable Chinese text."""

from __future__ import annotations

from datetime import timedelta

import pytest

from siyu.core.errors import SiyuError
from siyu.customers.models import Customer, CustomerStatus
from siyu.engagement.segments.compiler import segment_queryset
from siyu.engagement.segments.conditions import (
    CustomerFacts,
    EventFact,
    ScoreFacts,
    definition_describe,
    definition_evaluate,
    definition_validate,
)
from tests.engagement.segments.factories import communities_make, customer_make, tags_make


def _leaf(**leaf):
    return {"version": 1, "root": leaf}


def _ids(workspace, definition, now):
    return set(segment_queryset(workspace=workspace, definition=definition, now=now).values_list("pk", flat=True))


BAD = [
    ({"root": {"field": "city", "op": "eq", "value": "上海"}}, "segment_bad_version", "version"),
    ({"version": 1}, "segment_empty", "root"),
    ({"version": 1, "root": {"and": []}}, "segment_empty_group", "root.and"),
    ({"version": 1, "root": {"or": [{"field": "color", "op": "eq", "value": "x"}]}}, "segment_bad_field",
     "root.or[0].field"),
    ({"version": 1, "root": {"field": "tag", "op": "eq", "value": 1}}, "segment_bad_operator", "root.op"),
    ({"version": 1, "root": {"not": {"field": "event", "type": "product_view", "op": "gte", "count": -1}}},
     "segment_bad_value", "root.not.count"),
    ({"version": 1, "root": {"field": "event", "type": "product view", "op": "gte", "count": 1}}, "segment_bad_event",
     "root.type"),
    ({"version": 1, "root": {"field": "event", "type": "order_paid", "op": "gte", "count": 1, "days": 0}},
     "segment_bad_value", "root.days"),
    ({"version": 1, "root": {"field": "event", "type": "order_paid", "op": "gte", "count": 1, "where": {"a b": 1}}},
     "segment_bad_property", "root.where.a b"),
    ({"version": 1, "root": {"field": "tier", "op": "in", "value": ["platinum"]}}, "segment_bad_value", "root.value"),
    ({"version": 1, "root": {"field": "attribute", "op": "eq", "key": "x", "value": True}}, "segment_bad_value",
     "root.value"),
    ({"version": 1, "root": {"field": "city", "op": "eq", "value": "上海", "extra": 1}}, "segment_unknown_key", "root"),
    ({"version": 1, "root": {"and": [{"field": "city", "op": "eq", "value": "x"}], "or": []}}, "segment_unknown_key",
     "root"),
    ({"version": 1, "root": [1]}, "segment_not_object", "root"),
]


@pytest.mark.parametrize(("definition", "code", "path"), BAD)
def test_bad_definitions_are_refused_with_codes(definition, code, path):
    with pytest.raises(SiyuError) as caught:
        definition_validate(definition)
    assert caught.value.code == code
    assert caught.value.details["path"] == path
    assert caught.value.status == 400
    assert "分群条件无效" in caught.value.message_zh and "Invalid segment condition" in caught.value.message_en


def test_too_deep_and_too_large_are_refused():
    node = {"field": "city", "op": "eq", "value": "x"}
    for _ in range(10):
        node = {"not": node}
    with pytest.raises(SiyuError) as caught:
        definition_validate({"version": 1, "root": node})
    assert caught.value.code == "segment_too_deep"
    wide = {"or": [{"and": [{"field": "city", "op": "eq", "value": str(i)}] * 30} for i in range(3)]}
    with pytest.raises(SiyuError) as caught:
        definition_validate({"version": 1, "root": wide})
    assert caught.value.code == "segment_too_large"


def test_readable_text():
    definition = {"version": 1, "root": {"and": [
        {"field": "event", "type": "product_view", "op": "gte", "count": 2, "days": 7},
        {"or": [{"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                {"not": {"field": "tag", "op": "has", "value": 5}}]},
        {"field": "event", "type": "order_paid", "op": "eq", "count": 0}]}}
    labels = {"product_view": "浏览商品", "order_paid": "下单", "gold": "金卡", "diamond": "钻石", 5: "高意向"}
    text = definition_describe(definition, label=lambda _field, raw: labels.get(raw, str(raw)))
    assert text == "近 7 天 浏览商品 ≥ 2 次 且 (会员等级 属于 金卡、钻石 或 非 有标签「高意向」) 且 没有 下单"
    english = definition_describe(definition, english=True, label=lambda _f, raw: str(raw))
    assert english.startswith("product_view ≥ 2 times in the last 7 days and (")


@pytest.mark.django_db
def test_events_count_through_every_identity_and_window(workspace, other_workspace, now):
    three = CustomerFacts(events=tuple(EventFact("product_view", now - timedelta(days=d), {"product_id": "p1"})
                                       for d in (1, 2, 3)))
    old = CustomerFacts(events=(EventFact("product_view", now - timedelta(days=20), {"product_id": "p1"}),))
    a = customer_make(workspace, three, now=now, identities=3)
    b = customer_make(workspace, old, now=now)
    foreign = customer_make(other_workspace, three, now=now)
    at_least_two = _leaf(field="event", type="product_view", op="gte", count=2, days=7, where={"product_id": "p1"})
    assert _ids(workspace, at_least_two, now) == {a.pk}
    none_in_week = _leaf(field="event", type="product_view", op="eq", count=0, days=7)
    assert _ids(workspace, none_in_week, now) == {b.pk}
    exactly_three = _leaf(field="event", type="product_view", op="eq", count=3)
    assert _ids(workspace, exactly_three, now) == {a.pk}
    other_product = _leaf(field="event", type="product_view", op="gte", count=1, where={"product_id": "p2"})
    assert _ids(workspace, other_product, now) == set()
    at_most_one = _leaf(field="event", type="product_view", op="lte", count=1)
    assert _ids(workspace, at_most_one, now) == {b.pk}
    assert foreign.pk not in _ids(other_workspace, none_in_week, now)


@pytest.mark.django_db
def test_no_row_defaults_tier_points_score(workspace, now):
    bare = customer_make(workspace, CustomerFacts(), now=now)
    gold = customer_make(workspace, CustomerFacts(tier="gold", points=30, score=ScoreFacts(rfm5="high",
                                                                                          lifecycle="active")), now=now)
    assert _ids(workspace, _leaf(field="tier", op="in", value=["normal"]), now) == {bare.pk}
    assert _ids(workspace, _leaf(field="tier", op="not_in", value=["normal"]), now) == {gold.pk}
    assert _ids(workspace, _leaf(field="points", op="lte", value=10), now) == {bare.pk}
    assert _ids(workspace, _leaf(field="points", op="gte", value=10), now) == {gold.pk}
    assert _ids(workspace, _leaf(field="rfm5", op="in", value=["high"]), now) == {gold.pk}
    assert _ids(workspace, _leaf(field="lifecycle", op="not_in", value=["active"]), now) == {bare.pk}
    # Never ordered (no recency) matches no comparison on R.
    assert _ids(workspace, _leaf(field="recency_days", op="gte", value=0), now) == set()


@pytest.mark.django_db
def test_tags_communities_attributes(workspace, now):
    tag = tags_make(workspace, 1)[0]
    vip, other = communities_make(workspace, 2)
    tagged = customer_make(workspace, CustomerFacts(tag_ids=frozenset({tag.pk}), community_ids=frozenset({vip.pk}),
                                                    attributes={"level": 3, "vip": "yes"}), now=now)
    left = customer_make(workspace, CustomerFacts(attributes={"level": "3"}), now=now, left_community_ids=[vip.pk])
    assert _ids(workspace, _leaf(field="tag", op="has", value=tag.pk), now) == {tagged.pk}
    assert _ids(workspace, _leaf(field="tag", op="has_not", value=tag.pk), now) == {left.pk}
    assert _ids(workspace, _leaf(field="community", op="member", value=vip.pk), now) == {tagged.pk}
    assert _ids(workspace, _leaf(field="community", op="member", value=None), now) == {tagged.pk}
    assert _ids(workspace, _leaf(field="community", op="not_member", value=other.pk), now) == {tagged.pk, left.pk}
    assert _ids(workspace, _leaf(field="attribute", op="eq", key="level", value=3), now) == {tagged.pk}
    assert _ids(workspace, _leaf(field="attribute", op="eq", key="level", value="3"), now) == {left.pk}
    assert _ids(workspace, _leaf(field="attribute", op="ne", key="vip", value="yes"), now) == {left.pk}
    assert _ids(workspace, _leaf(field="attribute", op="exists", key="vip"), now) == {tagged.pk}


@pytest.mark.django_db
def test_attributes_times_and_merged_customers(workspace, now):
    shanghai = customer_make(workspace, CustomerFacts(city="上海", gender="female", first_channel="store",
                                                      first_seen_at=now - timedelta(days=40),
                                                      last_seen_at=now - timedelta(days=1)), now=now)
    merged = customer_make(workspace, CustomerFacts(city="上海"), now=now)
    Customer.objects.filter(pk=merged.pk).update(status=CustomerStatus.MERGED, merged_into=shanghai)
    assert _ids(workspace, _leaf(field="city", op="in", value=["上海", "杭州"]), now) == {shanghai.pk}
    assert _ids(workspace, _leaf(field="first_seen_at", op="older_than_days", value=30), now) == {shanghai.pk}
    assert _ids(workspace, _leaf(field="last_seen_at", op="within_days", value=7), now) == {shanghai.pk}
    assert _ids(workspace, _leaf(field="first_channel", op="ne", value="wecom"), now) == {shanghai.pk}
    facts = CustomerFacts(city="上海")
    assert definition_evaluate(_leaf(field="city", op="eq", value="上海"), facts, now=now)
