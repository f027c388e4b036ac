"""Last-seen times recorded per batch and folded in by the background job (PostgreSQL), and the optimistic
direct COPY of a batch's events with its fallback when a concurrent batch stored one of the ids."""

from __future__ import annotations

from datetime import timedelta

import pytest

from siyu.customers import ingestion
from siyu.customers.identity import customer_merge
from siyu.customers.last_seen import last_seen_apply, last_seen_pending
from siyu.customers.models import Customer, Event, Identity, LastSeenTouch, MergeReason
from siyu.customers.tasks import last_seen_apply_task
from tests.customers.test_ingestion_support import event, post, snapshot

pytestmark = pytest.mark.django_db

OPENID = {"kind": "openid", "namespace": "mp", "value": "o-ls"}
UNIONID = {"kind": "unionid", "value": "u-ls"}


@pytest.mark.postgres
def test_batch_records_times_and_the_job_moves_identities_and_customers_forward(client, api_secret, recent):
    t0 = recent - timedelta(hours=5)
    post(client, api_secret, {"events": [event("a1", t0, identities=[OPENID, UNIONID])]})
    customer = Customer.objects.get()
    assert customer.last_seen_at == t0  # a new customer starts with its events' latest time
    last_seen_apply()
    assert not last_seen_pending()
    # known identities: the batch writes one touch row, no customer or identity row
    post(client, api_secret, {"events": [event("a2", t0 + timedelta(hours=2), identities=[OPENID, UNIONID]),
                                         event("a3", t0 + timedelta(hours=1), identities=[OPENID]),
                                         event("a4", t0 + timedelta(hours=3), identities=[OPENID])]})
    assert LastSeenTouch.objects.count() == 1 and last_seen_pending(workspace_id=customer.workspace_id)
    customer.refresh_from_db()
    assert customer.last_seen_at == t0  # not yet: eventually, after the job
    assert last_seen_apply() == 1
    assert not last_seen_pending()
    customer.refresh_from_db()
    assert customer.last_seen_at == t0 + timedelta(hours=3)
    assert Identity.objects.get(value="o-ls").last_seen_at == t0 + timedelta(hours=3)
    assert Identity.objects.get(value="u-ls").last_seen_at == t0 + timedelta(hours=2)
    # an older event later moves nothing back; applying again with nothing pending changes nothing
    post(client, api_secret, {"events": [event("a5", t0 + timedelta(minutes=5), identities=[OPENID])]})
    assert last_seen_apply_task.call_local() == 1
    assert last_seen_apply() == 0
    customer.refresh_from_db()
    assert customer.last_seen_at == t0 + timedelta(hours=3)
    assert Identity.objects.get(value="o-ls").last_seen_at == t0 + timedelta(hours=3)


@pytest.mark.postgres
def test_job_follows_a_merge_made_after_the_batch(client, api_secret, recent, workspace):
    t0 = recent - timedelta(hours=5)
    first = post(client, api_secret, {"events": [event("m1", t0, identities=[UNIONID]),
                                                 event("m2", t0 + timedelta(minutes=1), identities=[OPENID])]}).json()
    winner, loser = (row["customer_id"] for row in first["results"])
    assert winner != loser
    post(client, api_secret, {"events": [event("m3", t0 + timedelta(hours=4), identities=[OPENID])]})
    customer_merge(workspace=workspace, winner_id=winner, loser_id=loser, reason=MergeReason.EXPLICIT)
    last_seen_apply()
    # the openid now belongs to the winner: the winner is the one last seen at the event's time
    assert Customer.objects.get(pk=winner).last_seen_at == t0 + timedelta(hours=4)
    assert Identity.objects.get(value="o-ls").last_seen_at == t0 + timedelta(hours=4)


def test_apply_with_nothing_pending_is_a_no_op(workspace):
    assert last_seen_apply() == 0 and not last_seen_pending()


@pytest.mark.postgres
def test_id_stored_concurrently_after_the_check_falls_back_and_answers_duplicate(client, api_secret, recent,
                                                                                  monkeypatch):
    post(client, api_secret, {"events": [event("c1", recent)]})
    before = snapshot()
    real = ingestion._existing_ids
    calls = []

    def blind_first(workspace_id, ids):
        # The first look misses c1, as if a concurrent batch stored it between our check and our COPY.
        calls.append(ids)
        return set() if len(calls) == 1 else real(workspace_id, ids)

    monkeypatch.setattr(ingestion, "_existing_ids", blind_first)
    copies = []
    real_copy = ingestion._copy_events
    monkeypatch.setattr(ingestion, "_copy_events", lambda *a: copies.append(real_copy(*a)) or copies[-1])
    body = post(client, api_secret, {"events": [event("c1", recent, identities=[UNIONID])]}).json()
    assert body["duplicate"] == 1 and body["results"][0]["status"] == "duplicate"
    assert copies == [None]  # the direct COPY hit the unique key and was undone
    assert snapshot() == before  # the customer created for the unionid was rolled back with it

    # a batch mixing a concurrently stored id with new ones: the new ones are accepted, once
    calls.clear()
    copies.clear()
    body = post(client, api_secret, {"events": [event("c1", recent), event("c2", recent),
                                                event("c3", recent - timedelta(minutes=1))]}).json()
    assert [row["status"] for row in body["results"]] == ["duplicate", "accepted", "accepted"]
    assert copies[0] is None
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["c1", "c2", "c3"]
