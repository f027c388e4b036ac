"""The purchase rollup stays equal to a from-scratch computation over the orders, whatever happens to them:
payments (also late ones, of cancelled orders), partial and full refunds, cancellations, customer merges and
un-merges, replays of the same event; the set-based rebuild agrees and then has nothing to write."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.commerce.orders.events import ORDER_CANCELLED, ORDER_PAID, ORDER_REFUNDED
from siyu.commerce.orders.models import Order
from siyu.core import domain_events
from siyu.core.timeutil import SHANGHAI
from siyu.customers.identity import customer_merge, customer_unmerge
from siyu.customers.models import MergeReason
from siyu.engagement.rfm import tasks as rfm_tasks
from siyu.engagement.rfm.models import PurchaseRollup
from siyu.engagement.rfm.rollup import rollup_rebuild, rollup_refresh
from tests.concurrency import run_together
from tests.engagement.rfm import factories as f

START = datetime(2026, 3, 1, tzinfo=SHANGHAI)
EPOCH = date(1970, 1, 1)


def scratch(workspace_id: int) -> dict[int, tuple[int, int, int, int, int]]:
    """The rollup recomputed in Python from the orders, following the definitions word for word."""
    days: dict[int, dict[int, int]] = {}
    for order in Order.objects.filter(workspace_id=workspace_id, paid_at__isnull=False,
                                      payment_status__in=["paid", "partially_refunded"]):
        day = (order.paid_at.astimezone(SHANGHAI).date() - EPOCH).days
        by_day = days.setdefault(order.customer_id, {})
        by_day[day] = by_day.get(day, 0) + order.paid_fen - order.refunded_fen
    return {customer: (min(by_day), max(by_day), len(by_day), sum(by_day.values()), by_day[min(by_day)])
            for customer, by_day in days.items()}


def stored(workspace_id: int) -> dict[int, tuple[int, int, int, int, int]]:
    return {row[0]: tuple(row[1:]) for row in PurchaseRollup.objects.filter(workspace_id=workspace_id).values_list(
        "customer_id", "first_day", "last_day", "days", "total_fen", "first_day_fen")}


def _moment(day: int, minute: int) -> datetime:
    # Minutes around midnight in Shanghai are frequent: a UTC day would put them on the wrong side.
    return START + timedelta(days=day, minutes=[0, 1, 1439, 720, 959, 960][minute % 6] + minute // 6)


def _event(order: Order) -> None:
    """What the background delivery of the order's event does for the rollup."""
    rfm_tasks.on_order_purchases_changed(workspace_id=order.workspace_id, order_id=order.pk,
                                         customer_id=order.customer_id)


OPERATIONS = st.one_of(
    st.tuples(st.just("buy"), st.integers(0, 3), st.integers(0, 20), st.integers(0, 40), st.integers(1, 90_000)),
    st.tuples(st.just("place"), st.integers(0, 3), st.integers(0, 20), st.integers(0, 40), st.integers(1, 90_000)),
    st.tuples(st.just("pay"), st.integers(0, 30), st.integers(0, 20), st.integers(0, 40)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("merge"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("unmerge"),),
    st.tuples(st.just("replay"), st.integers(0, 30)),
)


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=14))
def test_rollup_equals_a_from_scratch_computation_after_any_sequence(workspace, operations):
    with transaction.atomic():
        customers = [f.customer(workspace, first_seen_at=START) for _ in range(4)]
        orders: list[Order] = []
        merges = []
        for operation in operations:
            kind = operation[0]
            if kind in {"buy", "place"}:
                _, who, day, minute, amount = operation
                paid_at = _moment(day, minute) if kind == "buy" else None
                order = f.order(workspace, customers[who], paid_at=paid_at, paid_fen=amount)
                orders.append(order)
                if kind == "buy":
                    _event(order)
            elif kind == "pay" and orders:  # payment of a pending order, or a late one of a cancelled order
                order = orders[operation[1] % len(orders)]
                if order.payment_status == "unpaid":
                    order.payment_status, order.paid_fen = "paid", order.total_fen
                    order.paid_at = _moment(operation[2], operation[3])
                    order.save()
                    _event(order)
            elif kind == "refund" and orders:
                order = orders[operation[1] % len(orders)]
                if order.payment_status in {"paid", "partially_refunded"}:
                    left = order.paid_fen - order.refunded_fen
                    order.refunded_fen += max(1, left * operation[2] // 100)
                    order.payment_status = "refunded" if order.refunded_fen == order.paid_fen else "partially_refunded"
                    order.save()
                    _event(order)
            elif kind == "cancel" and orders:
                order = orders[operation[1] % len(orders)]
                if order.payment_status == "unpaid" and order.order_status != "cancelled":
                    order.order_status = "cancelled"
                    order.save()
                    _event(order)
            elif kind == "merge":
                winner, loser = customers[operation[1]], customers[operation[2]]
                winner.refresh_from_db()
                loser.refresh_from_db()
                if winner.pk != loser.pk and winner.is_live and loser.is_live:
                    merges.append(customer_merge(workspace=workspace, winner_id=winner.pk, loser_id=loser.pk,
                                                 reason=MergeReason.EXPLICIT))
            elif kind == "unmerge" and merges:
                customer_unmerge(workspace=workspace, record_id=merges.pop().pk)
            elif kind == "replay" and orders:
                _event(orders[operation[1] % len(orders)])
            assert stored(workspace.pk) == scratch(workspace.pk), operation
        assert rollup_rebuild(workspace_id=workspace.pk) == 0  # the set-based pass agrees: nothing to write
        PurchaseRollup.objects.filter(workspace=workspace).delete()
        rollup_rebuild(workspace_id=workspace.pk)
        assert stored(workspace.pk) == scratch(workspace.pk)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_rebuild_fixes_stale_and_missing_rows_and_leaves_other_workspaces(workspace, other_workspace):
    buyer, gone, other = (f.customer(workspace, first_seen_at=START), f.customer(workspace, first_seen_at=START),
                          f.customer(other_workspace, first_seen_at=START))
    f.order(workspace, buyer, paid_at=START, paid_fen=1000)
    f.order(workspace, buyer, paid_at=START + timedelta(days=3), paid_fen=500, refunded_fen=200)
    refunded = f.order(workspace, gone, paid_at=START, paid_fen=800)
    f.order(other_workspace, other, paid_at=START, paid_fen=700)
    rollup_refresh(workspace_id=workspace.pk, customer_ids=[gone.pk])
    refunded.refunded_fen, refunded.payment_status = 800, "refunded"  # no event: the row is now stale
    refunded.save()

    assert rollup_rebuild(workspace_id=workspace.pk) == 2  # buyer's row inserted, gone's row deleted
    assert stored(workspace.pk) == scratch(workspace.pk) == {
        buyer.pk: ((START.date() - EPOCH).days, (START.date() - EPOCH).days + 3, 2, 1300, 1000)}
    assert stored(other_workspace.pk) == {}
    call_command("rfm_rollup_rebuild", "--workspace", other_workspace.slug)
    assert stored(other_workspace.pk) == scratch(other_workspace.pk) != {}


def test_the_rollup_follows_paid_refunded_and_cancelled_orders_from_the_background_delivery():
    for event in (ORDER_PAID, ORDER_REFUNDED, ORDER_CANCELLED):
        assert rfm_tasks.on_order_purchases_changed in domain_events._background[event]


@pytest.mark.django_db
def test_a_failed_refresh_is_queued_for_retry(workspace, monkeypatch):
    queued = []
    monkeypatch.setattr(rfm_tasks, "rollup_refresh", lambda **kwargs: 1 / 0)
    monkeypatch.setattr(rfm_tasks, "rfm_rollup_refresh_task", lambda *args: queued.append(args))
    rfm_tasks.on_order_purchases_changed(workspace_id=workspace.pk, customer_id=42)
    assert queued == [(workspace.pk, [42])]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_order_changes_refreshes_and_a_rebuild_end_right(workspace):
    customer = f.customer(workspace, first_seen_at=START)
    pending = [f.order(workspace, customer, paid_at=None, paid_fen=100 * (i + 1)) for i in range(6)]
    f.order(workspace, customer, paid_at=START, paid_fen=5)
    rollup_rebuild(workspace_id=workspace.pk)

    def work(index: int) -> None:
        if index == len(pending):
            for _ in range(3):
                rollup_rebuild(workspace_id=workspace.pk)
            return
        with transaction.atomic():  # the payment commits, then its event refreshes the customer
            Order.objects.filter(pk=pending[index].pk).update(
                payment_status="paid", paid_fen=100 * (index + 1), paid_at=START + timedelta(days=index))
        rollup_refresh(workspace_id=workspace.pk, customer_ids=[customer.pk])

    assert run_together(len(pending) + 1, work) == []
    assert stored(workspace.pk) == scratch(workspace.pk)
    assert stored(workspace.pk)[customer.pk][2:] == (6, 5 + 2100, 105)


@pytest.mark.django_db
def test_a_published_order_event_refreshes_the_rollup_through_the_background_delivery(
        workspace, django_capture_on_commit_callbacks):
    customer = f.customer(workspace, first_seen_at=START)
    order = f.order(workspace, customer, paid_at=START, paid_fen=1200)
    with django_capture_on_commit_callbacks(execute=True):
        domain_events.publish(ORDER_PAID, workspace_id=workspace.pk, order_id=order.pk, number=order.number,
                              customer_id=customer.pk, total_fen=1200, paid_fen=1200, transaction_id="T1",
                              paid_at=START.isoformat())
    assert stored(workspace.pk) == scratch(workspace.pk) == {
        customer.pk: ((START.date() - EPOCH).days, (START.date() - EPOCH).days, 1, 1200, 1200)}
    Order.objects.filter(pk=order.pk).update(refunded_fen=1200, payment_status="refunded")
    with django_capture_on_commit_callbacks(execute=True):
        domain_events.publish(ORDER_REFUNDED, workspace_id=workspace.pk, order_id=order.pk, number=order.number,
                              customer_id=customer.pk, amount_fen=1200, refunded_fen=1200, payment_status="refunded",
                              out_refund_no="R1", automatic=False)
    assert stored(workspace.pk) == {}
