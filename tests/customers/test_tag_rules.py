"""The rule language: validation with clear codes, pure evaluation, and SQL that agrees with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.customers.models import Customer
from siyu.customers.tag_rules import (
    EventFact,
    RuleInvalid,
    rule_evaluate,
    rule_event_types,
    rule_has_time_window,
    rule_validate,
)
from siyu.customers.tagging import rule_matching_customers
from tests.customers.tag_factories import make_customer, make_event

VIEWED_NOT_PAID = {"all": [
    {"event": "product_view", "min_count": 2, "within_days": 7, "where": {"product_id": "p1"}},
    {"not": {"event": "order_paid", "within_days": 7}},
]}


@pytest.mark.parametrize(("rule", "code", "path"), [
    ([], "rule_not_object", ""),
    ({}, "rule_not_object", ""),
    ({"all": []}, "rule_empty_group", "all"),
    ({"any": "x"}, "rule_empty_group", "any"),
    ({"all": [{"event": "a"}], "any": [{"event": "b"}]}, "rule_unknown_key", ""),
    ({"not": {"bogus": 1}}, "rule_unknown_condition", "not"),
    ({"event": ""}, "rule_bad_event", "event"),
    ({"event": "a", "min_count": 0}, "rule_bad_min_count", "min_count"),
    ({"event": "a", "min_count": True}, "rule_bad_min_count", "min_count"),
    ({"event": "a", "within_days": "7"}, "rule_bad_within_days", "within_days"),
    ({"all": [{"event": "a", "within_days": 0}]}, "rule_bad_within_days", "all[0].within_days"),
    ({"event": "a", "where": []}, "rule_bad_where", "where"),
    ({"event": "a", "where": {"a-b": "x"}}, "rule_bad_property", "where.a-b"),
    ({"event": "a", "where": {"price": 1.5}}, "rule_bad_value", "where.price"),
    ({"event": "a", "where": {"flag": True}}, "rule_bad_value", "where.flag"),
    ({"event": "a", "colour": "red"}, "rule_unknown_key", ""),
    ({"attribute": "phone", "equals": "1"}, "rule_bad_attribute", "attribute"),
    ({"attribute": "city"}, "rule_bad_comparison", ""),
    ({"attribute": "city", "equals": "上海", "in": ["杭州"]}, "rule_bad_comparison", ""),
    ({"attribute": "city", "in": []}, "rule_bad_value", "in"),
    ({"attribute": "city", "equals": 3}, "rule_bad_value", "equals"),
])
def test_invalid_rules_are_refused_with_code_and_path(rule, code, path):
    with pytest.raises(RuleInvalid) as refused:
        rule_validate(rule)
    assert refused.value.code == code
    assert refused.value.details["path"] == path
    assert refused.value.message_zh and refused.value.message_en


def test_too_deep_and_too_large_rules_are_refused():
    deep = {"event": "a"}
    for _ in range(10):
        deep = {"not": deep}
    with pytest.raises(RuleInvalid) as refused:
        rule_validate(deep)
    assert refused.value.code == "rule_too_deep"
    with pytest.raises(RuleInvalid) as refused:
        rule_validate({"any": [{"event": "a"}] * 100})
    assert refused.value.code == "rule_too_large"


def test_example_rule_evaluates(now):
    rule_validate(VIEWED_NOT_PAID)
    day = timedelta(days=1)
    views = [EventFact("product_view", now - day, {"product_id": "p1"}),
             EventFact("product_view", now - 2 * day, {"product_id": "p1"})]
    assert rule_evaluate(VIEWED_NOT_PAID, events=views, attributes={}, now=now)
    # One view of p1 is not enough; a view of p2 does not count.
    assert not rule_evaluate(VIEWED_NOT_PAID, events=[views[0], EventFact("product_view", now, {"product_id": "p2"})],
                             attributes={}, now=now)
    # A payment in the window excludes; an older payment does not; old views do not count.
    assert not rule_evaluate(VIEWED_NOT_PAID, events=[*views, EventFact("order_paid", now - day)], attributes={}, now=now)
    assert rule_evaluate(VIEWED_NOT_PAID, events=[*views, EventFact("order_paid", now - 8 * day)], attributes={},
                         now=now)
    assert not rule_evaluate(VIEWED_NOT_PAID, events=[EventFact("product_view", now - 8 * day, {"product_id": "p1"}),
                                                       views[0]], attributes={}, now=now)


def test_attribute_conditions(now):
    rule = {"any": [{"attribute": "city", "in": ["上海", "杭州"]}, {"attribute": "first_channel", "equals": "wecom"}]}
    rule_validate(rule)
    assert rule_evaluate(rule, events=[], attributes={"city": "杭州"}, now=now)
    assert rule_evaluate(rule, events=[], attributes={"city": "北京", "first_channel": "wecom"}, now=now)
    assert not rule_evaluate(rule, events=[], attributes={"city": "北京"}, now=now)
    assert rule_evaluate({"attribute": "gender", "equals": ""}, events=[], attributes={}, now=now)


def test_rule_introspection():
    assert rule_event_types(VIEWED_NOT_PAID) == {"product_view", "order_paid"}
    assert rule_has_time_window(VIEWED_NOT_PAID)
    assert not rule_has_time_window({"any": [{"event": "a"}, {"attribute": "city", "equals": "x"}]})


# --- the compiled SQL agrees with the pure evaluation ---------------------------------------------

EVENT_TYPES = ["view", "paid"]
PROPERTY_VALUES = ["p1", "p2", "1", 1, 2, 2.0]
CITIES = ["上海", "杭州", ""]

event_leaf = st.builds(
    lambda name, min_count, within, where: {
        "event": name,
        **({"min_count": min_count} if min_count else {}),
        **({"within_days": within} if within else {}),
        **({"where": where} if where else {}),
    },
    st.sampled_from(EVENT_TYPES),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, 1, 2, 5]),
    st.one_of(st.none(), st.fixed_dictionaries({"product_id": st.sampled_from(["p1", "p2", "1", 1, 2])}),
              st.fixed_dictionaries({"product_id": st.sampled_from(["p1", 1]), "in": st.sampled_from(["p1", 2])})),
)
attribute_leaf = st.one_of(
    st.builds(lambda v: {"attribute": "city", "equals": v}, st.sampled_from(CITIES)),
    st.builds(lambda v: {"attribute": "city", "in": v}, st.lists(st.sampled_from(CITIES), min_size=1, max_size=2)),
    st.builds(lambda v: {"attribute": "gender", "equals": v}, st.sampled_from(["female", "male"])),
)
rules = st.recursive(
    st.one_of(event_leaf, attribute_leaf),
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=6,
)
event_specs = st.lists(
    st.tuples(
        st.sampled_from(EVENT_TYPES),
        # Minutes ago, on both sides of whole-day window boundaries (1440 minutes a day).
        st.one_of(st.integers(0, 8 * 1440), st.sampled_from([1440, 2 * 1440, 5 * 1440])),
        st.dictionaries(st.sampled_from(["product_id", "in"]), st.sampled_from(PROPERTY_VALUES), max_size=2),
        st.integers(0, 1),
    ),
    max_size=6,
)
customer_specs = st.lists(
    st.tuples(st.sampled_from(CITIES), st.sampled_from(["female", "male", ""]), event_specs), min_size=1, max_size=4)


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=rules, customers=customer_specs)
def test_compiled_query_agrees_with_pure_evaluation(workspace, now, rule, customers):
    rule_validate(rule)
    with transaction.atomic():
        expected: dict[int, bool] = {}
        for city, gender, events in customers:
            customer, identities = make_customer(workspace, at=now - timedelta(days=30), identities=2, city=city,
                                                 gender=gender)
            facts = []
            for event_type, minutes_ago, properties, identity_index in events:
                at = now - timedelta(minutes=minutes_ago)
                make_event(workspace, identities[identity_index], type=event_type, at=at, **properties)
                facts.append(EventFact(event_type, at, properties))
            expected[customer.pk] = rule_evaluate(rule, events=facts, attributes={"city": city, "gender": gender},
                                                  now=now)
        matched = set(rule_matching_customers(workspace=workspace, rule=rule, now=now).values_list("pk", flat=True))
        assert matched == {pk for pk, hit in expected.items() if hit}
        transaction.set_rollback(True)
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_property_types_compare_like_json(workspace, now):
    """Numbers compare by value (2.0 is 2), a string "2" is not the number 2 — in SQL and in Python alike."""
    rule = {"event": "view", "where": {"product_id": 2}}
    expected = {}
    for value in (2, 2.0, "2", 3, None):
        customer, (identity,) = make_customer(workspace, at=now)
        properties = {} if value is None else {"product_id": value}
        make_event(workspace, identity, type="view", at=now, **properties)
        expected[customer.pk] = rule_evaluate(rule, events=[EventFact("view", now, properties)], attributes={},
                                              now=now)
    assert list(expected.values()) == [True, True, False, False, False]
    matched = set(rule_matching_customers(workspace=workspace, rule=rule, now=now).values_list("pk", flat=True))
    assert matched == {pk for pk, hit in expected.items() if hit}
