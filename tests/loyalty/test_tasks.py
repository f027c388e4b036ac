"""The periodic tasks run the services: expiry, tier re-evaluation, ledger check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.loyalty import tasks
from siyu.loyalty.models import PointsAccount, PointsLot
from siyu.loyalty.points import ledger_check, points_balance, points_earn
from siyu.loyalty.tiers import growth_record, tier_of
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db


def test_daily_tasks(workspace):
    customer = make_customer(workspace)
    points_earn(workspace=workspace, customer=customer, amount=70, reason="review", ref="r1")
    PointsLot.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert tasks.points_expire_daily.call_local() == 70
    assert points_balance(customer=customer) == 0
    growth_record(workspace=workspace, customer=customer, source="order_paid", ref="o1", spend_fen=2_500_000)
    assert tasks.tiers_reevaluate_daily.call_local() == 1
    assert tier_of(customer=customer).code == "diamond"
    assert tasks.points_ledger_check_daily.call_local() == 0
    PointsAccount.objects.filter(customer=customer).update(balance=5)  # corrupt the cache: the check notices
    assert tasks.points_ledger_check_daily.call_local() == 1
    assert [problem.kind for problem in ledger_check()] == ["balance_mismatch"]


def test_failed_order_paid_is_queued_for_retry(workspace, monkeypatch):
    calls = []
    monkeypatch.setattr(tasks, "order_paid_apply", lambda **kwargs: (_ for _ in ()).throw(RuntimeError("db down")))
    monkeypatch.setattr(tasks, "order_paid_task", lambda *args: calls.append(args))
    tasks.on_order_paid(workspace_id=workspace.pk, order_id=5, customer_id=1, paid_fen=100, paid_at=None, number="N")
    assert calls == [(workspace.pk, 5, 1, 100, None)]
