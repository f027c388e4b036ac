"""``siyu simulate`` into the database: integrity, determinism by checksum, truth file, progress, bad input."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from siyu.customers.event_catalogue import BUILTIN_BY_NAME
from siyu.customers.event_validation import validate_event
from siyu.customers.models import ConsentRecord, Customer, CustomerTag, Event, Identity
from siyu.simulation.models import SimulationRun, SimulationStatus

END = "2026-06-01"


def _simulate(slug, tmp_path, *, customers=120, seed=7, **extra):
    truth = tmp_path / f"{slug}-{seed}.json"
    call_command("simulate", workspace=slug, customers=customers, months=3, seed=seed, end=END, chunk_size=50,
                 truth=truth, **extra)
    return truth


def _checksum(slug: str) -> str:
    h = hashlib.sha256()
    for customer in Customer.objects.filter(workspace__slug=slug).order_by("id"):
        h.update(f"{customer.name}|{customer.phone}|{customer.phone_hash}|{customer.first_channel}|"
                 f"{customer.first_seen_at.isoformat()}|{customer.last_seen_at.isoformat()}|{customer.city}".encode())
    for kind, namespace, value in Identity.objects.filter(workspace__slug=slug).order_by("id").values_list(
            "kind", "namespace", "value"):
        h.update(f"{kind}|{namespace}|{value}".encode())
    for row in Event.objects.filter(workspace__slug=slug).order_by("event_id").values_list(
            "event_id", "type", "occurred_at", "channel", "utm_source", "properties", "identity__value"):
        h.update(repr(row).encode())
    return h.hexdigest()


@pytest.mark.django_db
def test_same_seed_gives_identical_data_by_checksum(tmp_path):
    _simulate("sim-a", tmp_path)
    _simulate("sim-b", tmp_path)
    _simulate("sim-c", tmp_path, seed=8)
    assert _checksum("sim-a") == _checksum("sim-b")
    assert _checksum("sim-a") != _checksum("sim-c")


@pytest.mark.django_db
def test_written_data_is_consistent_with_the_models(tmp_path):
    truth_path = _simulate("sim-i", tmp_path, customers=150)
    run = SimulationRun.objects.get(workspace__slug="sim-i")
    assert run.status == SimulationStatus.DONE
    customers = Customer.objects.filter(workspace=run.workspace)
    assert customers.count() == 150 == run.customers_written
    events = Event.objects.filter(workspace=run.workspace)
    assert events.count() == run.events_written > 150
    # every event's identity belongs to a live customer of the workspace
    live_identity_ids = set(Identity.objects.filter(workspace=run.workspace, customer__status="active")
                            .values_list("id", flat=True))
    assert set(events.values_list("identity_id", flat=True)) <= live_identity_ids
    assert not customers.filter(identities__isnull=True).exists()
    assert not customers.filter(first_channel="").exists()
    for customer in customers:
        assert customer.first_seen_at <= customer.last_seen_at
        assert customer.name and customer.name_hash
        assert (customer.phone is None) == (customer.phone_hash == "")
    phone_ids = Identity.objects.filter(workspace=run.workspace, kind="phone")
    assert phone_ids.exists()
    for identity in phone_ids:
        assert identity.value == identity.customer.phone_hash
    assert Identity.objects.filter(workspace=run.workspace, kind="openid").exclude(namespace__startswith="wx").count() == 0
    assert set(Identity.objects.filter(workspace=run.workspace).values_list("kind", flat=True)) >= {
        "unionid", "openid", "external_userid", "phone", "lead"}
    assert ConsentRecord.objects.filter(workspace=run.workspace, purpose="personal_data").count() == 150
    assert CustomerTag.objects.filter(workspace=run.workspace).count() >= 300
    # each event is valid against the catalogue (as the ingestion API would check it)
    now = timezone.now()
    for event in events.iterator():
        validate_event({"event_id": event.event_id, "type": event.type, "occurred_at": event.occurred_at.isoformat(),
                        "identities": [{"kind": "unionid", "value": "x"}], "properties": event.properties},
                       catalogue=BUILTIN_BY_NAME, now=now, max_future=timedelta(days=1),
                       max_age=timedelta(days=3650))
    paid = events.filter(type="order_paid").first()
    assert paid is not None and paid.properties["amount_fen"] > 0 and paid.properties["order_id"]
    # truth file: parameters and one row per customer, pointing at real customer ids
    truth = json.loads(truth_path.read_text())
    assert {"r", "alpha", "a", "b", "gamma_gamma"} <= set(truth["parameters"])
    assert truth["summary"]["customers"] == 150
    with open(truth["customers_csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150
    assert {int(row["customer_id"]) for row in rows} == set(customers.values_list("id", flat=True))
    assert sum(int(row["purchases"]) for row in rows) == events.filter(type="order_paid").count()


@pytest.mark.django_db
def test_progress_bar_names_the_phases(tmp_path, capsys):
    _simulate("sim-p", tmp_path, customers=60)
    err = capsys.readouterr().err
    assert "写入事件 events" in err and "60/60" in err


@pytest.mark.django_db
def test_a_seed_is_used_once_per_workspace_and_bad_sizes_are_refused(tmp_path):
    _simulate("sim-r", tmp_path, customers=40)
    before = (Customer.objects.count(), Event.objects.count())
    with pytest.raises(CommandError, match="simulation_seed_used"):
        _simulate("sim-r", tmp_path, customers=40)
    with pytest.raises(CommandError, match="simulation_invalid_size"):
        _simulate("sim-r", tmp_path, customers=0, seed=99)
    with pytest.raises(CommandError, match="simulation_invalid_months"):
        call_command("simulate", workspace="sim-r", customers=10, months=0, seed=98)
    assert (Customer.objects.count(), Event.objects.count()) == before


BULK_TABLES = ("customers_customer", "customers_identity", "customers_consentrecord", "customers_customertag",
               "customers_event")


def _structures() -> set:
    """Every index and constraint of the tables a simulation writes (name + definition)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)",
                       [list(BULK_TABLES)])
        indexes = set(cursor.fetchall())
        cursor.execute("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), condeferrable, "
                       "condeferred, convalidated FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s)",
                       [list(BULK_TABLES)])
        return indexes | set(cursor.fetchall())


@pytest.mark.django_db
def test_bulk_load_writes_the_same_data_and_restores_every_index_and_constraint(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("bulk loading through staging tables is PostgreSQL only")
    before = _structures()
    assert any(row[1] == "event_unique_id" for row in before)
    _simulate("sim-plain", tmp_path, customers=90, bulk=False)
    _simulate("sim-bulk", tmp_path, customers=90, bulk=True)
    assert _checksum("sim-plain") == _checksum("sim-bulk")
    assert _structures() == before
    run = SimulationRun.objects.get(workspace__slug="sim-bulk")
    assert run.status == SimulationStatus.DONE
    assert Event.objects.filter(workspace=run.workspace).count() == run.events_written > 90
    # per-chunk truth rows point at the customers that were moved into place
    truth = json.loads((tmp_path / "sim-bulk-7.json").read_text())
    with open(truth["customers_csv"]) as handle:
        ids = {int(row["customer_id"]) for row in csv.DictReader(handle)}
    assert ids == set(Customer.objects.filter(workspace=run.workspace).values_list("id", flat=True))
    with connection.cursor() as cursor:  # no staging table left behind
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'simstage%%'")
        assert cursor.fetchone()[0] == 0
    # the unique constraint is back and enforced: the same event id again is refused
    event = Event.objects.filter(workspace=run.workspace).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(workspace=run.workspace, event_id=event.event_id, type=event.type,
                             occurred_at=event.occurred_at, received_at=event.received_at, identity=event.identity,
                             properties={})


@pytest.mark.django_db
def test_bulk_run_that_fails_part_way_keeps_the_chunks_generated(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("bulk loading through staging tables is PostgreSQL only")
    from siyu.simulation import services

    real = services.chunk_generate

    def failing(params, index):
        if index == 1:
            raise RuntimeError("disk full")
        return real(params, index)

    monkeypatch.setattr(services, "chunk_generate", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        _simulate("sim-fail", tmp_path, customers=120, bulk=True)
    run = SimulationRun.objects.get(workspace__slug="sim-fail")
    assert run.status == SimulationStatus.FAILED and run.customers_written == 50
    assert Customer.objects.filter(workspace=run.workspace).count() == 50
    assert Event.objects.filter(workspace=run.workspace).count() == run.events_written > 50
