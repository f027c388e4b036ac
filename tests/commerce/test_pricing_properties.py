"""Property tests for the pricing engine (siyu/commerce/promotions/pricing.py): its invariants over random carts."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.commerce.promotions import pricing
from siyu.commerce.promotions.pricing import (
    CouponOffer,
    FullReductionOffer,
    LineInput,
    PointsOffer,
    Scope,
    ShippingOffer,
    allocate,
    price,
)
from siyu.core.errors import SiyuError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

fen = st.integers(min_value=0, max_value=200_000)


@st.composite
def lines_strategy(draw):
    count = draw(st.integers(min_value=1, max_value=6))
    out = []
    for n in range(count):
        unit = draw(st.integers(min_value=0, max_value=100_000))
        member = draw(st.none() | st.integers(min_value=0, max_value=120_000))
        sale_kind = draw(st.sampled_from(["", "", "limited_time", "flash"]))
        sale = draw(st.integers(min_value=0, max_value=unit)) if sale_kind else None
        out.append(LineInput(
            key=f"k{n}", sku_id=n + 1, product_id=draw(st.integers(1, 4)), category_id=draw(st.none() | st.integers(1, 3)),
            quantity=draw(st.integers(min_value=1, max_value=5)), unit_price_fen=unit, member_price_fen=member,
            sale_price_fen=sale, sale_kind=sale_kind,
        ))
    return out


scopes = st.one_of(
    st.just(Scope()),
    st.builds(Scope, kind=st.just("categories"), ids=st.frozensets(st.integers(1, 3), max_size=3)),
    st.builds(Scope, kind=st.just("products"), ids=st.frozensets(st.integers(1, 4), max_size=4)),
)


@st.composite
def full_reduction_strategy(draw, rule_id):
    tiers = tuple(draw(st.lists(st.tuples(fen, st.integers(0, 50_000)), min_size=1, max_size=3)))
    return FullReductionOffer(rule_id=rule_id, tiers=tiers, scope=draw(scopes))


@st.composite
def coupon_strategy(draw, coupon_id, stackable=None):
    kind = draw(st.sampled_from(pricing.COUPON_KINDS))
    return CouponOffer(
        coupon_id=coupon_id, kind=kind, threshold_fen=draw(st.integers(0, 150_000)),
        amount_fen=draw(st.integers(0, 60_000)), percent_off=draw(st.integers(0, 100)),
        cap_fen=draw(st.integers(0, 30_000)), scope=draw(scopes),
        stackable=draw(st.booleans()) if stackable is None else stackable,
    )


@st.composite
def offers_strategy(draw):
    rules = [draw(full_reduction_strategy(rule_id)) for rule_id in range(1, draw(st.integers(0, 3)) + 1)]
    coupons = [draw(coupon_strategy(100 + n, stackable=True)) for n in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        coupons.append(draw(coupon_strategy(200, stackable=False)))
    points = PointsOffer(requested=draw(st.integers(0, 50_000)), available=draw(st.integers(0, 50_000)),
                         points_per_yuan=draw(st.sampled_from([1, 10, 100, 1000])),
                         max_percent=draw(st.integers(0, 100)))
    shipping = ShippingOffer(fee_fen=draw(st.integers(0, 2_000)), free_threshold_fen=draw(st.integers(0, 100_000)),
                             tier_free_shipping=draw(st.booleans()))
    return rules, coupons, points, shipping


def quote_of(lines, offers):
    rules, coupons, points, shipping = offers
    return price(lines=lines, full_reductions=rules, coupons=coupons, points=points, shipping=shipping)


@FAST
@given(lines=lines_strategy(), offers=offers_strategy())
def test_invariants(lines, offers):
    quote = quote_of(lines, offers)
    rules, coupons, points, shipping = offers
    # Never negative, anywhere.
    assert quote.total_fen >= 0
    assert all(line.payable_fen >= 0 for line in quote.lines)
    # The explanation sums to the total, and the totals agree with each other.
    assert sum(a.amount_fen for a in quote.adjustments) == quote.total_fen
    assert quote.total_fen == quote.subtotal_fen - quote.discount_fen - quote.points_fen + quote.shipping_fen
    assert sum(line.payable_fen for line in quote.lines) + quote.shipping_fen == quote.total_fen
    # Each order-level deduction's line shares add up to it exactly.
    for adjustment in quote.adjustments:
        if adjustment.kind in ("full_reduction", "coupon", "points"):
            shares = sum(a.amount_fen for line in quote.lines for a in line.allocations
                         if a.kind == adjustment.kind and a.ref_id == adjustment.ref_id)
            assert shares == -adjustment.amount_fen
    # Item price is the lowest offered (flash: the flash price), never below zero.
    for source, line in zip(sorted(lines, key=lambda x: x.key), quote.lines, strict=True):
        if source.sale_kind == "flash":
            assert line.item_price_fen == source.sale_price_fen
        else:
            candidates = [source.unit_price_fen, source.member_price_fen,
                          source.sale_price_fen if source.sale_kind else None]
            assert line.item_price_fen == min(c for c in candidates if c is not None)
        # Flash lines take nothing but points.
        if source.sale_kind == "flash":
            assert all(a.kind == "points" for a in line.allocations)
    # Caps: each coupon within its face value / cap; points within their cap and the customer's points.
    by_id = {c.coupon_id: c for c in coupons}
    for adjustment in quote.adjustments:
        if adjustment.kind == "coupon":
            coupon = by_id[adjustment.ref_id]
            if coupon.kind == "percent":
                assert coupon.cap_fen == 0 or -adjustment.amount_fen <= coupon.cap_fen
            else:
                assert -adjustment.amount_fen <= coupon.amount_fen
        if adjustment.kind == "full_reduction":
            rule = next(r for r in rules if r.rule_id == adjustment.ref_id)
            assert -adjustment.amount_fen <= max(amount for _, amount in rule.tiers)
    goods_before_points = quote.subtotal_fen - quote.discount_fen
    assert quote.points_fen <= goods_before_points * points.max_percent // 100
    assert quote.points_used <= min(points.requested, points.available)
    assert quote.points_fen * points.points_per_yuan <= quote.points_used * 100
    assert quote.shipping_fen in (0, shipping.fee_fen)
    # At most one 满减 rule.
    assert sum(1 for a in quote.adjustments if a.kind == "full_reduction") <= 1


@FAST
@given(lines=lines_strategy(), offers=offers_strategy(), seed=st.integers(0, 10_000))
def test_input_order_does_not_matter(lines, offers, seed):
    rules, coupons, points, shipping = offers
    expected = quote_of(lines, offers)
    shuffler = random.Random(seed)
    lines2, rules2, coupons2 = list(lines), list(rules), list(coupons)
    for items in (lines2, rules2, coupons2):
        shuffler.shuffle(items)
    assert quote_of(lines2, (rules2, coupons2, points, shipping)) == expected


@FAST
@given(lines=lines_strategy(), offers=offers_strategy(), data=st.data())
def test_adding_a_discount_never_raises_the_total(lines, offers, data):
    rules, coupons, points, shipping = offers
    before = quote_of(lines, offers).total_fen
    extra_rule = data.draw(full_reduction_strategy(99))
    assert quote_of(lines, ([*rules, extra_rule], coupons, points, shipping)).total_fen <= before
    extra_coupon = data.draw(coupon_strategy(999, stackable=True))
    assert quote_of(lines, (rules, [*coupons, extra_coupon], points, shipping)).total_fen <= before
    more_points = PointsOffer(requested=points.requested + 500, available=points.available + 500,
                              points_per_yuan=points.points_per_yuan, max_percent=points.max_percent)
    assert quote_of(lines, (rules, coupons, more_points, shipping)).total_fen <= before
    no_promotions = price(lines=lines, shipping=shipping).total_fen
    assert before <= no_promotions


@FAST
@given(amount=st.integers(0, 10**7), bases=st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_allocate_is_exact_and_bounded(amount, bases):
    amount = min(amount, sum(bases))
    shares = allocate(amount, bases)
    assert sum(shares) == amount
    assert all(0 <= share <= base for share, base in zip(shares, bases, strict=True))


def test_worked_example():
    lines = [
        LineInput(key="a", sku_id=1, product_id=1, category_id=1, quantity=2, unit_price_fen=5000, member_price_fen=4500),
        LineInput(key="b", sku_id=2, product_id=2, category_id=2, quantity=1, unit_price_fen=3000,
                  sale_price_fen=2500, sale_kind="limited_time"),
        LineInput(key="c", sku_id=3, product_id=3, category_id=2, quantity=1, unit_price_fen=3333,
                  sale_price_fen=1999, sale_kind="flash"),
    ]
    quote = price(
        lines=lines,
        full_reductions=[FullReductionOffer(rule_id=1, tiers=((10000, 1000), (5000, 300))),
                         FullReductionOffer(rule_id=2, tiers=((2000, 500),), scope=Scope("categories", frozenset({2})))],
        coupons=[CouponOffer(coupon_id=7, kind="percent", percent_off=10, cap_fen=800)],
        points=PointsOffer(requested=1000, available=600, points_per_yuan=100, max_percent=50),
        shipping=ShippingOffer(fee_fen=800, free_threshold_fen=20000),
    )
    # Item prices: a 4500 (member) ×2 = 9000, b 2500 (limited) , c 1999 (flash) → 13499 at item prices.
    assert [line.item_price_fen for line in quote.lines] == [4500, 2500, 1999]
    # 满减: rule 1 sees a+b = 11500 ≥ 10000 → 1000; rule 2 sees b = 2500 → 500; rule 1 wins.
    assert quote.full_reduction_rule_id == 1
    # Coupon: 10% of (11500 − 1000) = 1050, capped at 800.
    # Points: 600 available → 600 fen (cap 50% of 13499 − 1800 = 5849).
    kinds = [(a.kind, a.amount_fen) for a in quote.adjustments]
    assert kinds == [("subtotal", 16333), ("member_price", -1000), ("limited_time", -500), ("flash", -1334),
                     ("full_reduction", -1000), ("coupon", -800), ("points", -600), ("shipping", 800)]
    assert quote.total_fen == 16333 - 1000 - 500 - 1334 - 1000 - 800 - 600 + 800 == 11899
    assert quote.points_used == 600
    # 满减 1000 over a (9000) and b (2500): 782.6 → 783, 217.4 → 217.
    a, b, c = quote.lines
    assert [x.amount_fen for x in a.allocations if x.kind == "full_reduction"] == [783]
    assert [x.amount_fen for x in b.allocations if x.kind == "full_reduction"] == [217]
    assert all(x.kind == "points" for x in c.allocations)


def test_coupon_threshold_scope_and_stacking_rules():
    lines = [LineInput(key="a", sku_id=1, product_id=1, category_id=1, quantity=1, unit_price_fen=5000)]
    quote = price(lines=lines, coupons=[
        CouponOffer(coupon_id=1, kind="threshold", threshold_fen=6000, amount_fen=1000),
        CouponOffer(coupon_id=2, kind="no_threshold", amount_fen=300, stackable=True,
                    scope=Scope("products", frozenset({9}))),
    ])
    assert quote.total_fen == 5000
    assert quote.unapplied == ((1, "coupon_threshold_not_met"), (2, "coupon_scope_empty"))
    with pytest.raises(SiyuError) as error:
        price(lines=lines, coupons=[CouponOffer(coupon_id=1, kind="no_threshold", amount_fen=1),
                                    CouponOffer(coupon_id=2, kind="newcomer", amount_fen=1)])
    assert error.value.code == "coupon_not_stackable"
    # A coupon bigger than the goods takes the goods, never more; shipping is still charged.
    quote = price(lines=lines, coupons=[CouponOffer(coupon_id=1, kind="no_threshold", amount_fen=9000)],
                  shipping=ShippingOffer(fee_fen=600))
    assert quote.total_fen == 600 and quote.discount_fen == 5000


@pytest.mark.parametrize("bad", [
    dict(quantity=0), dict(quantity=-1), dict(unit_price_fen=-5), dict(member_price_fen=-1),
    dict(sale_kind="flash"), dict(sale_kind="bogus", sale_price_fen=1),
])
def test_bad_lines_are_refused(bad):
    fields = dict(key="a", sku_id=1, product_id=1, category_id=1, quantity=1, unit_price_fen=100) | bad
    with pytest.raises(SiyuError) as error:
        price(lines=[LineInput(**fields)])
    assert error.value.code == "pricing_invalid"


def test_empty_cart_and_duplicate_lines_are_refused():
    line = LineInput(key="a", sku_id=1, product_id=1, category_id=1, quantity=1, unit_price_fen=100)
    for lines in ([], [line, line]):
        with pytest.raises(SiyuError):
            price(lines=lines)
