"""Background subscribers: one queued task per publish calls them all after commit; failures retry alone;
a queue that cannot be written falls back to inline delivery; a rollback delivers nothing."""

from __future__ import annotations

import pytest
from django.db import transaction
from huey.contrib.djhuey import HUEY

from siyu.core import domain_events
from siyu.core.domain_events import publish, subscribe, unsubscribe

EVENT = "test.background_happened"


@pytest.fixture
def handlers(monkeypatch):
    monkeypatch.setattr(domain_events, "BACKGROUND_INLINE", False)  # the real path: through the queue
    calls: list[tuple[str, dict]] = []
    state = {"fail": False}

    def first(**payload):
        calls.append(("first", payload))

    def flaky(**payload):
        calls.append(("flaky", payload))
        if state["fail"]:
            raise RuntimeError("boom")

    def inline(**payload):
        calls.append(("inline", payload))

    subscribe(EVENT, first, background=True)
    subscribe(EVENT, flaky, background=True)
    subscribe(EVENT, inline)
    HUEY.flush()
    yield calls, state, flaky
    for handler in (first, flaky, inline):
        unsubscribe(EVENT, handler)
    HUEY.flush()


@pytest.mark.django_db(transaction=True)
def test_one_task_per_publish_runs_every_background_subscriber(handlers):
    calls, _, _ = handlers
    with transaction.atomic():
        publish(EVENT, workspace_id=1, customer_ids=[1, 2])
        assert calls == [] and len(HUEY) == 0  # nothing before the commit
    # The request ran only the inline subscriber and wrote ONE task to the queue.
    assert calls == [("inline", {"workspace_id": 1, "customer_ids": [1, 2]})]
    assert len(HUEY) == 1
    task = HUEY.dequeue()
    HUEY.execute(task)  # what the worker does
    assert [name for name, _ in calls] == ["inline", "first", "flaky"]
    assert all(payload == {"workspace_id": 1, "customer_ids": [1, 2]} for _, payload in calls)
    assert len(HUEY) == 0


@pytest.mark.django_db(transaction=True)
def test_rollback_queues_nothing(handlers):
    calls, _, _ = handlers
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(EVENT, workspace_id=1, customer_ids=[1])
        raise RuntimeError("rolled back")
    assert calls == [] and len(HUEY) == 0


@pytest.mark.django_db(transaction=True)
def test_failed_subscriber_is_retried_alone(handlers):
    calls, state, flaky = handlers
    state["fail"] = True
    failed = domain_events.domain_event_deliver_task.call_local(EVENT, {"workspace_id": 1, "customer_ids": [3]})
    assert failed == [domain_events.handler_name(flaky)]
    assert [name for name, _ in calls] == ["first", "flaky"]
    assert len(HUEY) == 1  # the retry, with a delay (the worker holds it until its eta)
    retry = HUEY.dequeue()
    assert retry.eta is not None and retry.args[2] == failed and retry.args[3] == 1
    state["fail"] = False
    calls.clear()
    assert domain_events.domain_event_deliver_task.call_local(*retry.args) == []
    assert [name for name, _ in calls] == ["flaky"]  # the one that succeeded is not run again


@pytest.mark.django_db(transaction=True)
def test_queue_down_delivers_inline(handlers, monkeypatch, caplog):
    calls, _, _ = handlers

    def broken(*args, **kwargs):
        raise ConnectionError("queue down")

    monkeypatch.setattr(domain_events, "domain_event_deliver_task",
                        type("Broken", (), {"__call__": broken})())
    publish(EVENT, workspace_id=2, customer_ids=[5])  # autocommit: delivered at once
    assert [name for name, _ in calls] == ["inline", "first", "flaky"]
    assert "delivering inline" in caplog.text


def test_subscribe_moves_a_handler_between_modes():
    def handler(**payload):
        pass

    subscribe(EVENT, handler)
    subscribe(EVENT, handler, background=True)
    assert handler not in domain_events._subscribers[EVENT] and handler in domain_events._background[EVENT]
    unsubscribe(EVENT, handler)
    assert handler not in domain_events._background[EVENT]
