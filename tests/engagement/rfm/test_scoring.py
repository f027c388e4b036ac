"""Set-based scoring equals a plain-Python computation on random customers; moves are recorded and published
exactly once; refunds lower M and F; paid/refunded orders re-score their customer."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.commerce.orders.events import ORDER_PAID, ORDER_REFUNDED
from siyu.core.domain_events import publish, subscribe, unsubscribe
from siyu.customers.identity import customer_merge
from siyu.engagement.rfm.events import LAYER_CHANGED
from siyu.engagement.rfm.models import CustomerScore, LayerChange
from siyu.engagement.rfm.presets import PRESETS, ScoreInputs, classify
from siyu.engagement.rfm.scoring import ACTIVITY_TYPES, INTERACTION_TYPES
from siyu.engagement.rfm.services import rfm_recompute, rfm_thresholds_update
from tests.engagement.rfm import factories as f

DAY = timedelta(days=1)
# Offsets that sit on the windows' and thresholds' edges (whole days before now), and some in between.
EDGE_DAYS = [0, 1, 6, 7, 8, 29, 30, 31, 89, 90, 91, 179, 180, 181, 364, 365, 366, 400]
AMOUNTS = [100, 19999, 20000, 30000, 49999, 50000, 100000]


def _at(now, rng):
    return now - rng.choice(EDGE_DAYS) * DAY + timedelta(seconds=rng.choice([-1, 0, 1, 3600]))


def _floor_days(now, moment):
    return None if moment is None else math.floor((now - moment).total_seconds() / 86400)


def _expected(now, first_seen, orders, events) -> ScoreInputs:
    """The definitions of siyu/engagement/rfm/scoring.py, one customer at a time in plain Python."""
    bought = [(at, paid - refunded, discount) for at, paid, refunded, discount in orders
              if at is not None and at <= now and refunded < paid]
    last = max((at for at, _, _ in bought), default=None)
    year = [(at, net, discount) for at, net, discount in bought if at > now - 365 * DAY]
    seen = [(kind, at) for kind, at in events if at <= now and kind in ACTIVITY_TYPES]
    last_activity = max((at for _, at in seen), default=None)
    return ScoreInputs(
        frequency=len(bought), recency_days=_floor_days(now, last), monetary_fen=sum(net for _, net, _ in bought),
        spend_30d_fen=sum(net for at, net, _ in bought if at > now - 30 * DAY),
        spend_365d_fen=sum(net for _, net, _ in year), orders_365d=len(year),
        coupon_orders_365d=sum(1 for _, _, discount in year if discount > 0),
        interactions_7d=sum(1 for kind, at in seen if kind in INTERACTION_TYPES and at > now - 7 * DAY),
        views_30d=sum(1 for kind, at in seen if kind == "product_view" and at > now - 30 * DAY),
        interaction_idle_days=_floor_days(now, last_activity), age_days=max(0, _floor_days(now, first_seen)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_set_based_scoring_equals_plain_python_on_random_customers(workspace, seed):
    rng = random.Random(seed)
    now = timezone.now().replace(microsecond=0)
    thresholds = {} if seed != 3 else {
        "rfm5": {"high_spend_30d_fen": 30000, "high_interactions_7d": 1, "potential_spend_30d_fen": 100,
                 "silent_days": 30, "new_days": 30},
        "rfm6": {"recent_days": 30, "dormant_days": 365, "high_frequency": 2, "high_monetary_fen": 50000},
        "lifecycle": {"new_days": 30, "active_days": 7, "churn_days": 90}}
    for kind, values in thresholds.items():
        rfm_thresholds_update(workspace=workspace, kind=kind, values=values)
    expected = {}
    event_types = [*INTERACTION_TYPES[:4], "product_view", "page_view", "order_paid", "unsubscribe"]
    for _ in range(30):
        first_seen = _at(now, rng)
        customer = f.customer(workspace, first_seen_at=first_seen)
        orders = []
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            paid_at = rng.choice([None, *[_at(now, rng)] * 6, now + DAY])
            paid = rng.choice(AMOUNTS)
            refunded = rng.choice([0, 0, 0, paid // 2, paid])
            discount = rng.choice([0, 0, 500])
            f.order(workspace, customer, paid_at=paid_at, paid_fen=paid, refunded_fen=refunded, discount_fen=discount)
            orders.append((paid_at, paid if paid_at else 0, refunded if paid_at else 0, discount))
        events = []
        if rng.random() < 0.7:
            identity = f.identity(workspace, customer)
            for _ in range(rng.randint(0, 6)):
                kind, at = rng.choice(event_types), _at(now, rng)
                f.event(workspace, identity, type=kind, occurred_at=at)
                events.append((kind, at))
        expected[customer.pk] = _expected(now, first_seen, orders, events)

    rfm_recompute(workspace=workspace, now=now)

    scores = {row.customer_id: row for row in CustomerScore.objects.filter(workspace=workspace)}
    assert set(scores) == set(expected)
    for pk, inputs in expected.items():
        row = scores[pk]
        got = ScoreInputs(**{name: getattr(row, name) for name in ScoreInputs.__dataclass_fields__})
        assert got == inputs, pk
        for kind, preset in PRESETS.items():
            assert getattr(row, kind) == classify(preset, inputs, thresholds.get(kind)), (pk, kind, inputs)


@pytest.fixture
def layer_events():
    received = []

    def collect(**payload):
        received.append(payload)

    subscribe(LAYER_CHANGED, collect)
    yield received
    unsubscribe(LAYER_CHANGED, collect)


def test_moves_are_recorded_and_published_exactly_once(workspace, layer_events, django_capture_on_commit_callbacks):
    now = timezone.now()
    buyer = f.customer(workspace, first_seen_at=now - 100 * DAY)
    f.order(workspace, buyer, paid_at=now - 2 * DAY, paid_fen=60000)
    newcomer = f.customer(workspace, first_seen_at=now - DAY)

    with django_capture_on_commit_callbacks(execute=True):
        rfm_recompute(workspace=workspace, now=now)
    assert LayerChange.objects.filter(workspace=workspace).count() == 6
    published = {(e["kind"], tuple(m)) for e in layer_events for m in e["moves"]}
    assert ("lifecycle", (newcomer.pk, "", "new")) in published
    assert ("rfm6", (buyer.pk, "", "new")) in published  # one purchase so far
    assert len(published) == 6 and all(e["workspace_id"] == workspace.pk for e in layer_events)

    layer_events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        summary = rfm_recompute(workspace=workspace, now=now)
    assert summary["moves"] == {"rfm5": 0, "rfm6": 0, "lifecycle": 0}
    assert layer_events == [] and LayerChange.objects.filter(workspace=workspace).count() == 6

    # Time passes: the newcomer (no order, no interaction) leaves 新 after 7 days (沉默, not yet 流失).
    later = now + 10 * DAY
    with django_capture_on_commit_callbacks(execute=True):
        rfm_recompute(workspace=workspace, now=later)
    moves = {(e["kind"], tuple(m)) for e in layer_events for m in e["moves"]}
    assert ("lifecycle", (newcomer.pk, "new", "silent")) in moves
    assert LayerChange.objects.filter(customer=newcomer, kind="lifecycle", from_code="new", to_code="silent").count() == 1


def test_refunds_lower_monetary_and_frequency(workspace):
    now = timezone.now()
    customer = f.customer(workspace, first_seen_at=now - 50 * DAY)
    f.order(workspace, customer, paid_at=now - 3 * DAY, paid_fen=30000)
    partial = f.order(workspace, customer, paid_at=now - 2 * DAY, paid_fen=20000)
    full = f.order(workspace, customer, paid_at=now - DAY, paid_fen=10000)
    rfm_recompute(workspace=workspace, now=now)
    score = CustomerScore.objects.get(customer=customer)
    assert (score.frequency, score.monetary_fen, score.recency_days) == (3, 60000, 1)

    partial.refunded_fen, partial.payment_status = 5000, "partially_refunded"
    partial.save()
    full.refunded_fen, full.payment_status, full.order_status = 10000, "refunded", "cancelled"
    full.save()
    rfm_recompute(workspace=workspace, now=now)
    score.refresh_from_db()
    assert (score.frequency, score.monetary_fen, score.recency_days) == (2, 45000, 2)


def test_paid_and_refunded_orders_rescore_their_customer(workspace, layer_events,
                                                         django_capture_on_commit_callbacks):
    now = timezone.now()
    customer = f.customer(workspace, first_seen_at=now - 100 * DAY)
    other = f.customer(workspace, first_seen_at=now - 30 * DAY)
    rfm_recompute(workspace=workspace, now=now)
    order = f.order(workspace, customer, paid_at=timezone.now(), paid_fen=80000)
    with django_capture_on_commit_callbacks(execute=True):
        publish(ORDER_PAID, workspace_id=workspace.pk, order_id=order.pk, number=order.number,
                customer_id=customer.pk, total_fen=80000, paid_fen=80000, transaction_id="", paid_at="")
    score = CustomerScore.objects.get(customer=customer)
    assert (score.frequency, score.monetary_fen, score.lifecycle) == (1, 80000, "active")
    assert {m[0] for e in layer_events for m in e["moves"]} == {customer.pk}  # the other customer is untouched
    assert CustomerScore.objects.get(customer=other).computed_at < score.computed_at

    order.refunded_fen, order.payment_status = 80000, "refunded"
    order.save()
    layer_events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        publish(ORDER_REFUNDED, workspace_id=workspace.pk, order_id=order.pk, number=order.number,
                customer_id=customer.pk, amount_fen=80000, refunded_fen=80000, payment_status="refunded",
                out_refund_no="R1", automatic=False)
    score.refresh_from_db()
    assert (score.frequency, score.monetary_fen) == (0, 0)
    # No purchase left and no interaction: out of the buyers' base (seed 002's tiers) into 沉默.
    assert ("rfm5", (customer.pk, "potential", "silent")) in {(e["kind"], tuple(m)) for e in layer_events
                                                              for m in e["moves"]}


def test_orders_of_a_merged_profile_count_for_the_winner(workspace):
    now = timezone.now()
    winner = f.customer(workspace, first_seen_at=now - 30 * DAY)
    loser = f.customer(workspace, first_seen_at=now - 30 * DAY)
    f.order(workspace, winner, paid_at=now - DAY, paid_fen=1000)
    f.order(workspace, loser, paid_at=now - 2 * DAY, paid_fen=2000)
    rfm_recompute(workspace=workspace, now=now)
    assert CustomerScore.objects.filter(workspace=workspace).count() == 2
    customer_merge(workspace=workspace, winner_id=winner.pk, loser_id=loser.pk, reason="explicit")
    rfm_recompute(workspace=workspace, now=now)
    assert list(CustomerScore.objects.filter(workspace=workspace).values_list("customer_id", "frequency",
                                                                              "monetary_fen")) == [(winner.pk, 2, 3000)]


def test_other_workspaces_are_not_scored(workspace, other_workspace):
    now = timezone.now()
    f.customer(other_workspace, first_seen_at=now - DAY)
    mine = f.customer(workspace, first_seen_at=now - DAY)
    rfm_recompute(workspace=workspace, now=now)
    assert list(CustomerScore.objects.values_list("customer_id", flat=True)) == [mine.pk]


def test_every_layer_code_fits_its_columns():
    for kind, preset in PRESETS.items():
        longest = max(len(code) for code in preset.codes)
        assert longest <= CustomerScore._meta.get_field(kind).max_length
        assert longest <= LayerChange._meta.get_field("to_code").max_length
        assert longest <= LayerChange._meta.get_field("from_code").max_length
