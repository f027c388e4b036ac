"""A small brand built through the real services, and a plain-Python oracle for every rollup."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from siyu.analytics.models import DailyMetric, Metric
from siyu.core.timeutil import local_day
from siyu.customers.event_catalogue import BUILTIN_BY_NAME
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Customer, CustomerStatus, Event, Identity

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
TODAY = local_day(NOW)  # 2026-03-31 in Shanghai
CHANNELS = ["xiaohongshu", "douyin", "official_account", "store", "referral", ""]
TYPES = ["page_view", "product_view", "message_in", "unsubscribe", "wecom_delete", "order_paid"]


def event(event_id: str, event_type: str, at: datetime, identities: list[dict], channel: str = "") -> dict:
    body = {"event_id": event_id, "type": event_type, "occurred_at": at.isoformat(), "identities": identities}
    if channel:
        body["channel"] = channel
    if event_type == "order_paid":
        body["properties"] = {"order_id": f"o-{event_id}", "amount_fen": 9900}
    if event_type == "product_view":
        body["properties"] = {"product_id": "p-1"}
    return body


def ingest(workspace, events: list[dict], now: datetime = NOW) -> None:
    result = events_ingest(workspace=workspace, events=events, now=now)
    rejected = [outcome.as_dict() for outcome in result.outcomes if outcome.status == "rejected"]
    assert not rejected, rejected


def build_brand(workspace, *, seed: int = 3, people: int = 40) -> None:
    """Customers arriving over three months from several channels, events around Shanghai midnight,
    and merges by unionid (two openids of one person seen in different apps)."""
    rng = random.Random(seed)
    batch: list[dict] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for person in range(people):
        # Arrival: a random day, then an hour chosen so that many land right before or after
        # Shanghai midnight (16:00 UTC).
        arrival = start + timedelta(days=rng.randrange(88), hours=rng.choice([15, 16]),
                                    minutes=rng.choice([0, 59]), seconds=rng.choice([0, 59]))
        app = "mini" if person % 3 else "mp"
        ids = [{"kind": "openid", "namespace": app, "value": f"o{person}"}]
        batch.append(event(f"a{person}", "page_view", arrival, ids, channel=rng.choice(CHANNELS)))
        for k in range(rng.randrange(6)):
            at = arrival + timedelta(hours=rng.randrange(0, 24 * 20), seconds=rng.randrange(3600))
            batch.append(event(f"e{person}-{k}", rng.choice(TYPES), min(at, NOW - timedelta(minutes=1)), ids))
    ingest(workspace, batch)
    # Every fifth person also uses the other app; later both openids are seen with one unionid.
    later = []
    for person in range(0, people, 5):
        other = {"kind": "openid", "namespace": "other", "value": f"x{person}"}
        at = start + timedelta(days=rng.randrange(88), hours=16)
        later.append(event(f"x{person}", "message_in", at, [other], channel="douyin"))
    ingest(workspace, later)
    merges = []
    for person in range(0, people, 5):
        app = "mini" if person % 3 else "mp"
        union = {"kind": "unionid", "value": f"U{person}"}
        merges.append(event(f"u{person}a", "page_view", NOW - timedelta(days=2),
                            [{"kind": "openid", "namespace": app, "value": f"o{person}"}, union]))
        merges.append(event(f"u{person}b", "page_view", NOW - timedelta(days=2, seconds=-1),
                            [{"kind": "openid", "namespace": "other", "value": f"x{person}"}, union]))
    ingest(workspace, merges)


def expected_rollups(workspace) -> dict[tuple[str, date, str], int]:
    """The same numbers computed in Python from the source tables with zoneinfo day boundaries."""
    found: Counter = Counter()
    for first_seen_at, channel in Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE) \
            .values_list("first_seen_at", "first_channel"):
        found[(Metric.NEW_CUSTOMERS.value, local_day(first_seen_at), channel)] += 1
    owner = dict(Identity.objects.filter(workspace=workspace).values_list("pk", "customer_id"))
    active: dict[date, set[int]] = defaultdict(set)
    for occurred_at, event_type, identity_id in Event.objects.filter(workspace=workspace) \
            .values_list("occurred_at", "type", "identity_id"):
        day = local_day(occurred_at)
        found[(Metric.EVENTS.value, day, event_type)] += 1
        known = BUILTIN_BY_NAME.get(event_type)
        if known is None or known.interaction:
            active[day].add(owner[identity_id])
    for day, customers in active.items():
        found[(Metric.ACTIVE_CUSTOMERS.value, day, "")] = len(customers)
    return dict(found)


def stored_rollups(workspace) -> dict[tuple[str, date, str], int]:
    return {(metric, day, dimension): value for metric, day, dimension, value in
            DailyMetric.objects.filter(workspace=workspace).values_list("metric", "day", "dimension", "value")}


@pytest.fixture
def brand(workspace):
    build_brand(workspace)
    return workspace
