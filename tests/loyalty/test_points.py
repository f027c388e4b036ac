"""Points ledger: earn, spend, return exactly once, reversal of refunded earnings, expiry, adjustments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import AuditLog
from siyu.core.timeutil import SHANGHAI
from siyu.loyalty.models import PointsLot, PointsTransaction, PointsWriteOff, TransactionKind
from siyu.loyalty.points import (
    ledger_check,
    points_adjust,
    points_balance,
    points_earn,
    points_expire_due,
    points_expiry_for,
    points_for_paid_fen,
    points_redeem_limit,
    points_refund,
    points_reverse_earn,
    points_spend,
    points_value_fen,
)
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(workspace):
    return make_customer(workspace)


def test_earn_spend_refund_roundtrip(workspace, customer):
    points_earn(workspace=workspace, customer=customer, amount=500, reason="purchase", ref="order:1")
    assert points_balance(customer=customer) == 500
    points_spend(workspace=workspace, customer=customer, amount=200, ref="checkout:A")
    assert points_balance(customer=customer) == 300
    assert points_refund(ref="checkout:A") is True
    assert points_refund(ref="checkout:A") is False  # exactly once
    assert points_balance(customer=customer) == 500
    assert ledger_check(workspace=workspace) == []
    kinds = list(PointsTransaction.objects.filter(customer=customer).order_by("pk").values_list("kind", "amount"))
    assert kinds == [("earn", 500), ("burn", -200), ("reverse", 200)]


def test_replays_are_harmless(workspace, customer):
    first = points_earn(workspace=workspace, customer=customer, amount=100, reason="checkin", ref="checkin:d1")
    again = points_earn(workspace=workspace, customer=customer, amount=100, reason="checkin", ref="checkin:d1")
    assert first.pk == again.pk
    points_spend(workspace=workspace, customer=customer, amount=40, ref="x")
    points_spend(workspace=workspace, customer=customer, amount=40, ref="x")
    assert points_balance(customer=customer) == 60
    with pytest.raises(SiyuError) as error:
        points_spend(workspace=workspace, customer=customer, amount=41, ref="x")
    assert error.value.code == "points_ref_conflict"
    assert points_balance(customer=customer) == 60


def test_spend_never_overdraws(workspace, customer):
    points_earn(workspace=workspace, customer=customer, amount=10, reason="share", ref="s1")
    with pytest.raises(SiyuError) as error:
        points_spend(workspace=workspace, customer=customer, amount=11, ref="big")
    assert error.value.code == "points_insufficient" and error.value.status == 409
    assert points_balance(customer=customer) == 10
    assert not PointsTransaction.objects.filter(kind="burn").exists()
    other = make_customer(workspace)
    with pytest.raises(SiyuError):
        points_spend(workspace=workspace, customer=other, amount=1, ref="none")


@pytest.mark.parametrize("amount", [0, -5, "abc", 1.5, None, True, 10**13])
def test_bad_amounts_change_nothing(workspace, customer, amount):
    with pytest.raises(SiyuError) as error:
        points_earn(workspace=workspace, customer=customer, amount=amount, reason="purchase", ref="r")
    assert error.value.code == "points_amount_invalid"
    assert not PointsTransaction.objects.exists()


def test_bad_reason_ref_and_foreign_customer(workspace, other_workspace, customer):
    with pytest.raises(SiyuError) as error:
        points_earn(workspace=workspace, customer=customer, amount=1, reason="checkout", ref="r")
    assert error.value.code == "points_reason_invalid"
    with pytest.raises(SiyuError) as error:
        points_earn(workspace=workspace, customer=customer, amount=1, reason="purchase", ref="")
    assert error.value.code == "points_ref_invalid"
    with pytest.raises(SiyuError) as error:
        points_earn(workspace=other_workspace, customer=customer, amount=1, reason="purchase", ref="r")
    assert error.value.status == 404
    assert not PointsTransaction.objects.exists()


def test_expiry_end_of_following_year_shanghai(workspace, customer):
    # 2025-12-31 20:00 UTC is already 2026-01-01 in Shanghai: earned in 2026, expires at the start of 2028.
    assert points_expiry_for(datetime(2025, 12, 31, 20, tzinfo=UTC)) == datetime(2028, 1, 1, tzinfo=SHANGHAI)
    assert points_expiry_for(datetime(2025, 12, 31, 15, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=SHANGHAI)
    assert points_expiry_for(datetime(2025, 6, 1, tzinfo=SHANGHAI)) == datetime(2027, 1, 1, tzinfo=SHANGHAI)


def test_expiry_takes_only_unspent_points_fifo(workspace, customer):
    points_earn(workspace=workspace, customer=customer, amount=100, reason="purchase", ref="o1")
    points_earn(workspace=workspace, customer=customer, amount=100, reason="purchase", ref="o2")
    # Spent before the first lot's expiry: FIFO takes the soonest-expiring lot first.
    PointsLot.objects.filter(transaction__ref="o1").update(expires_at=timezone.now() + timedelta(days=1))
    PointsLot.objects.filter(transaction__ref="o2").update(expires_at=timezone.now() + timedelta(days=400))
    points_spend(workspace=workspace, customer=customer, amount=60, ref="c1")
    later = timezone.now() + timedelta(days=2)
    assert points_balance(customer=customer, now=later) == 100  # 40 left in the old lot are due
    assert points_expire_due(now=later) == 40
    assert points_expire_due(now=later) == 0
    assert points_balance(customer=customer, now=later) == 100
    assert ledger_check() == []


def test_spend_cannot_use_expired_points_before_task_runs(workspace, customer):
    points_earn(workspace=workspace, customer=customer, amount=100, reason="purchase", ref="o1",
                at=timezone.now() - timedelta(days=900))
    assert points_balance(customer=customer) == 0
    with pytest.raises(SiyuError):
        points_spend(workspace=workspace, customer=customer, amount=1, ref="c1")
    # The failed spend rolled back, so the expiry is done by the next movement or the task.
    assert points_expire_due() == 100
    assert ledger_check() == []


def test_refund_of_order_reverses_earned_points(workspace, customer):
    points_earn(workspace=workspace, customer=customer, amount=300, reason="purchase", ref="order:7")
    points_earn(workspace=workspace, customer=customer, amount=50, reason="checkin", ref="ck")
    tx = points_reverse_earn(workspace=workspace, earn_ref="order:7", ref="refund:7:a", amount=100)
    assert tx.amount == -100
    assert points_reverse_earn(workspace=workspace, earn_ref="order:7", ref="refund:7:a", amount=100).pk == tx.pk
    assert points_balance(customer=customer) == 250
    # Already spent: take what is there (never negative), forgive the rest.
    points_spend(workspace=workspace, customer=customer, amount=240, ref="spent")
    tx2 = points_reverse_earn(workspace=workspace, earn_ref="order:7", ref="refund:7:b")
    assert tx2.amount == -10
    assert points_balance(customer=customer) == 0
    write_off = PointsWriteOff.objects.get(ref="refund:7:b")
    assert write_off.points == 190
    # Nothing left to reverse for that earn.
    assert points_reverse_earn(workspace=workspace, earn_ref="order:7", ref="refund:7:c") is None
    assert ledger_check() == []


def test_reverse_with_zero_balance_is_recorded_once(workspace, customer):
    points_earn(workspace=workspace, customer=customer, amount=30, reason="purchase", ref="order:8")
    points_spend(workspace=workspace, customer=customer, amount=30, ref="spend8")
    assert points_reverse_earn(workspace=workspace, earn_ref="order:8", ref="refund:8") is None
    points_earn(workspace=workspace, customer=customer, amount=30, reason="checkin", ref="later")
    assert points_reverse_earn(workspace=workspace, earn_ref="order:8", ref="refund:8") is None  # replay
    assert points_balance(customer=customer) == 30
    assert PointsWriteOff.objects.get(ref="refund:8").points == 30


def test_manual_adjustment_is_audited(workspace, customer):
    admin = get_user_model().objects.create_user("boss", password="x")
    points_adjust(workspace=workspace, customer=customer, amount=80, reason_text="补偿", actor=admin)
    points_adjust(workspace=workspace, customer=customer, amount=-30, reason_text="误发", actor=admin)
    assert points_balance(customer=customer) == 50
    with pytest.raises(SiyuError) as error:
        points_adjust(workspace=workspace, customer=customer, amount=-51, reason_text="x", actor=admin)
    assert error.value.code == "points_insufficient"
    with pytest.raises(SiyuError) as error:
        points_adjust(workspace=workspace, customer=customer, amount=5, reason_text="  ", actor=admin)
    assert error.value.code == "points_adjust_reason_required"
    assert AuditLog.objects.filter(action="points_adjust").count() == 2
    assert PointsTransaction.objects.filter(kind=TransactionKind.ADJUST).count() == 2
    assert ledger_check() == []


def test_conversions(workspace, customer):
    assert points_for_paid_fen(workspace=workspace, paid_fen=12_399) == 123
    assert points_value_fen(workspace=workspace, points=250) == 250
    points_earn(workspace=workspace, customer=customer, amount=10_000, reason="purchase", ref="o")
    assert points_redeem_limit(workspace=workspace, customer=customer, payable_fen=5_000) == 2_500
    assert points_redeem_limit(workspace=workspace, customer=customer, payable_fen=10**7) == 10_000
