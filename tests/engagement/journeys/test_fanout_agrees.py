"""The set-based planner (``fanout``) gives every run exactly the plan the per-run path (``engine``) gives it,
for every message channel: same message status, reason, due time, cap day, payload and idempotency key, same
step execution outcome and the same run afterwards (PostgreSQL — the fan-out is PostgreSQL only).

Table-driven over channels × (daytime / quiet hours) × (account active / disabled); each case builds a
mixed population (its own random seed): consent never given / granted / withdrawn / withdrawn then granted again, openid or not,
following / unfollowed / never followed, last message 1 h / 47 h / 49 h ago or never, earlier counted and
uncounted messages spread over the days around the cap day, one or two runs per customer (two entry keys),
and merged customers. Both planners run on the same rows (each inside a rolled-back savepoint).
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import transaction

from siyu.core.timeutil import local_day
from siyu.customers.models import ConsentRecord, Customer, Identity
from siyu.engagement.journeys import engine, fanout, services
from siyu.engagement.journeys.models import (
    JourneyMessage,
    JourneyRun,
    JourneySettings,
    MessageStatus,
    StepExecution,
)
from siyu.engagement.segments.models import Segment
from siyu.wechat.models import WeChatApp
from siyu.wechat.official.models import Follower
from tests.engagement.journeys.conftest import NOON

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

QUIET = NOON.replace(hour=23)  # deferred to 08:00 the next day
CHANNELS = ("official_template", "official_custom", "miniapp_subscribe", "wecom_mass")
STATUSES = [MessageStatus.PLANNED, MessageStatus.DEFERRED, MessageStatus.SENT, MessageStatus.CAPPED,
            MessageStatus.SUPPRESSED, MessageStatus.FAILED]


def _app(workspace, channel: str) -> WeChatApp:
    kind = {"miniapp_subscribe": "miniapp", "wecom_mass": "work"}.get(channel, "official")
    return WeChatApp.objects.create(workspace=workspace, kind=kind, appid=f"wx{kind}agrees", name=kind,
                                    secrets_enc=b"")


def _step(channel: str, app: WeChatApp, step_id: str, following: str) -> dict:
    step = {"id": step_id, "type": "message", "channel": channel, "app_id": app.pk, "next": following}
    if channel in ("official_template", "miniapp_subscribe"):
        step.update(template_id="TPL_agree", data={"first": "新品上市"}, url="https://shop.example/n")
        if channel == "miniapp_subscribe":
            step["page"] = "pages/index"
    else:
        step["text"] = "您好，新品到了"
    return step


def _population(workspace, app: WeChatApp, channel: str, now, seed: int, *, earlier_journey,
                size: int = 30) -> list[tuple]:
    """Customers with random reachability, consent and message history; returns (customer, entry keys)."""
    rng = random.Random(seed)
    day = local_day(now)
    made = []
    for index in range(size):
        # the first few are fixed so every case has them: a merged customer, and reachable customers with
        # two runs (the second is over the daily cap); the rest are random
        fixed = index < 4
        customer = Customer.objects.create(workspace=workspace, first_seen_at=now, last_seen_at=now,
                                           status="merged" if index == 0 or rng.random() < 0.05 else "active")
        if fixed or rng.random() < 0.85:
            openid = f"o{seed}-{index}"
            Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=app.appid,
                                    value=openid, first_seen_at=now, last_seen_at=now)
            if rng.random() < 0.15:  # a second openid of the same account (merged people)
                Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=app.appid,
                                        value=f"{openid}b", first_seen_at=now, last_seen_at=now)
                Follower.objects.create(workspace=workspace, app=app, openid=f"{openid}b", subscribed=True,
                                        last_interaction_at=rng.choice([None, now - timedelta(hours=50)]))
            state = "following" if fixed else rng.choice(["following", "following", "following", "unfollowed",
                                                          "never"])
            if state != "never":
                Follower.objects.create(
                    workspace=workspace, app=app, openid=openid, customer=customer, subscribed=state == "following",
                    last_interaction_at=now - timedelta(hours=1) if fixed else rng.choice(
                        [None, now - timedelta(hours=1), now - timedelta(hours=47), now - timedelta(hours=49)]))
        consent = "none" if fixed else rng.choice(["none", "none", "granted", "withdrawn", "back"])
        if consent != "none":
            ConsentRecord.objects.create(workspace=workspace, customer=customer, purpose="marketing",
                                         granted=consent == "granted" or consent == "back",
                                         recorded_at=now - timedelta(days=3))
            if consent == "back":
                ConsentRecord.objects.create(workspace=workspace, customer=customer, purpose="marketing",
                                             granted=False, recorded_at=now - timedelta(days=5))
        for offset in [] if fixed else rng.sample(range(-8, 9), rng.choice([0, 0, 1, 2, 3])):
            run = JourneyRun.objects.create(workspace=workspace, journey=earlier_journey, version=1,
                                            customer=customer, entry_key=f"old{offset}", status="completed",
                                            current_step="", entered_at=now)
            other = channel if rng.random() < 0.8 else next(c for c in CHANNELS if c != channel)
            JourneyMessage.objects.create(
                workspace=workspace, journey=earlier_journey, run=run, step_id="m1", customer=customer,
                channel=other, status=rng.choice(STATUSES), idempotency_key=f"old-{seed}-{run.pk}", payload={},
                due_at=now, cap_day=day + timedelta(days=offset), created_at=now)
        made.append((customer, ["once", "again"] if fixed or rng.random() < 0.2 else ["once"]))
    return made


def _snapshot(journey) -> dict:
    messages = {m.run_id: (m.customer_id, m.channel, m.status, m.error, m.due_at, m.cap_day, m.payload,
                           m.idempotency_key, m.step_id)
                for m in JourneyMessage.objects.filter(journey=journey)}
    executions = {(e.run_id, e.step_id): (e.step_type, e.outcome)
                  for e in StepExecution.objects.filter(run__journey=journey)}
    runs = {r.pk: (r.status, r.current_step, r.next_at, r.finished_at, r.error)
            for r in JourneyRun.objects.filter(journey=journey)}
    return {"messages": messages, "executions": executions, "runs": runs}


def _plan(journey, now, *, set_based: bool, monkeypatch) -> dict:
    monkeypatch.setattr(fanout, "FANOUT_MIN", 1 if set_based else 10**9)
    with transaction.atomic():
        engine.runs_process(now=now, limit=10_000)
        used_fanout = StepExecution.objects.filter(run__journey=journey, detail__fanout=True).exists()
        snapshot = _snapshot(journey)
        transaction.set_rollback(True)
    assert used_fanout == set_based
    return snapshot


CASES = [pytest.param(channel, now, True, id=f"{channel}-{label}") for channel in CHANNELS
         for now, label in ((NOON, "day"), (QUIET, "quiet-hours"))]
CASES += [pytest.param(channel, NOON, False, id=f"{channel}-account-disabled") for channel in CHANNELS]


@pytest.mark.parametrize(("channel", "now", "app_active"), CASES)
def test_set_based_and_per_run_planning_agree(workspace, channel, now, app_active, monkeypatch):
    seed = CHANNELS.index(channel) * 2 + (now == QUIET)
    app = _app(workspace, channel)
    # tight caps so that earlier messages and a customer's second run get capped
    JourneySettings.objects.update_or_create(workspace=workspace, defaults={"caps": {channel: {"day": 1, "week": 2}}})
    segment = Segment.objects.create(workspace=workspace, name="全部", definition={})
    trigger = {"type": "segment_entered", "segment_id": segment.pk, "include_existing": False}
    earlier = services.journey_create(workspace=workspace, name="早先", now=NOON, definition={
        "trigger": trigger, "steps": [_step(channel, app, "m1", "")]})
    journey = services.journey_create(workspace=workspace, name="新品", now=NOON, definition={
        "trigger": trigger, "steps": [_step(channel, app, "m1", "w1"), {"id": "w1", "type": "wait", "minutes": 60,
                                                                           "next": "m2"},
                                      _step(channel, app, "m2", "")]})
    journey = services.journey_activate(workspace=workspace, journey_id=journey.pk, now=NOON)
    people = _population(workspace, app, channel, now, seed, earlier_journey=earlier, size=30 if app_active else 8)
    if not app_active:
        WeChatApp.objects.filter(pk=app.pk).update(is_active=False)
    for customer, keys in people:
        for key in keys:
            JourneyRun.objects.create(workspace=workspace, journey=journey, version=journey.version,
                                      customer=customer, entry_key=key, current_step="m1", next_at=now,
                                      entered_at=now)

    per_run = _plan(journey, now, set_based=False, monkeypatch=monkeypatch)
    set_based = _plan(journey, now, set_based=True, monkeypatch=monkeypatch)

    assert set_based == per_run
    statuses = {row[2] for row in per_run["messages"].values()}
    # the population really exercises the guards (not a table of identical rows)
    if app_active:
        assert MessageStatus.SUPPRESSED in statuses
        assert {MessageStatus.PLANNED, MessageStatus.DEFERRED} & statuses
        assert MessageStatus.CAPPED in statuses
        assert any(run[0] == "exited" for run in per_run["runs"].values())  # merged customers
    else:
        assert statuses == {MessageStatus.SUPPRESSED}
    if now == QUIET:
        assert MessageStatus.PLANNED not in statuses
    reasons = {row[3] for row in per_run["messages"].values()}
    if app_active and channel == "official_custom":
        assert any("48" in reason for reason in reasons)
    if app_active and channel in ("official_template", "official_custom"):
        assert any("not following" in reason for reason in reasons)


def test_second_fan_out_pass_plans_nothing_again(workspace, monkeypatch):
    """Exactly once: a replayed fan-out (another worker, a retried tick) finds no run left at the step."""
    app = _app(workspace, "official_custom")
    segment = Segment.objects.create(workspace=workspace, name="全部", definition={})
    journey = services.journey_create(workspace=workspace, name="客服消息", now=NOON, definition={
        "trigger": {"type": "segment_entered", "segment_id": segment.pk, "include_existing": False},
        "steps": [_step("official_custom", app, "m1", "")]})
    journey = services.journey_activate(workspace=workspace, journey_id=journey.pk, now=NOON)
    for index in range(5):
        customer = Customer.objects.create(workspace=workspace, first_seen_at=NOON, last_seen_at=NOON)
        Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=app.appid,
                                value=f"oc{index}", first_seen_at=NOON, last_seen_at=NOON)
        Follower.objects.create(workspace=workspace, app=app, openid=f"oc{index}", customer=customer, subscribed=True,
                                last_interaction_at=NOON - timedelta(hours=2))
        JourneyRun.objects.create(workspace=workspace, journey=journey, version=journey.version, customer=customer,
                                  entry_key="once", current_step="m1", next_at=NOON, entered_at=NOON)
    assert fanout.fanout_chunk(journey_id=journey.pk, version=journey.version, step_id="m1", now=NOON) == 5
    assert fanout.fanout_chunk(journey_id=journey.pk, version=journey.version, step_id="m1", now=NOON) == 0
    assert JourneyMessage.objects.filter(journey=journey, status=MessageStatus.PLANNED).count() == 5
    assert StepExecution.objects.filter(run__journey=journey, step_id="m1").count() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("channel", ["official_custom", "miniapp_subscribe", "wecom_mass"])
def test_caps_hold_with_set_based_and_per_run_workers_racing(workspace, channel, monkeypatch):
    """Two workers plan set-based and two run by run, at the same moments, over six journeys that each want
    three messages a day apart for the same customers: the daily and weekly caps hold, each step once."""
    from collections import Counter

    from django.db.models import Count

    from siyu.engagement.journeys.models import CAP_COUNTED
    from tests.concurrency import run_together

    monkeypatch.setattr(fanout, "FANOUT_MIN", 1)
    app = _app(workspace, channel)
    JourneySettings.objects.update_or_create(workspace=workspace, defaults={"caps": {channel: {"day": 1, "week": 3}}})
    customers = []
    for index in range(5):
        customer = Customer.objects.create(workspace=workspace, first_seen_at=NOON, last_seen_at=NOON)
        Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=app.appid,
                                value=f"or{index}", first_seen_at=NOON, last_seen_at=NOON)
        Follower.objects.create(workspace=workspace, app=app, openid=f"or{index}", customer=customer,
                                subscribed=True, last_interaction_at=NOON + timedelta(days=10))  # window open
        customers.append(customer)
    segment = Segment.objects.create(workspace=workspace, name="全部", definition={})
    journeys = []
    for index in range(6):
        journey = services.journey_create(workspace=workspace, name=f"旅程{index}", now=NOON, definition={
            "trigger": {"type": "segment_entered", "segment_id": segment.pk, "include_existing": False},
            "steps": [_step(channel, app, "m1", "w1"), {"id": "w1", "type": "wait", "minutes": 1440, "next": "m2"},
                      _step(channel, app, "m2", "w2"), {"id": "w2", "type": "wait", "minutes": 1440, "next": "m3"},
                      _step(channel, app, "m3", "")]})
        journeys.append(services.journey_activate(workspace=workspace, journey_id=journey.pk, now=NOON))
        engine.runs_enter(journey=journeys[-1], customer_ids=[c.pk for c in customers], now=NOON)
    assert JourneyRun.objects.count() == 30
    per_run, set_based = [j.pk for j in journeys[:3]], [j.pk for j in journeys[3:]]
    moment = NOON
    while moment <= NOON + timedelta(days=4):
        def work(index: int, now=moment) -> None:
            # journeys 0–2 run by run, 3–5 set-based: both paths compete for the same customers' caps
            for _ in range(3):
                if index % 2:
                    for journey_id, version, step_id, _n in fanout.fanout_groups(now=now):
                        if journey_id in set_based:
                            fanout.fanout_chunk(journey_id=journey_id, version=version, step_id=step_id, now=now)
                    for run_id in JourneyRun.objects.filter(journey_id__in=set_based, status="active", next_at__lte=now,
                                                            ).exclude(current_step__startswith="m").values_list(
                                                                "pk", flat=True):
                        engine.run_advance(run_id=run_id, now=now)  # the waits
                else:
                    for run_id in JourneyRun.objects.filter(journey_id__in=per_run, status="active",
                                                            next_at__lte=now).values_list("pk", flat=True)[:7]:
                        engine.run_advance(run_id=run_id, now=now)

        assert run_together(4, work) == []
        moment += timedelta(hours=6)
    assert not JourneyRun.objects.filter(status="active", next_at__lte=moment).exists()
    assert not StepExecution.objects.values("run_id", "step_id").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert StepExecution.objects.filter(run__journey_id__in=set_based, step_type="message",
                                        detail__fanout=True).count() == 45
    assert not StepExecution.objects.filter(run__journey_id__in=per_run, detail__fanout=True).exists()
    counted = JourneyMessage.objects.filter(status__in=CAP_COUNTED, channel=channel)
    per_day = Counter((m.customer_id, m.cap_day) for m in counted)
    assert per_day and max(per_day.values()) == 1
    for customer in customers:
        days = sorted(day for (cid, day) in per_day if cid == customer.pk)
        for day in days:
            assert sum(1 for d in days if day - timedelta(days=6) <= d <= day) <= 3
    assert JourneyMessage.objects.filter(status=MessageStatus.CAPPED).exists()
    assert JourneyMessage.objects.count() == 90  # every message step of every run planned exactly once
