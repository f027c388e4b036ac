"""Paying orders through the simulated WeChat Pay: applied exactly once; duplicate, out-of-order, late and
forged notifications; auto-cancel of unpaid orders; a payment for a cancelled order refunded automatically."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.commerce.catalog.models import Sku
from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order, OrderRefund
from siyu.commerce.promotions.models import Coupon
from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.customers.models import Event
from siyu.loyalty import points as loyalty_points
from siyu.wechat.pay.models import PaymentIntent, PaymentNotification, Refund
from siyu.wechat.pay.provider import WeChatPayProvider
from siyu.wechat_sim import pay as sim_pay
from tests.commerce import orders_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.orders_fixtures import APPID, make_buyer, pay, place
from tests.commerce.promotions_fixtures import make_coupon_template
from tests.wechat.test_pay_support import notify

pytestmark = pytest.mark.django_db
shop, wechat_sim, immediate_tasks = orders_fixtures.shop, orders_fixtures.wechat_sim, orders_fixtures.immediate_tasks
HOST = "api.mch.weixin.qq.com"
ORDER_EVENTS = ("orders.order_placed", "orders.order_paid", "orders.order_cancelled", "orders.order_refunded")


@pytest.fixture
def goods(shop):
    _, skus = make_product(shop.workspace, title="手冲咖啡礼盒", stock=10, price_fen=12800)
    return skus


@pytest.fixture
def buyer(shop):
    return make_buyer(shop, "bob")


@pytest.fixture
def seen():
    captured: list[tuple[str, dict]] = []
    handlers = {name: (lambda name=name, **payload: captured.append((name, payload))) for name in ORDER_EVENTS}
    for name, handler in handlers.items():
        domain_events.subscribe(name, handler)
    yield captured
    for name, handler in handlers.items():
        domain_events.unsubscribe(name, handler)


def _stock(sku):
    sku = Sku.objects.get(pk=sku.pk)
    return sku.stock_on_hand, sku.stock_reserved


def _claimed_coupon(shop, buyer):
    from siyu.commerce.promotions.services import coupon_claim

    template = make_coupon_template(shop.workspace, kind="no_threshold", amount_fen=800)
    return coupon_claim(workspace=shop.workspace, customer=buyer.customer, template_id=template.pk)


def test_paying_confirms_the_order_and_commits_its_holds(shop, goods, buyer, seen, django_capture_on_commit_callbacks,
                                                         immediate_tasks):
    coupon = _claimed_coupon(shop, buyer)
    with django_capture_on_commit_callbacks(execute=True):
        order = place(shop, buyer, [(goods[0].pk, 2)], coupon_ids=[coupon.pk])
    assert _stock(goods[0]) == (10, 2)
    with django_capture_on_commit_callbacks(execute=True):
        result = pay(shop, buyer, order)
    assert result.notifications == [204]
    order.refresh_from_db()
    assert (order.order_status, order.payment_status, order.fulfilment_status) == ("confirmed", "paid", "unfulfilled")
    assert (order.paid_fen, order.transaction_id) == (order.total_fen, result.transaction_id)
    assert _stock(goods[0]) == (8, 0)
    assert Coupon.objects.get(pk=coupon.pk).state == "used"
    moves = [(h.field, h.from_value, h.to_value, h.actor_label) for h in order.history.exclude(field="note")]
    assert moves == [("payment_status", "unpaid", "paid", "wechat_pay"),
                     ("order_status", "pending_payment", "confirmed", "wechat_pay")]
    assert [name for name, _ in seen] == ["orders.order_placed", "orders.order_paid"]
    assert seen[1][1]["paid_fen"] == order.total_fen
    assert Event.objects.filter(type="order_placed").get().properties["order_id"] == order.number
    timeline = Event.objects.filter(type="order_paid").get()
    assert timeline.event_id == f"order:{order.number}:order_paid"
    assert timeline.properties["amount_fen"] == order.total_fen
    # Paying again is refused: the order is no longer payable.
    with pytest.raises(SiyuError) as caught:
        services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    assert caught.value.code == "order_not_payable"


def test_prepay_is_retry_safe(shop, goods, buyer):
    order = place(shop, buyer, [(goods[0].pk, 1)])
    first = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    second = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    assert first["prepay_id"] == second["prepay_id"]
    assert PaymentIntent.objects.get().amount_fen == order.total_fen
    assert set(first["pay_params"]) >= {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}


def test_duplicate_notifications_are_applied_once(shop, goods, buyer, seen, django_capture_on_commit_callbacks,
                                                  immediate_tasks):
    order = place(shop, buyer, [(goods[0].pk, 1)])
    shop.sim.faults.add("duplicate_notify", host=HOST)
    with django_capture_on_commit_callbacks(execute=True):
        result = pay(shop, buyer, order)
    assert result.notifications == [204, 204]
    # The same notification resent by hand (as WeChat retries) is a duplicate too.
    outgoing = sim_pay.pay_state(shop.sim).log[-1]
    with django_capture_on_commit_callbacks(execute=True):
        assert notify(shop, outgoing.body, outgoing.headers)[0] == 204
    order.refresh_from_db()
    assert (order.payment_status, order.paid_fen) == ("paid", order.total_fen)
    assert [name for name, _ in seen].count("orders.order_paid") == 1
    assert order.history.filter(field="payment_status").count() == 1
    assert _stock(goods[0]) == (9, 0)
    assert Event.objects.filter(type="order_paid").count() == 1


def test_out_of_order_notifications_each_pay_their_own_order(shop, goods, buyer, django_capture_on_commit_callbacks):
    first = place(shop, buyer, [(goods[0].pk, 1)])
    second = place(shop, buyer, [(goods[1].pk, 3)])
    shop.sim.faults.add("out_of_order", host=HOST, path="/v3/pay/transactions")
    with django_capture_on_commit_callbacks(execute=True):
        held = pay(shop, buyer, first)
    assert held.notifications == []
    assert Order.objects.get(pk=first.pk).payment_status == "unpaid"
    with django_capture_on_commit_callbacks(execute=True):
        later = pay(shop, buyer, second)
    assert later.notifications == [204, 204]  # the second order's notification, then the held one
    assert set(Order.objects.values_list("payment_status", flat=True)) == {"paid"}
    assert (_stock(goods[0]), _stock(goods[1])) == ((9, 0), (7, 0))


def test_a_late_notification_after_the_time_to_pay_is_found_by_auto_cancel(shop, goods, buyer, seen,
                                                                          django_capture_on_commit_callbacks):
    order = place(shop, buyer, [(goods[0].pk, 1)])
    shop.sim.faults.add("delay_callback", host=HOST)
    result = pay(shop, buyer, order)
    assert result.notifications == []
    # The time to pay is over before the notification arrives: auto-cancel asks WeChat Pay first.
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.orders_expire_unpaid(now=timezone.now() + timedelta(hours=1))
    assert counts == {"cancelled": 0, "paid": 1, "errors": 0}
    order.refresh_from_db()
    assert (order.order_status, order.payment_status, order.transaction_id) == ("confirmed", "paid",
                                                                                result.transaction_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert sim_pay.notifications_flush(shop.sim) == [204]  # the late notification changes nothing
    assert [name for name, _ in seen].count("orders.order_paid") == 1
    assert _stock(goods[0]) == (9, 0)


def test_forged_notifications_change_nothing(shop, goods, buyer, django_capture_on_commit_callbacks):
    order = place(shop, buyer, [(goods[0].pk, 1)])
    services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    resource = {"appid": APPID, "mchid": shop.config.mchid, "out_trade_no": order.number,
                "transaction_id": "4200000000202611239999999999", "trade_type": "JSAPI", "trade_state": "SUCCESS",
                "trade_state_desc": "支付成功", "bank_type": "OTHERS", "success_time": "2026-11-23T20:00:00+08:00",
                "payer": {"openid": buyer.openid},
                "amount": {"total": order.total_fen, "payer_total": order.total_fen, "currency": "CNY",
                           "payer_currency": "CNY"}}
    body, headers = sim_pay.notification_build(shop.sim, mchid=shop.config.mchid, event_type="TRANSACTION.SUCCESS",
                                               summary="支付成功", original_type="transaction", resource=resource)
    forged = body.replace(b'"summary": "', b'"summary": "x')
    with django_capture_on_commit_callbacks(execute=True):
        status, _ = notify(shop, forged, headers)
    assert status == 401
    cheap = {**resource, "amount": {**resource["amount"], "total": 1, "payer_total": 1}}
    body, headers = sim_pay.notification_build(shop.sim, mchid=shop.config.mchid, event_type="TRANSACTION.SUCCESS",
                                               summary="支付成功", original_type="transaction", resource=cheap)
    with django_capture_on_commit_callbacks(execute=True):
        status, _ = notify(shop, body, headers)
    assert status == 400  # authentic but for another amount: refused by the provider
    order.refresh_from_db()
    assert (order.order_status, order.payment_status, order.paid_fen) == ("pending_payment", "unpaid", 0)
    assert _stock(goods[0]) == (10, 1)
    assert set(PaymentNotification.objects.values_list("outcome", flat=True)) == {"rejected"}


def test_auto_cancel_releases_stock_coupons_and_points_exactly_once(shop, goods, buyer, seen, settings,
                                                                   django_capture_on_commit_callbacks):
    settings.SIYU_ORDER_PAY_MINUTES = 15
    coupon = _claimed_coupon(shop, buyer)
    loyalty_points.points_earn(workspace=shop.workspace, customer=buyer.customer, amount=500, reason="task",
                               ref="gift-bob")
    order = place(shop, buyer, [(goods[0].pk, 2)], coupon_ids=[coupon.pk], points=500)
    assert timedelta(minutes=14) < order.pay_expires_at - order.created_at <= timedelta(minutes=15)
    services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    assert services.orders_expire_unpaid(now=timezone.now() + timedelta(minutes=10))["cancelled"] == 0
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.orders_expire_unpaid(now=timezone.now() + timedelta(minutes=16))
    assert counts == {"cancelled": 1, "paid": 0, "errors": 0}
    order.refresh_from_db()
    assert (order.order_status, order.payment_status, order.cancel_reason) == ("cancelled", "unpaid", "超时未支付，自动取消")
    assert _stock(goods[0]) == (10, 0)
    assert Coupon.objects.get(pk=coupon.pk).state == "available"
    assert loyalty_points.points_balance(customer=buyer.customer) == 500
    assert PaymentIntent.objects.get().status == "closed"
    assert sim_pay.pay_state(shop.sim).orders[(shop.config.mchid, order.number)].trade_state == "CLOSED"
    # Again, and a customer's cancel on top: nothing more comes back.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.orders_expire_unpaid(now=timezone.now() + timedelta(hours=2))["cancelled"] == 0
        services.order_cancel(order=order, by="customer", customer=buyer.customer)
    assert _stock(goods[0]) == (10, 0)
    assert loyalty_points.points_balance(customer=buyer.customer) == 500
    assert [name for name, _ in seen].count("orders.order_cancelled") == 1
    with pytest.raises(SiyuError) as caught:
        services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    assert caught.value.code == "order_not_payable"


def test_customer_cancel_rules(shop, goods, buyer, django_capture_on_commit_callbacks):
    order = place(shop, buyer, [(goods[0].pk, 1)])
    stranger = make_buyer(shop, "mallory")
    with pytest.raises(SiyuError) as caught:
        services.order_cancel(order=order, by="customer", customer=stranger.customer)
    assert caught.value.status == 404
    assert Order.objects.get(pk=order.pk).order_status == "pending_payment"
    paid = place(shop, buyer, [(goods[1].pk, 1)])
    with django_capture_on_commit_callbacks(execute=True):
        pay(shop, buyer, paid)
    with pytest.raises(SiyuError) as caught:
        services.order_cancel(order=paid, by="customer", customer=buyer.customer)
    assert (caught.value.code, caught.value.status) == ("order_not_cancellable", 409)
    with django_capture_on_commit_callbacks(execute=True):
        services.order_cancel(order=order, by="customer", customer=buyer.customer, reason="不想要了")
    order.refresh_from_db()
    assert (order.order_status, order.cancel_reason) == ("cancelled", "不想要了")
    assert [(h.field, h.to_value, h.actor_label) for h in order.history.filter(field="order_status")] == \
        [("order_status", "cancelled", "customer")]


def test_a_payment_that_arrives_after_cancel_is_refunded_automatically_and_recorded(
        shop, goods, buyer, seen, django_capture_on_commit_callbacks):
    """WeChat Pay could not be reached to close the payment; the consumer paid anyway."""
    order = place(shop, buyer, [(goods[0].pk, 1)])
    params = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    shop.sim.faults.add("http_503", host=HOST, path=f"/v3/pay/transactions/out-trade-no/{order.number}/close",
                        times=-1)
    with django_capture_on_commit_callbacks(execute=True):
        services.order_cancel(order=order, by="customer", customer=buyer.customer)
    shop.sim.faults.clear()
    assert _stock(goods[0]) == (10, 0)
    with django_capture_on_commit_callbacks(execute=True):
        result = sim_pay.pay(shop.sim, buyer.user, params["prepay_id"])
    order.refresh_from_db()
    assert (order.order_status, order.payment_status, order.paid_fen) == ("cancelled", "paid", order.total_fen)
    refund = OrderRefund.objects.get()
    assert (refund.automatic, refund.amount_fen, refund.status) == (True, order.total_fen, "requested")
    assert Refund.objects.get().out_refund_no == refund.out_refund_no
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.refunds_settle(shop.sim)
    order.refresh_from_db()
    assert (order.payment_status, order.refunded_fen) == ("refunded", order.total_fen)
    assert OrderRefund.objects.get().status == "succeeded"
    assert _stock(goods[0]) == (10, 0)  # never committed, released once
    assert order.transaction_id == result.transaction_id
    assert "orders.order_paid" not in [name for name, _ in seen]
    assert [name for name, _ in seen].count("orders.order_refunded") == 1
    assert any("自动退款" in h.reason for h in order.history.all())


def test_a_payment_for_an_order_cancelled_before_its_intent_existed_is_refunded(
        shop, goods, buyer, django_capture_on_commit_callbacks):
    """A prepay racing a cancellation: the intent is made after the order was cancelled, and paid."""
    order = place(shop, buyer, [(goods[0].pk, 1)])
    with django_capture_on_commit_callbacks(execute=True):
        services.order_cancel(order=order, by="operator", actor="operator")
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no=order.number,
                                        amount_fen=order.total_fen, description="race", payer_openid=buyer.openid)
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.pay(shop.sim, buyer.user, prepay.prepay_id)
    order.refresh_from_db()
    assert (order.order_status, order.payment_status) == ("cancelled", "paid")
    refund = OrderRefund.objects.get()
    assert (refund.out_refund_no, refund.automatic) == (f"AUTO{order.number}", True)
    assert Refund.objects.get().out_refund_no == refund.out_refund_no
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.refunds_settle(shop.sim)
    order.refresh_from_db()
    assert (order.payment_status, order.refunded_fen) == ("refunded", order.total_fen)


def test_a_payment_whose_stock_hold_expired_is_refunded_not_oversold(shop, goods, buyer,
                                                                     django_capture_on_commit_callbacks):
    """The stock reservation lapsed (its own expiry) before the money came: the units may be sold to someone
    else already, so the order is cancelled and the payment refunded in full."""
    from siyu.commerce.catalog.inventory import reservations_expire

    order = place(shop, buyer, [(goods[0].pk, 2)])
    params = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    assert reservations_expire(now=timezone.now() + timedelta(hours=2)) == 1
    assert _stock(goods[0]) == (10, 0)
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.pay(shop.sim, buyer.user, params["prepay_id"])
    order.refresh_from_db()
    assert (order.order_status, order.payment_status) == ("cancelled", "paid")
    assert _stock(goods[0]) == (10, 0)
    refund = OrderRefund.objects.get()
    assert (refund.automatic, refund.amount_fen) == (True, order.total_fen)
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.refunds_settle(shop.sim)
    order.refresh_from_db()
    assert (order.payment_status, order.refunded_fen) == ("refunded", order.total_fen)


def test_a_merged_profile_keeps_its_orders(shop, goods, buyer):
    """After a merge the surviving customer sees and may cancel the orders its merged profile placed."""
    from siyu.commerce.orders.selectors import orders_of
    from tests.commerce.promotions_fixtures import make_customer

    order = place(shop, buyer, [(goods[0].pk, 1)])
    survivor = make_customer(shop.workspace)
    buyer.customer.status, buyer.customer.merged_into = "merged", survivor
    buyer.customer.save(update_fields=["status", "merged_into"])
    assert [o.number for o in orders_of(survivor)] == [order.number]
    services.order_cancel(order=order, by="customer", customer=survivor)
    assert Order.objects.get(pk=order.pk).order_status == "cancelled"


def test_payment_facts_whose_event_was_lost_are_caught_up_exactly_once(shop, goods, buyer, seen,
                                                                       django_capture_on_commit_callbacks):
    """The order subscribers were not reached (a crash after the provider committed): the periodic
    reconciliation applies the payment and the refund, once."""
    from siyu.commerce.orders import tasks
    from siyu.wechat.pay import provider

    order = place(shop, buyer, [(goods[0].pk, 1)])
    domain_events.unsubscribe(provider.PAYMENT_SUCCEEDED, tasks.on_payment_succeeded)
    domain_events.unsubscribe(provider.REFUND_SUCCEEDED, tasks.on_refund_succeeded)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            pay(shop, buyer, order)
        assert Order.objects.get(pk=order.pk).payment_status == "unpaid"
        later = timezone.now() + timedelta(minutes=5)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.orders_reconcile_payments(now=later) == {"paid": 1, "refunds": 0}
        order.refresh_from_db()
        assert (order.order_status, order.payment_status) == ("confirmed", "paid")
        refund = services.order_refund(order=order, amount_fen=1000, actor="operator")
        with django_capture_on_commit_callbacks(execute=True):
            sim_pay.refunds_settle(shop.sim)
        assert OrderRefund.objects.get(pk=refund.pk).status == "requested"
        with django_capture_on_commit_callbacks(execute=True):
            assert services.orders_reconcile_payments(now=later) == {"paid": 0, "refunds": 1}
            assert services.orders_reconcile_payments(now=later) == {"paid": 0, "refunds": 0}
    finally:
        domain_events.subscribe(provider.PAYMENT_SUCCEEDED, tasks.on_payment_succeeded)
        domain_events.subscribe(provider.REFUND_SUCCEEDED, tasks.on_refund_succeeded)
    order.refresh_from_db()
    assert (order.payment_status, order.refunded_fen) == ("partially_refunded", 1000)
    assert [name for name, _ in seen].count("orders.order_paid") == 1
    assert [name for name, _ in seen].count("orders.order_refunded") == 1
    assert _stock(goods[0]) == (9, 0)
