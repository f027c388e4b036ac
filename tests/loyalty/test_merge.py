"""Points and growth follow the person: when a profile is merged into another, its balance (lots with their
own expiry) and growth move to the survivor; later returns and refunds of the old profile's orders land there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.core import domain_events
from siyu.customers.models import CustomerStatus
from siyu.loyalty.models import PointsLot, PointsTransaction
from siyu.loyalty.points import ledger_check, points_balance, points_earn, points_refund, points_spend
from siyu.loyalty.services import customers_merged_apply, order_paid_apply, order_refunded_apply
from siyu.loyalty.tiers import growth_of, tier_of
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db


def _merge(loser, winner):
    loser.status, loser.merged_into = CustomerStatus.MERGED, winner
    loser.save(update_fields=["status", "merged_into"])


def test_merge_moves_points_lots_and_growth_once(workspace, django_capture_on_commit_callbacks):
    old, survivor = make_customer(workspace), make_customer(workspace)
    order_paid_apply(workspace_id=workspace.pk, order_id=1, customer_id=old.pk, paid_fen=600_000)  # 6000 pts, 金卡
    points_earn(workspace=workspace, customer=survivor, amount=50, reason="checkin", ref="ck")
    points_spend(workspace=workspace, customer=old, amount=1000, ref="order-2")
    soon = timezone.now() + timedelta(days=30)
    PointsLot.objects.filter(customer=old).update(expires_at=soon)
    _merge(old, survivor)
    with django_capture_on_commit_callbacks(execute=True):
        domain_events.customers_changed(workspace.pk, [old.pk, survivor.pk])
    assert points_balance(customer=old) == 0
    assert points_balance(customer=survivor) == 5050
    assert PointsLot.objects.filter(customer=survivor, expires_at=soon, remaining=5000).exists()
    assert growth_of(customer=survivor)[0] == 6000 and growth_of(customer=old)[0] == 0
    assert tier_of(customer=survivor).code == "gold"
    # Replayed event: nothing more moves.
    assert customers_merged_apply(workspace_id=workspace.pk, customer_ids=[old.pk]) == {"points": 0,
                                                                                        "growth_entries": 0}
    # The old profile's cancelled order returns its points to the survivor.
    assert points_refund(ref="order-2") is True
    assert points_balance(customer=old) == 0 and points_balance(customer=survivor) == 6050
    # Its paid order refunded: the earned points come back out of the survivor's balance.
    order_refunded_apply(workspace_id=workspace.pk, order_id=1, customer_id=old.pk, amount_fen=600_000,
                         refunded_fen=600_000, out_refund_no="R1")
    assert points_balance(customer=survivor) == 50
    assert PointsTransaction.objects.filter(kind="transfer").count() == 4  # out + in, twice
    assert ledger_check(workspace=workspace) == []


def test_new_orders_of_a_merged_profile_earn_for_the_survivor(workspace):
    old, survivor = make_customer(workspace), make_customer(workspace)
    _merge(old, survivor)
    order_paid_apply(workspace_id=workspace.pk, order_id=9, customer_id=old.pk, paid_fen=12_345)
    assert points_balance(customer=survivor) == 123 and points_balance(customer=old) == 0
    assert ledger_check() == []
