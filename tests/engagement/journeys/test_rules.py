"""Pure rules of journeys: definition validation (both languages), deterministic splits, quiet hours and caps
(property-based over many random schedules)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.engagement.journeys import definition as rules
from siyu.engagement.journeys.schedule import (
    after_quiet_hours,
    allowed,
    caps_for,
    in_quiet_hours,
    wait_until,
)

GOOD = {"trigger": {"type": "segment_entered", "segment_id": 1},
        "steps": [{"id": "w", "type": "wait", "minutes": 60, "next": "m"},
                  {"id": "m", "type": "message", "channel": "official_template", "app_id": 1, "template_id": "T1",
                   "data": {"first": "hi"}}]}


def test_a_good_definition_passes():
    assert rules.problems(GOOD) == []


@pytest.mark.parametrize("definition, where", [
    ({"trigger": {}, "steps": GOOD["steps"]}, "trigger"),
    ({"trigger": GOOD["trigger"], "steps": []}, "steps"),
    ({**GOOD, "steps": [{"id": "a", "type": "wait", "minutes": 0}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "teleport"}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "wait", "minutes": 5, "next": "zz"}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "wait", "minutes": 5, "next": "b"},
                        {"id": "b", "type": "wait", "minutes": 5, "next": "a"}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "split", "branches": [{"name": "A", "weight": 1}]}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "route721", "weights": {"auto": 70, "junior": -1, "expert": 10},
                         "title": "x"}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "message", "channel": "official_custom", "app_id": 1}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "webhook", "url": "ftp://x", "secret": "short"}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "points", "amount": "lots"}]}, "a"),
    ({**GOOD, "steps": [{"id": "a", "type": "condition", "check": {"kind": "tag"}, "yes": "", "no": ""}]}, "a"),
    ({**GOOD, "goal": {"event_type": "order_paid", "days": 0}}, "goal"),
    ({"trigger": {"type": "date", "kind": "fixed", "date": "11/11"}, "steps": GOOD["steps"]}, "trigger"),
    ("not a dict", "journey"),
])
def test_bad_definitions_are_refused_with_both_languages(definition, where):
    with pytest.raises(SiyuError) as refused:
        rules.validate(definition)
    problems = refused.value.details["problems"]
    assert refused.value.code == "journey_invalid" and any(p["where"] == where for p in problems)
    assert all(p["zh"] and p["en"] for p in problems)


def test_weighted_choice_is_stable_and_close_to_the_weights():
    picks = Counter(rules.weighted_choice(weights=[("auto", 70), ("junior", 20), ("expert", 10)], key="j1:r",
                                          customer_id=pk) for pk in range(20_000))
    assert abs(picks["auto"] / 20_000 - 0.7) < 0.02 and abs(picks["expert"] / 20_000 - 0.1) < 0.01
    assert all(rules.weighted_choice(weights=[("A", 1), ("B", 1)], key="k", customer_id=pk)
               == rules.weighted_choice(weights=[("A", 1), ("B", 1)], key="k", customer_id=pk) for pk in range(100))


moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda naive: naive.replace(tzinfo=SHANGHAI))
hhmm = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])).map(lambda t: f"{t[0]:02d}:{t[1]:02d}")


@settings(max_examples=400, deadline=None)
@given(moments, hhmm, hhmm)
def test_quiet_hours_defer_never_drop_and_land_outside(moment, start, end):
    due = after_quiet_hours(moment, start=start, end=end)
    assert due >= moment and not in_quiet_hours(due, start=start, end=end)
    assert due - moment <= timedelta(days=1)
    if not in_quiet_hours(moment, start=start, end=end):
        assert due == moment


@settings(max_examples=200, deadline=None)
@given(moments)
def test_default_quiet_hours_are_22_to_8_shanghai(moment):
    local = moment.astimezone(SHANGHAI)
    assert in_quiet_hours(moment) == (local.hour >= 22 or local.hour < 8)
    due = after_quiet_hours(moment)
    if due != moment:
        assert due.astimezone(SHANGHAI).hour == 8 and due.astimezone(SHANGHAI).minute == 0


@settings(max_examples=200, deadline=None)
@given(moments, st.integers(0, 6) | st.none(), hhmm)
def test_wait_until_a_weekday_and_time_is_the_next_such_moment(moment, weekday, at):
    done = wait_until(moment, {"until": {"weekday": weekday, "time": at}})
    local = done.astimezone(SHANGHAI)
    assert done > moment and done - moment <= timedelta(days=7 if weekday is not None else 1)
    assert local.strftime("%H:%M") == at and (weekday is None or local.weekday() == weekday)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=120), st.integers(1, 3), st.integers(1, 7))
def test_caps_never_exceeded_for_any_schedule(days, day_cap, week_cap):
    """Messages requested on random days (in random order, like deferred ones) never break either cap."""
    caps = {"day": day_cap, "week": max(week_cap, day_cap)}
    start = date(2026, 11, 1)
    placed: Counter = Counter()
    for offset in days:
        day = start + timedelta(days=offset)
        if allowed(day_count=placed[day], week_counts=placed, day=day, caps=caps):
            placed[day] += 1
    for day in placed:
        assert placed[day] <= caps["day"]
        assert sum(n for d, n in placed.items() if day - timedelta(days=6) <= d <= day) <= caps["week"]


def test_caps_defaults_and_overrides():
    assert caps_for("official_template", None) == {"day": 1, "week": 3}
    assert caps_for("official_template", {"official_template": {"day": 2, "week": 4}}) == {"day": 2, "week": 4}
