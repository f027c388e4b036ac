"""Concurrent ingestion of the same event ids (real PostgreSQL, real transactions, threads)."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client

from siyu.customers.models import Customer, Event, Identity
from tests.customers.test_ingestion_support import event, post, snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_concurrently(secret, batches):
    barrier = threading.Barrier(len(batches))
    answers: list = [None] * len(batches)

    def worker(number, batch):
        try:
            barrier.wait(timeout=30)
            response = post(Client(), secret, {"events": batch})
            answers[number] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n, b)) for n, b in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_same_ids_from_many_requests_are_accepted_exactly_once(api_secret, now):
    moment = now - timedelta(hours=1)
    # 60 events over 20 people (new to the workspace), identities shared across the events of a person.
    base = [event(f"c{n}", moment + timedelta(seconds=n), identities=[
        {"kind": "openid", "namespace": "mp", "value": f"o{n % 20}"},
        *([{"kind": "unionid", "value": f"u{n % 20}"}] if n % 2 else [])]) for n in range(60)]
    batches = []
    for seed in range(6):
        shuffled = list(base)
        random.Random(seed).shuffle(shuffled)  # different orders: no deadlock may surface as an error
        batches.append(shuffled)
    answers = _run_concurrently(api_secret, batches)
    assert all(answer is not None and answer[0] == 200 for answer in answers), answers
    accepted: dict[str, int] = {}
    for _, body in answers:
        assert body["rejected"] == 0
        for result in body["results"]:
            assert result["status"] in {"accepted", "duplicate"}
            if result["status"] == "accepted":
                accepted[result["event_id"]] = accepted.get(result["event_id"], 0) + 1
    assert accepted == {f"c{n}": 1 for n in range(60)}
    assert Event.objects.count() == 60
    # Each person is one live customer owning both identities; each event filed under it.
    for person in range(20):
        owners = set(Identity.objects.filter(value__in=[f"o{person}", f"u{person}"]).values_list(
            "customer__merged_into_id", "customer_id"))
        live = {merged or own for merged, own in owners}
        assert len(live) == 1, (person, owners)
    before = snapshot()
    replay = _run_concurrently(api_secret, batches[:3])
    assert all(body["duplicate"] == 60 for _, body in replay)
    assert snapshot() == before


def test_overlapping_batches_with_new_customers_never_fail(api_secret, now):
    moment = now - timedelta(hours=1)
    rng = random.Random(3)
    batches = []
    for number in range(4):
        batch = []
        for n in range(150):
            person = rng.randrange(200)
            batch.append(event(f"ov-{number}-{n}", moment, identities=[
                {"kind": "openid", "namespace": "mp", "value": f"p{person}"}]))
        batches.append(batch)
    answers = _run_concurrently(api_secret, batches)
    assert [answer[0] for answer in answers] == [200] * 4, answers
    assert sum(body["accepted"] for _, body in answers) == 600 == Event.objects.count()
    people = {f"p{person}" for batch in batches for e in batch for person in [e["identities"][0]["value"]]}
    assert Identity.objects.count() == len(people)
    assert Customer.objects.count() == len(people)
