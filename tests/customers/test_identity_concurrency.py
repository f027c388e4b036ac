"""Concurrent identity resolution on PostgreSQL: overlapping new identities and racing merges never fail."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from siyu.core.services import workspace_create
from siyu.customers.identity import Observation, identities_resolve
from siyu.customers.models import Customer, CustomerStatus, Identity, MergeRecord

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 3, 1, tzinfo=UTC)
THREADS = 6
PEOPLE = 12


def batches_for(thread: int) -> list[list[Observation]]:
    """Every thread sees every person, through different apps and in a different order, so threads race to
    create the same identities and to merge the same customers (each openid first appears alone)."""
    rng = random.Random(thread)
    observations = []
    for person in range(PEOPLE):
        at = BASE + timedelta(minutes=person * 10 + thread)
        union = ("unionid", "", f"U{person}")
        mp, mini = ("openid", "wxmp", f"mp{person}"), ("openid", "wxmini", f"mini{person}")
        device = ("device", "ios", f"d{person % 4}")
        observations += [
            Observation([mp], at), Observation([mini, device], at),
            Observation([mp, union], at + timedelta(seconds=1)), Observation([mini, union], at),
            Observation([("phone", "", f"P{person}"), mp], at + timedelta(seconds=2)),
        ]
    rng.shuffle(observations)
    return [observations[i:i + 7] for i in range(0, len(observations), 7)]


def test_overlapping_batches_resolve_concurrently_without_errors():
    workspace = workspace_create(slug="race", name="并发")
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    filed: list[int] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        try:
            barrier.wait()
            for batch in batches_for(thread):
                with transaction.atomic():  # as ingestion does: the resolver runs inside the caller's transaction
                    resolutions = identities_resolve(workspace=workspace, observations=batch)
                with lock:
                    filed.extend(resolution.identity_id for resolution in resolutions)
        except BaseException as error:  # reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    live = set(Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE).values_list("pk", flat=True))
    identities = list(Identity.objects.filter(workspace=workspace).values_list("pk", "kind", "namespace", "value",
                                                                                "customer_id"))
    owner = {pk: customer for pk, _, _, _, customer in identities}
    assert set(owner.values()) <= live  # every identity on a live customer
    assert set(filed) <= set(owner)  # every filed event's identity exists ...
    assert {owner[pk] for pk in filed} <= live  # ... and belongs to a live customer
    by_key = {(kind, namespace, value): customer for _, kind, namespace, value, customer in identities}
    for person in range(PEOPLE):  # unionid and phone tie each person's apps together, whatever the order
        person_keys = [("unionid", "", f"U{person}"), ("phone", "", f"P{person}"),
                       ("openid", "wxmp", f"mp{person}"), ("openid", "wxmini", f"mini{person}")]
        assert len({by_key[key] for key in person_keys}) == 1
    people = {by_key[("unionid", "", f"U{person}")] for person in range(PEOPLE)}
    assert len(people) == PEOPLE
    assert len(identities) == PEOPLE * 4 + 4
    for record in MergeRecord.objects.filter(workspace=workspace, unmerged_at__isnull=True):
        assert Customer.objects.get(pk=record.loser_id).merged_into_id == record.winner_id
