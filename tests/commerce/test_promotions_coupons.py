"""Coupons: claim limits, validity, newcomer-only, operator issue, lock/release/consume exactly once; points."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.commerce.promotions.models import Coupon, CouponState, CouponTemplate
from siyu.commerce.promotions.services import (
    coupon_claim,
    coupon_issue,
    coupons_consume,
    coupons_expire,
    coupons_lock,
    coupons_release,
    quote,
)
from siyu.core.errors import SiyuError
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Identity
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.promotions_fixtures import make_coupon_template, make_customer

pytestmark = pytest.mark.django_db


def test_claim_respects_per_customer_limit_and_total(workspace):
    template = make_coupon_template(workspace, total_quantity=3, per_customer_limit=2)
    alice, bob = make_customer(workspace), make_customer(workspace)
    first = coupon_claim(workspace=workspace, customer=alice, template_id=template.id)
    assert first.state == CouponState.AVAILABLE and first.expires_at - first.claimed_at == timedelta(days=7)
    coupon_claim(workspace=workspace, customer=alice, template_id=template.id)
    with pytest.raises(SiyuError) as error:
        coupon_claim(workspace=workspace, customer=alice, template_id=template.id)
    assert error.value.code == "coupon_limit_reached" and error.value.status == 409
    coupon_claim(workspace=workspace, customer=bob, template_id=template.id)
    with pytest.raises(SiyuError) as error:
        coupon_claim(workspace=workspace, customer=bob, template_id=template.id)
    assert error.value.code == "coupon_sold_out"
    template.refresh_from_db()
    assert template.issued_count == 3 == Coupon.objects.filter(template=template).count()


def test_fixed_window_validity_and_ended_templates(workspace):
    now = timezone.now()
    template = make_coupon_template(workspace, valid_days=0, valid_from=now - timedelta(days=1),
                                    valid_until=now + timedelta(days=2))
    coupon = coupon_claim(workspace=workspace, customer=make_customer(workspace), template_id=template.id)
    assert coupon.expires_at == template.valid_until
    CouponTemplate.objects.filter(pk=template.pk).update(valid_until=now - timedelta(seconds=1))
    with pytest.raises(SiyuError) as error:
        coupon_claim(workspace=workspace, customer=make_customer(workspace), template_id=template.id)
    assert error.value.code == "coupon_ended"
    ended = make_coupon_template(workspace, status="ended")
    with pytest.raises(SiyuError):
        coupon_claim(workspace=workspace, customer=make_customer(workspace), template_id=ended.id)


def test_claim_of_a_foreign_template_or_by_a_foreign_customer_is_refused(workspace, other_workspace):
    foreign = make_coupon_template(other_workspace)
    with pytest.raises(SiyuError) as error:
        coupon_claim(workspace=workspace, customer=make_customer(workspace), template_id=foreign.id)
    assert error.value.status == 404
    with pytest.raises(SiyuError) as error:
        coupon_claim(workspace=workspace, customer=make_customer(other_workspace),
                     template_id=make_coupon_template(workspace).id)
    assert error.value.status == 404
    assert not Coupon.objects.exists()


def test_newcomer_coupon_only_for_customers_who_never_paid(workspace):
    template = make_coupon_template(workspace, kind="newcomer", amount_fen=1000)
    newcomer = make_customer(workspace)
    coupon_claim(workspace=workspace, customer=newcomer, template_id=template.id)
    events_ingest(workspace=workspace, events=[{
        "event_id": "paid-1", "type": "order_paid", "occurred_at": timezone.now().isoformat(),
        "identities": [{"kind": "openid", "namespace": "wxapp", "value": "o-buyer"}],
        "properties": {"order_id": "O1", "amount_fen": 100}}])
    buyer = Identity.objects.get(workspace=workspace, kind="openid", value="o-buyer").customer
    with pytest.raises(SiyuError) as error:
        coupon_claim(workspace=workspace, customer=buyer, template_id=template.id)
    assert error.value.code == "coupon_newcomer_only"


def test_operator_issue_skips_and_counts_who_cannot_receive(workspace, other_workspace):
    template = make_coupon_template(workspace, total_quantity=2)
    a, b, c = (make_customer(workspace) for _ in range(3))
    foreign = make_customer(other_workspace)
    coupon_claim(workspace=workspace, customer=a, template_id=template.id)
    report = coupon_issue(workspace=workspace, template_id=template.id, customer_ids=[a.id, b.id, c.id, foreign.id])
    assert report == {"issued": 1, "skipped": {"coupon_limit_reached": 1, "coupon_sold_out": 1, "not_found": 1}}
    assert Coupon.objects.filter(template=template, source="issue").count() == 1
    with pytest.raises(SiyuError):
        coupon_issue(workspace=workspace, template_id=template.id, customer_ids=[])


def test_lock_consume_release_each_exactly_once(workspace):
    customer = make_customer(workspace)
    template = make_coupon_template(workspace, per_customer_limit=2, stackable=True)
    one = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    two = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    assert coupons_lock(workspace=workspace, customer=customer, coupon_ids=[one.id, two.id], ref="O-1") == 2
    assert coupons_lock(workspace=workspace, customer=customer, coupon_ids=[one.id, two.id], ref="O-1") == 2
    with pytest.raises(SiyuError) as error:  # held by another order
        coupons_lock(workspace=workspace, customer=customer, coupon_ids=[one.id], ref="O-2")
    assert error.value.code == "coupon_unavailable"
    assert coupons_consume(ref="O-1") == 2
    assert coupons_consume(ref="O-1") == 0
    assert set(Coupon.objects.values_list("state", flat=True)) == {CouponState.USED}
    assert coupons_release(ref="O-1") is True
    assert coupons_release(ref="O-1") is False
    assert set(Coupon.objects.values_list("state", flat=True)) == {CouponState.AVAILABLE}


def test_lock_is_all_or_nothing_and_refuses_others_coupons(workspace):
    customer, other = make_customer(workspace), make_customer(workspace)
    template = make_coupon_template(workspace)
    mine = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    theirs = coupon_claim(workspace=workspace, customer=other, template_id=template.id)
    with pytest.raises(SiyuError):
        coupons_lock(workspace=workspace, customer=customer, coupon_ids=[mine.id, theirs.id], ref="O-3")
    assert set(Coupon.objects.values_list("state", flat=True)) == {CouponState.AVAILABLE}
    with pytest.raises(SiyuError):
        coupons_lock(workspace=workspace, customer=customer, coupon_ids=[mine.id], ref="")


def test_expiry_and_release_after_expiry(workspace):
    customer = make_customer(workspace)
    template = make_coupon_template(workspace, per_customer_limit=2)
    held = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    idle = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    coupons_lock(workspace=workspace, customer=customer, coupon_ids=[held.id], ref="O-9")
    later = timezone.now() + timedelta(days=8)
    assert coupons_expire(now=later) == 1
    idle.refresh_from_db()
    assert idle.state == CouponState.EXPIRED
    assert coupons_release(ref="O-9", now=later) is True
    held.refresh_from_db()
    assert held.state == CouponState.EXPIRED


def test_points_deduction_is_capped_by_balance_and_share(workspace):
    from siyu.loyalty.points import points_earn

    customer = make_customer(workspace)
    _, skus = make_product(workspace, price_fen=10000)
    points_earn(workspace=workspace, customer=customer, amount=3000, reason="checkin", ref="p-1")
    result = quote(workspace=workspace, customer=customer, lines=[(skus[0].id, 1)], points=8000)
    # 100 points = 1 yuan: 3000 points = 30 yuan, below the 50% cap (50 yuan).
    assert (result.points_used, result.points_fen, result.total_fen) == (3000, 3000, 7000)
    result = quote(workspace=workspace, customer=customer, lines=[(skus[0].id, 1)], points=1000)
    assert (result.points_used, result.points_fen) == (1000, 1000)
    with pytest.raises(SiyuError):
        quote(workspace=workspace, customer=customer, lines=[(skus[0].id, 1)], points=-5)
