"""Growth tasks driven by domain events: orders.order_paid (首单), engagement.community_joined (by name) and the
group_join / product_view / share customer events, a completed profile — each rewarded exactly once however
often the events are replayed."""

from __future__ import annotations

import pytest
from django.utils import timezone

from siyu.core.domain_events import publish
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Customer
from siyu.loyalty.missions import mission_claim, tasks_ensure, tasks_for_customer
from siyu.loyalty.models import TaskProgress
from siyu.loyalty.points import points_balance
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db


def views(workspace, customer):
    return {view.task.trigger: view for view in tasks_for_customer(workspace=workspace, customer=customer)}


def test_order_paid_and_community_events_replayed_reward_once(workspace, django_capture_on_commit_callbacks):
    customer = make_customer(workspace)
    tasks = {task.trigger: task for task in tasks_ensure(workspace=workspace)}
    for _ in range(3):  # the same events delivered three times
        with django_capture_on_commit_callbacks(execute=True):
            publish("orders.order_paid", workspace_id=workspace.pk, order_id=77, customer_id=customer.pk,
                    paid_fen=0)
            publish("engagement.community_joined", workspace_id=workspace.pk, customer_id=customer.pk,
                    community_id=5)
    state = views(workspace, customer)
    assert state["first_order"].count == 1 and state["first_order"].completed
    assert state["community_joined"].count == 1 and state["community_joined"].completed
    for trigger in ("first_order", "community_joined"):
        mission_claim(workspace=workspace, customer=customer, task_id=tasks[trigger].pk)
    with django_capture_on_commit_callbacks(execute=True):
        publish("orders.order_paid", workspace_id=workspace.pk, order_id=78, customer_id=customer.pk, paid_fen=0)
    assert points_balance(customer=customer) == tasks["first_order"].reward_points + \
        tasks["community_joined"].reward_points
    assert views(workspace, customer)["first_order"].claimed


def _ingest(workspace, openid: str, events: list[dict]):
    at = timezone.now().isoformat()
    return events_ingest(workspace=workspace, events=[
        {"event_id": event["id"], "type": event["type"], "occurred_at": at, "identities": [{"kind": "openid", "value": openid,
                                                                                            "namespace": "wxapp"}],
         "properties": event.get("properties", {})} for event in events])


def test_ingested_events_advance_tasks_once(workspace, django_capture_on_commit_callbacks):
    tasks_ensure(workspace=workspace)
    events = [{"id": f"v{n}", "type": "product_view", "properties": {"product_id": str(n % 3)}} for n in range(6)]
    events += [{"id": "g1", "type": "group_join", "properties": {"group_id": "wrG1"}},
               {"id": "sh1", "type": "share", "properties": {"target": "product:1"}}]
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            _ingest(workspace, "o-events-1", events)
    customer = Customer.objects.get(workspace=workspace)
    state = views(workspace, customer)
    assert state["browse"].count == 3 and state["browse"].completed  # three distinct products
    assert state["community_joined"].completed and state["share"].count == 1
    assert TaskProgress.objects.filter(customer=customer, task__trigger="browse").count() == 1


def test_complete_profile_task(workspace, django_capture_on_commit_callbacks):
    tasks_ensure(workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _ingest(workspace, "o-profile", [{"id": "p1", "type": "page_view"}])
    customer = Customer.objects.get(workspace=workspace)
    assert not views(workspace, customer)["profile_completed"].completed
    Customer.objects.filter(pk=customer.pk).update(name_hash="n" * 64, phone_hash="p" * 64)
    with django_capture_on_commit_callbacks(execute=True):
        _ingest(workspace, "o-profile", [{"id": "p2", "type": "phone_bound"}])
    assert views(workspace, customer)["profile_completed"].completed
