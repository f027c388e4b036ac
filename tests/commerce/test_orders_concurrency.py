"""A flash sale under a crowd (real PostgreSQL, real transactions, threads each with its own connection):
500 buyers for 50 units end with exactly 50 paid orders (paid through the simulated WeChat Pay), no stock
left, nothing oversold and no order half-made — also when buyers cancel in the middle and others take
their units."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client

from siyu.commerce.catalog.models import Sku
from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order, OrderLine
from siyu.commerce.promotions.models import FlashReservation, FlashSale
from siyu.core import domain_events
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


def _at_once(count, work) -> list:
    barrier = threading.Barrier(count)

    def run(number):
        try:
            barrier.wait(timeout=30)
            return work(number)
        except SiyuError as error:
            return error.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_cancels_release_once_and_concurrent_refunds_never_exceed_the_payment(shop, sale):
    _, skus = make_product(shop.workspace, title="手工皂", stock=10, price_fen=3000)
    buyer, = make_buyers(shop, "twice", 1)
    cancelled = []
    handler = lambda **payload: cancelled.append(payload)  # noqa: E731
    domain_events.subscribe("orders.order_cancelled", handler)
    try:
        unpaid = services.checkout(workspace=shop.workspace, customer=buyer.customer, lines=[(skus[0].pk, 4)],
                                   address=ADDRESS)
        outcomes = _at_once(6, lambda n: services.order_cancel(order=Order.objects.get(pk=unpaid.pk),
                                                               by="customer" if n % 2 else "system").order_status)
    finally:
        domain_events.unsubscribe("orders.order_cancelled", handler)
    assert outcomes == ["cancelled"] * 6 and len(cancelled) == 1
    assert Sku.objects.values_list("stock_on_hand", "stock_reserved").get(pk=skus[0].pk) == (10, 0)
    paid = services.checkout(workspace=shop.workspace, customer=buyer.customer, lines=[(skus[1].pk, 3)],
                             address=ADDRESS)
    params = services.order_prepay(order=paid, openid=buyer.openid, appid=APPID)
    sim_pay.pay(shop.sim, buyer.user, params["prepay_id"])
    paid.refresh_from_db()
    third = paid.total_fen // 3
    results = _at_once(6, lambda n: services.order_refund(order=paid, amount_fen=third, actor="system").status)
    assert sorted(results) == ["refund_exceeds_paid"] * 3 + ["requested"] * 3
    assert sum(paid.refunds.values_list("amount_fen", flat=True)) == 3 * third <= paid.paid_fen
    shipping = sum(int(refund.lines.get("shipping", 0)) for refund in paid.refunds.all())
    assert sum(OrderLine.objects.filter(order=paid).values_list("refunded_fen", flat=True)) + shipping == 3 * third
    assert shipping <= paid.shipping_fen


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
