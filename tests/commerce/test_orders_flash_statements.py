"""The flash-sale purchase path statement by statement: checkout, prepay and the payment notification stay
within a small budget of SQL statements (the crowd's CPU per purchase is mostly statements and the Python
around them), and what the notification leaves to the background (the customer's timeline, loyalty, RFM …)
is queued, not run in the request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order
from siyu.core import domain_events
from siyu.wechat.pay.models import PaymentIntent, PaymentNotification
from siyu.wechat_sim import pay as sim_pay
from tests.commerce import orders_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.orders_fixtures import APPID, make_buyers, place
from tests.commerce.promotions_fixtures import make_flash_sale

pytestmark = pytest.mark.django_db
shop, wechat_sim = orders_fixtures.shop, orders_fixtures.wechat_sim

# Statements other than SAVEPOINT / RELEASE (in a test every transaction is a savepoint of the test's own).
NOTIFY_BUDGET = 8  # merchant; inbox row; intent locked, paid; order locked, flash units committed, history, paid
PREPAY_BUDGET = 5  # order; its line titles; merchant; intent; prepay_id


def _statements(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries
            if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_a_flash_purchase_stays_within_its_statement_budget(shop, monkeypatch, django_capture_on_commit_callbacks):
    queued: list[str] = []  # background deliveries, as the worker would get them
    monkeypatch.setattr(domain_events, "_enqueue_background", lambda name, payload: queued.append(name))
    _, skus = make_product(shop.workspace, title="限量款球鞋", stock=0, price_fen=99900)
    sale = make_flash_sale(shop.workspace, skus[0], price_fen=19900, stock=5, per_customer_limit=1)
    for buyer in make_buyers(shop, "flash", 2):  # the second purchase is the one measured (caches warm)
        queued.clear()
        with CaptureQueriesContext(connection) as checkout, django_capture_on_commit_callbacks(execute=True):
            order = place(shop, buyer, [(skus[0].pk, 1)], flash_sale_id=sale.pk)
        with CaptureQueriesContext(connection) as prepay, django_capture_on_commit_callbacks(execute=True):
            params = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
        with CaptureQueriesContext(connection) as notify, django_capture_on_commit_callbacks(execute=True):
            assert sim_pay.pay(shop.sim, buyer.user, params["prepay_id"]).notifications == [204]
    order = Order.objects.get(pk=order.pk)
    assert (order.payment_status, order.order_status) == ("paid", "confirmed")
    assert PaymentIntent.objects.get(out_trade_no=order.number).status == "paid"
    assert PaymentNotification.objects.filter(out_trade_no=order.number).get().outcome == "accepted"
    for name, captured, budget in (("prepay", prepay, PREPAY_BUDGET), ("notification", notify, NOTIFY_BUDGET)):
        statements = _statements(captured)
        assert len(statements) <= budget, f"{name}: {len(statements)} statements\n" + "\n".join(
            sql[:200] for sql in statements)
    assert len(_statements(checkout)) <= 14, "\n".join(sql[:200] for sql in _statements(checkout))
    # Left to the background: the payment's and the order's timeline, loyalty, RFM, segments.
    assert "wechat_pay.payment_succeeded" in queued and "orders.order_paid" in queued
