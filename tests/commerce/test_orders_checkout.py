"""Checkout: one transaction from quote to order; a refusal at any step leaves nothing held."""

from __future__ import annotations

import pytest

from siyu.commerce.catalog.models import Sku, StockReservation
from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order, OrderHistory, OrderLine
from siyu.commerce.promotions.models import Coupon, FlashSale
from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.loyalty import points as loyalty_points
from siyu.loyalty.models import PointsTransaction
from tests.commerce import orders_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.orders_fixtures import ADDRESS, make_buyer, place
from tests.commerce.promotions_fixtures import make_coupon_template, make_flash_sale

pytestmark = pytest.mark.django_db
shop, wechat_sim = orders_fixtures.shop, orders_fixtures.wechat_sim  # fixtures


@pytest.fixture
def goods(shop):
    _, skus = make_product(shop.workspace, title="真丝围巾", stock=5, price_fen=9900)
    return skus


@pytest.fixture
def buyer(shop):
    return make_buyer(shop, "alice")


def _coupon(shop, buyer, **template):
    from siyu.commerce.promotions.services import coupon_claim

    template = make_coupon_template(shop.workspace, **template)
    return coupon_claim(workspace=shop.workspace, customer=buyer.customer, template_id=template.pk)


def _give_points(shop, buyer, amount):
    loyalty_points.points_earn(workspace=shop.workspace, customer=buyer.customer, amount=amount, reason="task",
                               ref=f"gift-{buyer.customer.pk}-{amount}")


def _state(skus):
    return ([(s.stock_on_hand, s.stock_reserved) for s in Sku.objects.filter(pk__in=[s.pk for s in skus])
             .order_by("pk")], Order.objects.count(), OrderLine.objects.count(), OrderHistory.objects.count(),
            StockReservation.objects.count(), list(Coupon.objects.order_by("pk").values_list("state", "ref")),
            PointsTransaction.objects.count())


def test_checkout_places_an_order_with_snapshot_lines_and_holds(shop, goods, buyer, django_capture_on_commit_callbacks):
    coupon = _coupon(shop, buyer, kind="no_threshold", amount_fen=500)
    _give_points(shop, buyer, 1000)
    seen = []
    handler = lambda **payload: seen.append(payload)  # noqa: E731
    domain_events.subscribe("orders.order_placed", handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            order = place(shop, buyer, [(goods[0].pk, 2), (goods[1].pk, 1)], coupon_ids=[coupon.pk], points=1000,
                          buyer_note="  请 周末 送 ")
    finally:
        domain_events.unsubscribe("orders.order_placed", handler)
    order.refresh_from_db()
    assert (order.order_status, order.payment_status, order.fulfilment_status) == ("pending_payment", "unpaid",
                                                                                   "unfulfilled")
    assert order.subtotal_fen == 3 * 9900
    assert order.total_fen == order.subtotal_fen - order.discount_fen - order.points_fen + order.shipping_fen
    assert order.discount_fen >= 500 and order.points_used == 1000 and order.points_fen == 1000
    assert order.buyer_note == "请 周末 送"
    assert order.address == ADDRESS and ADDRESS["phone"].encode() not in bytes(order.address_enc)
    assert sum(a["amount_fen"] for a in order.price_explanation["adjustments"]) == order.total_fen
    lines = list(order.lines.order_by("sku_id"))
    assert [(line.title, line.quantity, line.unit_price_fen) for line in lines] == [("真丝围巾", 2, 9900),
                                                                                     ("真丝围巾", 1, 9900)]
    assert lines[0].specs == goods[0].specs
    assert sum(line.payable_fen for line in lines) + order.shipping_fen == order.total_fen
    assert [(s.stock_on_hand, s.stock_reserved) for s in Sku.objects.order_by("pk")] == [(5, 2), (5, 1)]
    assert Coupon.objects.get(pk=coupon.pk).state == "locked"
    assert loyalty_points.points_balance(customer=buyer.customer) == 0
    assert order.pay_expires_at > order.created_at
    assert [(h.field, h.actor_label) for h in order.history.all()] == [("note", "customer")]
    assert [(p["number"], p["total_fen"]) for p in seen] == [(order.number, order.total_fen)]


@pytest.mark.parametrize("failure", ["quote", "stock_reserve", "coupons_lock", "points_spend", "order_create",
                                     "lines_create"])
def test_a_failure_at_any_step_leaves_nothing_half_made(shop, goods, buyer, monkeypatch, failure):
    coupon = _coupon(shop, buyer, kind="no_threshold", amount_fen=500)
    _give_points(shop, buyer, 1000)
    before = _state(goods)

    def boom(*args, **kwargs):
        raise SiyuError("injected", "注入的失败", "injected failure", status=409)

    targets = {"quote": (services.promotions, "checkout_quote"), "stock_reserve": (services.inventory, "stock_reserve"),
               "coupons_lock": (services.promotions, "coupons_lock"),
               "points_spend": (services.loyalty_points, "points_spend"),
               "order_create": (services.Order.objects, "create"),
               "lines_create": (services.OrderLine.objects, "bulk_create")}
    module, name = targets[failure]
    monkeypatch.setattr(module, name, boom)
    with pytest.raises(SiyuError) as caught:
        place(shop, buyer, [(goods[0].pk, 2)], coupon_ids=[coupon.pk], points=1000)
    assert caught.value.code == "injected"
    assert _state(goods) == before
    assert loyalty_points.points_balance(customer=buyer.customer) == 1000


def test_out_of_stock_on_the_second_line_holds_nothing(shop, goods, buyer):
    before = _state(goods)
    with pytest.raises(SiyuError) as caught:
        place(shop, buyer, [(goods[0].pk, 1), (goods[1].pk, 6)])
    assert (caught.value.code, caught.value.status) == ("out_of_stock", 409)
    assert _state(goods) == before


def test_flash_sale_checkout_takes_flash_stock_only(shop, goods, buyer):
    sale = make_flash_sale(shop.workspace, goods[0], price_fen=100, stock=3)
    order = place(shop, buyer, [(goods[0].pk, 1)], flash_sale_id=sale.pk)
    assert order.total_fen == 100 + order.shipping_fen and order.flash_sale_id == sale.pk
    assert order.lines.get().flash_sale is True
    assert FlashSale.objects.get(pk=sale.pk).stock_left == 2
    assert Sku.objects.get(pk=goods[0].pk).stock_reserved == 0  # flash units come from the sale's own stock
    with pytest.raises(SiyuError) as caught:  # one per customer
        place(shop, buyer, [(goods[0].pk, 1)], flash_sale_id=sale.pk)
    assert caught.value.code == "flash_limit_reached"
    assert Order.objects.count() == 1


@pytest.mark.parametrize(("lines", "options", "code"), [
    ([], {}, "order_invalid"),
    ([("1", 1)], {}, "order_invalid"),
    ([(1, -2)], {}, "order_invalid"),
    ([(1, 0)], {}, "order_invalid"),
    ([(1, True)], {}, "order_invalid"),
    (None, {"points": -5}, "order_invalid"),
    (None, {"address": {"name": "张三"}}, "order_invalid"),
    (None, {"address": {**ADDRESS, "phone": "call me"}}, "order_invalid"),
    (None, {"source": "app"}, "order_invalid"),
    (None, {"coupon_ids": ["x"]}, "order_invalid"),
    (None, {"coupon_ids": [999999]}, "coupon_unavailable"),
])
def test_bad_input_is_refused_with_nothing_changed(shop, goods, buyer, lines, options, code):
    before = _state(goods)
    with pytest.raises(SiyuError) as caught:
        place(shop, buyer, lines if lines is not None else [(goods[0].pk, 1)], **options)
    assert caught.value.code == code
    assert caught.value.message_zh and caught.value.message_en
    assert _state(goods) == before


def test_foreign_skus_and_foreign_customers_are_refused(shop, goods, buyer, other_workspace):
    _, foreign = make_product(other_workspace, stock=5)
    with pytest.raises(SiyuError) as caught:
        place(shop, buyer, [(foreign[0].pk, 1)])
    assert caught.value.status == 404
    stranger = make_buyer(shop, "stranger")
    stranger.customer.workspace = other_workspace
    with pytest.raises(SiyuError) as caught:
        place(shop, stranger, [(goods[0].pk, 1)])
    assert caught.value.code == "not_found"
    assert Order.objects.count() == 0
