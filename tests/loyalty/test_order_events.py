"""OrderPaid / OrderRefunded from commerce, delivered as domain events on commit."""

from __future__ import annotations

import pytest

from siyu.core import domain_events
from siyu.loyalty.models import GrowthEntry, PointsTransaction, PointsWriteOff
from siyu.loyalty.points import ledger_check, points_balance, points_refund, points_spend
from siyu.loyalty.services import ORDER_PAID, ORDER_REFUNDED
from siyu.loyalty.tiers import tier_of
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def immediate_tasks(request):
    """OrderPaid is queued as a Huey task; here it runs in-process when queued (unless a test says otherwise)."""
    from huey.contrib.djhuey import HUEY

    previous = HUEY.immediate
    HUEY.immediate = "queued_tasks" not in request.fixturenames
    yield HUEY
    HUEY.immediate = previous


@pytest.fixture
def queued_tasks():
    """The real (non-immediate) queue, emptied before and after the test."""
    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    yield HUEY
    HUEY.flush()


def _paid(workspace, customer, order_id, paid_fen):
    domain_events.publish(ORDER_PAID, workspace_id=workspace.pk, order_id=order_id, number=f"N{order_id}",
                          customer_id=customer.pk, total_fen=paid_fen, paid_fen=paid_fen, transaction_id="t",
                          paid_at="2026-11-01T10:00:00+08:00")


def _refunded(workspace, customer, order_id, amount_fen, refunded_fen, out_refund_no):
    domain_events.publish(ORDER_REFUNDED, workspace_id=workspace.pk, order_id=order_id, number=f"N{order_id}",
                          customer_id=customer.pk, amount_fen=amount_fen, refunded_fen=refunded_fen,
                          payment_status="refunded", out_refund_no=out_refund_no, automatic=False)


def test_order_paid_earns_once_and_upgrades(workspace, django_capture_on_commit_callbacks):
    customer = make_customer(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _paid(workspace, customer, 1, 123_456)  # 1,234.56 yuan
    with django_capture_on_commit_callbacks(execute=True):
        _paid(workspace, customer, 1, 123_456)  # duplicate delivery
    assert points_balance(customer=customer) == 1234
    assert PointsTransaction.objects.filter(kind="earn").count() == 1
    assert GrowthEntry.objects.get().growth == 1234
    assert tier_of(customer=customer).code == "silver"


def test_partial_then_full_refund_takes_back_proportionally(workspace, django_capture_on_commit_callbacks):
    customer = make_customer(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _paid(workspace, customer, 2, 10_000)  # 100 points, 100 growth
        _refunded(workspace, customer, 2, 3_333, 3_333, "R1")
        _refunded(workspace, customer, 2, 3_333, 3_333, "R1")  # replay
        _refunded(workspace, customer, 2, 6_667, 10_000, "R2")
    assert points_balance(customer=customer) == 0
    reversed_amounts = sorted(PointsTransaction.objects.filter(kind="reverse").values_list("amount", flat=True))
    assert reversed_amounts == [-67, -33]
    assert sum(GrowthEntry.objects.values_list("growth", flat=True)) == 0
    assert ledger_check() == []


def test_refund_after_points_were_spent_never_goes_negative(workspace, django_capture_on_commit_callbacks):
    customer = make_customer(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _paid(workspace, customer, 3, 50_000)  # 500 points
    points_spend(workspace=workspace, customer=customer, amount=450, ref="order-ref-4")
    with django_capture_on_commit_callbacks(execute=True):
        _refunded(workspace, customer, 3, 50_000, 50_000, "R3")
    assert points_balance(customer=customer) == 0
    assert PointsWriteOff.objects.get().points == 450
    # The later order that used the points is cancelled: its points come back exactly once.
    assert points_refund(ref="order-ref-4") is True
    assert points_refund(ref="order-ref-4") is False
    assert points_balance(customer=customer) == 450
    assert ledger_check() == []


def test_refund_of_unknown_order_changes_nothing(workspace, django_capture_on_commit_callbacks):
    customer = make_customer(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _refunded(workspace, customer, 99, 100, 100, "R9")
    assert not PointsTransaction.objects.exists() and not GrowthEntry.objects.exists()


def test_order_paid_is_queued_off_the_payment_path_and_earns_once(workspace, queued_tasks,
                                                                  django_capture_on_commit_callbacks):
    from siyu.loyalty import tasks

    customer = make_customer(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _paid(workspace, customer, 7, 20_000)
    # Nothing earned while the order is being paid: the earning waits in the queue.
    assert points_balance(customer=customer) == 0 and not GrowthEntry.objects.exists()
    queued = [queued_tasks.dequeue() for _ in range(queued_tasks.pending_count())]
    assert [task.name for task in queued] == [tasks.order_paid_task.task_class.__name__]
    # The worker runs it — and a retried or duplicated copy changes nothing. (Run in-process: in immediate mode
    # the task keeps the test's database connection instead of closing it as a worker does.)
    queued_tasks.immediate = True
    for _ in range(2):
        queued_tasks.execute(queued[0])
    assert points_balance(customer=customer) == 200
    assert PointsTransaction.objects.filter(kind="earn").count() == 1
    assert GrowthEntry.objects.get().growth == 200
