"""Domain events are delivered after commit, never after a rollback; events_ingested refreshes rule tags."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from huey.contrib.djhuey import HUEY

from siyu.core import domain_events
from siyu.core.domain_events import EVENTS_INGESTED, events_ingested, publish, subscribe, unsubscribe
from siyu.customers.models import CustomerTag
from siyu.customers.tagging import tag_create, tag_group_create
from tests.customers.tag_factories import make_customer, make_event


@pytest.fixture
def received():
    calls: list[dict] = []

    def handler(**payload):
        calls.append(payload)

    subscribe("test.happened", handler)
    yield calls
    unsubscribe("test.happened", handler)


@pytest.fixture
def immediate_tasks():
    previous = HUEY.immediate
    HUEY.immediate = True  # tasks run in-process, in memory: here we test the hook, not the worker
    yield
    HUEY.immediate = previous


@pytest.mark.django_db(transaction=True)
def test_delivered_only_after_commit(received):
    with transaction.atomic():
        publish("test.happened", n=1)
        assert received == []
    assert received == [{"n": 1}]


@pytest.mark.django_db(transaction=True)
def test_nothing_delivered_after_rollback(received):
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("test.happened", n=1)
        raise RuntimeError("boom")
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():  # a rolled-back savepoint inside a commit
            publish("test.happened", n=2)
            raise RuntimeError("boom")
        publish("test.happened", n=3)
    assert received == [{"n": 3}]


@pytest.mark.django_db(transaction=True)
def test_failing_subscriber_does_not_stop_others(received, caplog):
    def broken(**payload):
        raise ValueError("subscriber bug")

    domain_events._subscribers["test.happened"].insert(0, broken)
    try:
        with transaction.atomic():
            publish("test.happened", n=1)
    finally:
        unsubscribe("test.happened", broken)
    assert received == [{"n": 1}]
    assert "subscriber bug" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_events_ingested_refreshes_rule_tags_after_commit(workspace, immediate_tasks, now):
    group = tag_group_create(workspace=workspace, name="行为")
    viewer = tag_create(workspace=workspace, group_id=group.pk, name="近期浏览", kind="rule",
                        rule={"event": "product_view", "within_days": 7})
    customer, (identity,) = make_customer(workspace, at=now)
    with pytest.raises(RuntimeError), transaction.atomic():
        make_event(workspace, identity, type="product_view", at=now - timedelta(days=1))
        events_ingested(workspace.pk, [customer.pk])
        raise RuntimeError("ingestion failed")
    assert not CustomerTag.objects.filter(tag=viewer).exists()
    with transaction.atomic():
        make_event(workspace, identity, type="product_view", at=now - timedelta(days=1))
        events_ingested(workspace.pk, [customer.pk, None])
        assert not CustomerTag.objects.filter(tag=viewer).exists()
    assert CustomerTag.objects.get(tag=viewer).customer_id == customer.pk


@pytest.mark.django_db(transaction=True)
def test_rule_change_reevaluates_everyone(workspace, immediate_tasks, now):
    group = tag_group_create(workspace=workspace, name="地域")
    customers = [make_customer(workspace, at=now, city=city)[0] for city in ("上海", "杭州", "上海")]
    local = tag_create(workspace=workspace, group_id=group.pk, name="本地", kind="rule",
                       rule={"attribute": "city", "equals": "上海"})
    assert set(CustomerTag.objects.filter(tag=local).values_list("customer_id", flat=True)) == {
        customers[0].pk, customers[2].pk}
    from siyu.customers.tagging import tag_update_rule

    tag_update_rule(workspace=workspace, tag_id=local.pk, rule={"attribute": "city", "in": ["杭州"]})
    assert set(CustomerTag.objects.filter(tag=local).values_list("customer_id", flat=True)) == {customers[1].pk}


@pytest.mark.django_db(transaction=True)
def test_events_ingested_payload_names_each_customer_once():
    seen: list[dict] = []

    def handler(**payload):
        seen.append(payload)

    subscribe(EVENTS_INGESTED, handler)
    try:
        events_ingested(7, [3, 1, 3, None])  # no transaction open: delivered at once
        events_ingested(7, [None])
    finally:
        unsubscribe(EVENTS_INGESTED, handler)
    assert seen == [{"workspace_id": 7, "customer_ids": [1, 3]}]
