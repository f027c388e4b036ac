"""quote(): what is active for the customer, gathered and priced by the engine; bad input refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.commerce.promotions.models import Coupon
from siyu.commerce.promotions.services import (
    best_coupons,
    coupon_claim,
    quote,
    topup_suggestions,
)
from siyu.core.errors import SiyuError
from tests.commerce.catalog_fixtures import make_category, make_product
from tests.commerce.promotions_fixtures import (
    make_coupon_template,
    make_customer,
    make_flash_sale,
    make_full_reduction,
    make_limited_discount,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(workspace):
    clothes, shoes = make_category(workspace, name="服装"), make_category(workspace, name="鞋")
    shirt, shirt_skus = make_product(workspace, title="衬衫", price_fen=5000, category=clothes,
                                     member_prices={"gold": 4000})
    shoe, shoe_skus = make_product(workspace, title="跑鞋", price_fen=30000, category=shoes)
    return {"clothes": clothes, "shoes": shoes, "shirt": shirt, "shirt_skus": shirt_skus, "shoe": shoe,
            "shoe_skus": shoe_skus, "customer": make_customer(workspace)}


def test_plain_quote_charges_shipping_below_threshold(workspace, shop):
    red = shop["shirt_skus"][0]
    result = quote(workspace=workspace, customer=shop["customer"], lines=[(red.id, 1)])
    assert result.subtotal_fen == 5000
    assert result.shipping_fen == 1000  # default fee below the 99 yuan free-shipping threshold
    assert result.total_fen == 6000
    assert [a.kind for a in result.adjustments] == ["subtotal", "shipping"]


def test_stacked_promotions_are_explained_line_by_line(workspace, shop):
    red, blue = shop["shirt_skus"]
    shoe = shop["shoe_skus"][0]
    customer = shop["customer"]
    make_full_reduction(workspace, tiers=((20000, 2000), (40000, 5000)))
    make_limited_discount(workspace, sku_ids=[blue.id], percent_off=20)
    template = make_coupon_template(workspace, kind="threshold", threshold_fen=30000, amount_fen=3000)
    coupon = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    result = quote(workspace=workspace, customer=customer, lines=[(red.id, 1), (blue.id, 2), (shoe.id, 1)],
                   coupon_ids=[coupon.id])
    # red 5000, blue 2 × 4000 (20% off), shoe 30000: 43000 at item prices → 满400减50, coupon 30 → 35000.
    assert [(a.kind, a.amount_fen) for a in result.adjustments] == [
        ("subtotal", 45000), ("limited_time", -2000), ("full_reduction", -5000), ("coupon", -3000)]
    assert result.total_fen == 35000 == sum(a.amount_fen for a in result.adjustments)
    assert sum(line.payable_fen for line in result.lines) == 35000
    assert result.shipping_fen == 0


def test_member_price_from_the_sku_for_the_customers_tier(workspace, shop):
    from siyu.loyalty.models import CustomerTier

    customer = shop["customer"]
    red, shoe = shop["shirt_skus"][0], shop["shoe_skus"][0]
    before = quote(workspace=workspace, customer=customer, lines=[(red.id, 1), (shoe.id, 1)])
    assert all(line.price_kind == "sale" for line in before.lines)
    now = timezone.now()
    CustomerTier.objects.create(workspace=workspace, customer=customer, code="gold", since=now, evaluated_at=now)
    result = quote(workspace=workspace, customer=customer, lines=[(red.id, 1), (shoe.id, 1)])
    by_sku = {line.sku_id: line for line in result.lines}
    assert by_sku[red.id].item_price_fen == 4000 and by_sku[red.id].price_kind == "member_price"
    # No explicit member price for the shoe: the gold tier's 5% discount applies.
    assert by_sku[shoe.id].item_price_fen == 28500
    assert [(a.kind, a.amount_fen) for a in result.adjustments] == [("subtotal", 35000), ("member_price", -2500)]
    # A visitor sees sale prices.
    visitor = quote(workspace=workspace, customer=None, lines=[(red.id, 1)])
    assert visitor.lines[0].item_price_fen == 5000


def test_flash_sale_line_is_priced_at_the_flash_price(workspace, shop):
    red = shop["shirt_skus"][0]
    sale = make_flash_sale(workspace, red, price_fen=990, stock=5)
    make_full_reduction(workspace, tiers=((100, 50),))
    result = quote(workspace=workspace, customer=shop["customer"], lines=[(red.id, 1)], flash_sale_id=sale.id)
    assert result.lines[0].item_price_fen == 990 and result.flash_lines[0].sale_id == sale.id
    assert result.full_reduction_rule_id is None  # flash lines take no 满减


@pytest.mark.parametrize("lines", [[], [(1, 0)], [("x", 1)], [(1, -2)], "nope", [(1,)], [(True, 1)]])
def test_bad_lines_are_refused(workspace, shop, lines):
    with pytest.raises(SiyuError) as error:
        quote(workspace=workspace, customer=shop["customer"], lines=lines)
    assert error.value.status in (400, 404)


def test_foreign_and_off_shelf_skus_are_refused(workspace, other_workspace, shop):
    _, foreign = make_product(other_workspace, price_fen=100)
    with pytest.raises(SiyuError) as error:
        quote(workspace=workspace, customer=shop["customer"], lines=[(foreign[0].id, 1)])
    assert error.value.code == "sku_not_found" and error.value.status == 404
    _, hidden = make_product(workspace, on_shelf=False)
    with pytest.raises(SiyuError) as error:
        quote(workspace=workspace, customer=shop["customer"], lines=[(hidden[0].id, 1)])
    assert error.value.code == "sku_unavailable"


def test_coupons_must_be_the_customers_usable_and_applicable(workspace, shop):
    red = shop["shirt_skus"][0]
    customer, other = shop["customer"], make_customer(workspace)
    template = make_coupon_template(workspace, kind="threshold", threshold_fen=100000, amount_fen=1000,
                                    per_customer_limit=2)
    mine = coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    theirs = coupon_claim(workspace=workspace, customer=other, template_id=template.id)
    with pytest.raises(SiyuError) as error:
        quote(workspace=workspace, customer=customer, lines=[(red.id, 1)], coupon_ids=[theirs.id])
    assert error.value.code == "coupon_unavailable"
    with pytest.raises(SiyuError) as error:
        quote(workspace=workspace, customer=customer, lines=[(red.id, 1)], coupon_ids=[mine.id])
    assert error.value.code == "coupon_threshold_not_met"
    Coupon.objects.filter(pk=mine.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(SiyuError) as error:
        quote(workspace=workspace, customer=customer, lines=[(red.id, 30)], coupon_ids=[mine.id])
    assert error.value.code == "coupon_unavailable"
    with pytest.raises(SiyuError):
        quote(workspace=workspace, customer=None, lines=[(red.id, 1)], coupon_ids=[mine.id])


def test_best_coupons_and_topup_suggestions(workspace, shop):
    red = shop["shirt_skus"][0]
    customer = shop["customer"]
    small = coupon_claim(workspace=workspace, customer=customer,
                         template_id=make_coupon_template(workspace, name="5元", amount_fen=500).id)
    big = coupon_claim(workspace=workspace, customer=customer, template_id=make_coupon_template(
        workspace, name="满80减20", kind="threshold", threshold_fen=8000, amount_fen=2000).id)
    ranked = best_coupons(workspace=workspace, customer=customer, lines=[(red.id, 1)])
    assert [(row["coupon_id"], row["applicable"], row["saving_fen"]) for row in ranked] == [
        (small.id, True, 500), (big.id, False, 0)]
    assert ranked[1]["reason"] == "coupon_threshold_not_met"
    make_full_reduction(workspace, tiers=((30000, 3000),))
    cheap, _ = make_product(workspace, title="袜子", price_fen=3000)
    suggestions = topup_suggestions(workspace=workspace, customer=customer, lines=[(red.id, 1)])
    # Coupon needs 3000 more: the socks (3000) reach it; 满减 needs 25000 more: only the shoe (30000).
    assert [(s["product_id"], s["gap_fen"]) for s in suggestions] == [(cheap.id, 3000), (shop["shoe"].id, 25000)]
    assert "30.00" in suggestions[0]["reason_zh"]
