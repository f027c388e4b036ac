"""PostgreSQL: many threads spending (and returning, and earning) on one balance never overdraw it."""

from __future__ import annotations

import threading

import pytest

from siyu.core.errors import SiyuError
from siyu.core.services import workspace_create
from siyu.loyalty.models import PointsAccount, PointsTransaction
from siyu.loyalty.points import ledger_check, points_balance, points_earn, points_refund, points_spend
from tests.concurrency import run_together
from tests.loyalty.factories import make_customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 12
ATTEMPTS = 8


def test_concurrent_spends_never_overdraw():
    workspace = workspace_create(slug="points-race", name="积分并发")
    customer = make_customer(workspace)
    points_earn(workspace=workspace, customer=customer, amount=1000, reason="purchase", ref="seed-1")
    outcomes = {"ok": 0, "insufficient": 0}
    lock = threading.Lock()

    def work(index: int) -> None:
        for attempt in range(ATTEMPTS):
            try:
                points_spend(workspace=workspace, customer=customer, amount=30, ref=f"t{index}:{attempt}")
                result = "ok"
            except SiyuError as error:
                assert error.code == "points_insufficient"
                result = "insufficient"
            with lock:
                outcomes[result] += 1

    assert run_together(THREADS, work) == []
    assert outcomes == {"ok": 1000 // 30, "insufficient": THREADS * ATTEMPTS - 1000 // 30}
    assert points_balance(customer=customer) == 1000 - 30 * (1000 // 30)
    assert PointsAccount.objects.get(customer=customer).balance == 10
    assert ledger_check(workspace=workspace) == []


def test_concurrent_returns_and_replays_happen_exactly_once():
    workspace = workspace_create(slug="points-race-2", name="积分并发2")
    customer = make_customer(workspace)
    points_earn(workspace=workspace, customer=customer, amount=500, reason="purchase", ref="seed-2")
    for index in range(5):
        points_spend(workspace=workspace, customer=customer, amount=100, ref=f"order-{index}")
    returned = []
    lock = threading.Lock()

    def work(index: int) -> None:
        # Every thread returns every order's points and replays an earn and a spend: only one return per
        # order may happen, and the replays change nothing.
        for order in range(5):
            done = points_refund(ref=f"order-{(order + index) % 5}")
            with lock:
                returned.append(done)
        points_earn(workspace=workspace, customer=customer, amount=500, reason="purchase", ref="seed-2")

    assert run_together(THREADS, work) == []
    assert returned.count(True) == 5
    assert points_balance(customer=customer) == 500
    assert PointsTransaction.objects.filter(kind="reverse").count() == 5
    assert ledger_check(workspace=workspace) == []
