"""A flash sale under a crowd (real PostgreSQL, real transactions, threads each with its own connection):
500 buyers for 50 units end with exactly 50 paid orders (paid through the simulated WeChat Pay), no stock
left, nothing oversold and no order half-made — also when buyers cancel in the middle and others take
their units."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client

from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order, OrderLine
from siyu.commerce.promotions.models import FlashReservation, FlashSale
from siyu.core.errors import SiyuError
from siyu.wechat.pay.models import PaymentIntent
from siyu.wechat_sim import pay as sim_pay
from tests.commerce import orders_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.orders_fixtures import ADDRESS, APPID, make_buyers
from tests.commerce.promotions_fixtures import make_flash_sale

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
shop, wechat_sim = orders_fixtures.shop, orders_fixtures.wechat_sim  # fixtures

BUYERS = 500
UNITS = 50
WORKERS = 32


@pytest.fixture
def sale(shop):
    """Every notification the simulator sends goes through a fresh Django test client (one per thread)."""

    def deliver(method, url, body, headers):
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
                 if name.lower() != "content-type"}
        response = Client().generic(method, url.removeprefix(shop.sim.siyu_url), data=body,
                                    content_type="application/json", **extra)
        return response.status_code, response.content

    shop.sim.transport = deliver
    _, skus = make_product(shop.workspace, title="限量款球鞋", stock=0, price_fen=99900)
    return make_flash_sale(shop.workspace, skus[0], price_fen=19900, stock=UNITS, per_customer_limit=1)


def _buy(shop, sale, buyer, *, cancel: bool) -> str:
    try:
        try:
            order = services.checkout(workspace=shop.workspace, customer=buyer.customer, lines=[(sale.sku_id, 1)],
                                      address=ADDRESS, flash_sale_id=sale.pk)
        except SiyuError as error:
            return error.code
        if cancel:
            services.order_cancel(order=order, by="customer", customer=buyer.customer)
            return "cancelled"
        params = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
        result = sim_pay.pay(shop.sim, buyer.user, params["prepay_id"])
        return "paid" if result.notifications == [204] else f"notified {result.notifications}"
    finally:
        connection.close()


def _crowd(shop, sale, buyers, cancel=lambda number: False) -> list[str]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(_buy, shop, sale, buyer, cancel=cancel(number)) for number, buyer in enumerate(buyers)]
        return [future.result(timeout=300) for future in futures]


def _assert_whole(sale, *, cancelled: int) -> None:
    sale = FlashSale.objects.get(pk=sale.pk)
    paid = Order.objects.filter(payment_status="paid", order_status="confirmed")
    assert paid.count() == UNITS
    assert sale.stock_left == 0
    assert FlashReservation.objects.filter(state="committed").aggregate(n=Sum("quantity"))["n"] == UNITS
    assert FlashReservation.objects.filter(state="held").count() == 0
    assert Order.objects.count() == UNITS + cancelled
    assert Order.objects.filter(order_status="cancelled", payment_status="unpaid").count() == cancelled
    assert FlashReservation.objects.filter(state="released").count() == cancelled
    # No order half-made: every order has its line, its reservation and (when paid) its payment.
    assert OrderLine.objects.count() == Order.objects.count()
    assert set(FlashReservation.objects.values_list("ref", flat=True)) == \
        {f"order:{number}" for number in Order.objects.values_list("number", flat=True)}
    assert PaymentIntent.objects.filter(status="paid").count() == UNITS
    assert sorted(PaymentIntent.objects.filter(status="paid").values_list("out_trade_no", flat=True)) == \
        sorted(paid.values_list("number", flat=True))
    assert len(set(paid.values_list("customer_id", flat=True))) == UNITS  # one per customer


def test_500_buyers_for_50_units_make_exactly_50_paid_orders(shop, sale):
    buyers = make_buyers(shop, "crowd", BUYERS)
    outcomes = _crowd(shop, sale, buyers)
    assert outcomes.count("paid") == UNITS, sorted(set(outcomes))
    assert set(outcomes) == {"paid", "flash_sold_out"}
    _assert_whole(sale, cancelled=0)


def test_cancelled_units_are_resold_and_never_oversold(shop, sale):
    buyers = make_buyers(shop, "fickle", BUYERS)
    outcomes = _crowd(shop, sale, buyers, cancel=lambda number: number % 7 == 0)
    cancelled = outcomes.count("cancelled")
    assert cancelled > 0
    assert FlashSale.objects.get(pk=sale.pk).stock_left + outcomes.count("paid") == UNITS
    # Those turned away try again (buyers who cancelled do not): the units given back are sold to them.
    for _ in range(3):
        if FlashSale.objects.get(pk=sale.pk).stock_left == 0:
            break
        again = [buyer for buyer, outcome in zip(buyers, outcomes, strict=True) if outcome == "flash_sold_out"]
        retried = _crowd(shop, sale, again)
        outcomes = [retried.pop(0) if outcome == "flash_sold_out" else outcome for outcome in outcomes]
    assert outcomes.count("paid") == UNITS
    _assert_whole(sale, cancelled=cancelled)
