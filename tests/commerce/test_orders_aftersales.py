"""Refunds, after-sales requests and complaints: never more than paid, per-line allocation, stock back once,
points and coupons back on a full refund before shipping, the approval flow, shipping and delivery."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from siyu.commerce.catalog.models import Sku
from siyu.commerce.orders import domain, services
from siyu.commerce.orders.models import AfterSale, Complaint, Order, OrderLine, OrderRefund
from siyu.commerce.promotions.models import Coupon
from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.loyalty import points as loyalty_points
from siyu.wechat_sim import pay as sim_pay
from tests.commerce import orders_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.orders_fixtures import make_buyer, pay, place
from tests.commerce.promotions_fixtures import make_coupon_template

pytestmark = pytest.mark.django_db
shop, wechat_sim = orders_fixtures.shop, orders_fixtures.wechat_sim  # fixtures


@pytest.fixture
def goods(shop):
    _, skus = make_product(shop.workspace, title="羊绒毛衣", stock=10, price_fen=10000)
    return skus


@pytest.fixture
def buyer(shop):
    return make_buyer(shop, "carol")


@pytest.fixture
def paid(shop, goods, buyer, django_capture_on_commit_callbacks):
    """A paid order of 3 + 1 units."""
    with django_capture_on_commit_callbacks(execute=True):
        order = place(shop, buyer, [(goods[0].pk, 3), (goods[1].pk, 1)])
        pay(shop, buyer, order)
    order.refresh_from_db()
    assert order.payment_status == "paid"
    return order


def _settle(shop, capture):
    with capture(execute=True):
        sim_pay.refunds_settle(shop.sim)


def _stock(sku):
    return Sku.objects.values_list("stock_on_hand", "stock_reserved").get(pk=sku.pk)


def test_pure_refund_allocation_adds_up_and_respects_rooms():
    shares = domain.allocate_refund(1001, [domain.LineRoom(1, 3000), domain.LineRoom(2, 1000), domain.LineRoom(3, 1)])
    assert sum(shares.values()) == 1001 and all(shares.get(k, 0) <= r for k, r in ((1, 3000), (2, 1000), (3, 1)))
    with pytest.raises(ValueError):
        domain.allocate_refund(4002, [domain.LineRoom(1, 3000), domain.LineRoom(2, 1000)])
    parts = [domain.line_refund_for_quantity(payable_fen=1000, quantity=3, refunded_quantity=n, returning=1,
                                             refunded_fen=sum([333, 333][:n])) for n in range(3)]
    assert parts == [333, 333, 334]


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=12), st.data())
def test_refund_allocation_properties(rooms, data):
    total = sum(rooms)
    assume(total > 0)
    amount = data.draw(st.integers(min_value=1, max_value=total))
    shares = domain.allocate_refund(amount, [domain.LineRoom(n, room) for n, room in enumerate(rooms)])
    assert sum(shares.values()) == amount
    assert all(0 < share <= rooms[n] for n, share in shares.items())


def test_partial_refunds_never_exceed_what_was_paid(shop, paid, django_capture_on_commit_callbacks):
    first = services.order_refund(order=paid, amount_fen=15000, reason="价格调整", actor="operator")
    assert first.status == "requested" and sum(first.lines.values()) == 15000
    with pytest.raises(SiyuError) as caught:
        services.order_refund(order=paid, amount_fen=paid.total_fen - 15000 + 1, actor="operator")
    assert (caught.value.code, caught.value.status) == ("refund_exceeds_paid", 409)
    _settle(shop, django_capture_on_commit_callbacks)
    paid.refresh_from_db()
    assert (paid.payment_status, paid.refunded_fen, paid.order_status) == ("partially_refunded", 15000, "confirmed")
    assert sum(OrderLine.objects.filter(order=paid).values_list("refunded_fen", flat=True)) == 15000
    rest = services.order_refund(order=paid, amount_fen=paid.total_fen - 15000, actor="operator")
    assert rest.status == "requested"
    _settle(shop, django_capture_on_commit_callbacks)
    paid.refresh_from_db()
    assert (paid.payment_status, paid.refunded_fen) == ("refunded", paid.total_fen)
    with pytest.raises(SiyuError) as caught:
        services.order_refund(order=paid, amount_fen=1, actor="operator")
    assert caught.value.code == "order_not_refundable"


def test_full_refund_before_shipping_cancels_and_returns_stock_points_and_coupons_once(
        shop, goods, buyer, django_capture_on_commit_callbacks):
    from siyu.commerce.promotions.services import coupon_claim

    template = make_coupon_template(shop.workspace, kind="no_threshold", amount_fen=1000)
    coupon = coupon_claim(workspace=shop.workspace, customer=buyer.customer, template_id=template.pk)
    loyalty_points.points_earn(workspace=shop.workspace, customer=buyer.customer, amount=300, reason="task",
                               ref="gift-carol")
    with django_capture_on_commit_callbacks(execute=True):
        order = place(shop, buyer, [(goods[0].pk, 2)], coupon_ids=[coupon.pk], points=300)
        pay(shop, buyer, order)
    assert _stock(goods[0]) == (8, 0)
    assert Coupon.objects.get(pk=coupon.pk).state == "used"
    order.refresh_from_db()
    refund = services.order_refund(order=order, amount_fen=order.paid_fen, reason="缺货", actor="operator")
    assert refund.restock is True and refund.quantities == {str(order.lines.get().pk): 2}
    _settle(shop, django_capture_on_commit_callbacks)
    order.refresh_from_db()
    assert (order.order_status, order.payment_status) == ("cancelled", "refunded")
    assert _stock(goods[0]) == (10, 0)
    assert loyalty_points.points_balance(customer=buyer.customer) == 300
    assert Coupon.objects.get(pk=coupon.pk).state == "available"
    # The refund notification again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.order_refund_settle(workspace_id=order.workspace_id, number=order.number,
                                            out_refund_no=refund.out_refund_no, amount_fen=refund.amount_fen) == \
            "duplicate"
    assert _stock(goods[0]) == (10, 0)
    assert loyalty_points.points_balance(customer=buyer.customer) == 300


def test_refund_refused_by_wechat_pay_releases_its_reservation(shop, paid, monkeypatch):
    def refuse(self, **kwargs):
        raise SiyuError("wechat_pay_refused", "微信支付退款失败：NOT_ENOUGH 余额不足", "refused", status=409)

    monkeypatch.setattr(services.WeChatPayProvider, "refund", refuse)
    line = paid.lines.order_by("pk").first()
    refund = services.order_refund(order=paid, lines={line.pk: 1}, actor="operator")
    assert refund.status == "failed" and "NOT_ENOUGH" in refund.failure
    line.refresh_from_db()
    assert (line.refunded_fen, line.refunded_quantity) == (0, 0)
    paid.refresh_from_db()
    assert (paid.payment_status, paid.refunded_fen) == ("paid", 0)


def test_ship_then_deliver_completes_the_order(shop, paid, django_capture_on_commit_callbacks):
    for bad in [("", "SF123456"), ("顺丰", "12"), ("顺丰", "SF 12345 <script>")]:
        with pytest.raises(SiyuError):
            services.order_ship(order=paid, carrier=bad[0], tracking_number=bad[1], actor="operator")
    assert Order.objects.get(pk=paid.pk).fulfilment_status == "unfulfilled"
    shipped = []
    handler = lambda **payload: shipped.append(payload)  # noqa: E731
    domain_events.subscribe("orders.order_shipped", handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.order_ship(order=paid, carrier="顺丰速运", tracking_number="SF1234567890", actor="operator")
    finally:
        domain_events.unsubscribe("orders.order_shipped", handler)
    assert [(p["number"], p["carrier"], p["tracking_number"]) for p in shipped] == [(paid.number, "顺丰速运",
                                                                                   "SF1234567890")]
    with pytest.raises(SiyuError) as caught:  # shipping twice is an illegal move
        services.order_ship(order=paid, carrier="顺丰速运", tracking_number="SF1234567890", actor="operator")
    assert (caught.value.code, caught.value.status) == ("order_transition_refused", 409)
    services.order_deliver(order=paid, actor="customer", customer=paid.customer)
    paid.refresh_from_db()
    assert (paid.order_status, paid.fulfilment_status, paid.carrier) == ("completed", "delivered", "顺丰速运")
    moves = list(paid.history.exclude(field="note").values_list("field", "to_value"))
    assert moves[-3:] == [("fulfilment_status", "shipped"), ("fulfilment_status", "delivered"),
                          ("order_status", "completed")]


def test_unpaid_orders_cannot_ship_or_refund(shop, goods, buyer):
    order = place(shop, buyer, [(goods[0].pk, 1)])
    with pytest.raises(SiyuError) as caught:
        services.order_ship(order=order, carrier="顺丰", tracking_number="SF0000001", actor="operator")
    assert caught.value.status == 409
    with pytest.raises(SiyuError) as caught:
        services.order_refund(order=order, amount_fen=100, actor="operator")
    assert caught.value.code == "order_not_refundable"


def test_return_and_refund_flow(shop, goods, paid, buyer, django_capture_on_commit_callbacks):
    services.order_ship(order=paid, carrier="中通", tracking_number="ZT100200300", actor="operator")
    line = paid.lines.get(sku_id=goods[0].pk)
    with pytest.raises(SiyuError) as caught:  # more units than bought
        services.aftersale_request(order=paid, customer=buyer.customer, kind="return_refund", reason="尺码不合",
                                   lines=[(line.pk, 4)])
    assert caught.value.code == "refund_quantity_exceeded"
    with pytest.raises(SiyuError) as caught:  # more money than the units carry
        services.aftersale_request(order=paid, customer=buyer.customer, kind="return_refund", reason="尺码不合",
                                   lines=[(line.pk, 1)], amount_fen=line.payable_fen)
    assert caught.value.code == "refund_exceeds_lines"
    stranger = make_buyer(shop, "dave")
    with pytest.raises(SiyuError) as caught:
        services.aftersale_request(order=paid, customer=stranger.customer, kind="refund_only", reason="x",
                                   lines=[(line.pk, 1)])
    assert caught.value.status == 404
    request = services.aftersale_request(order=paid, customer=buyer.customer, kind="return_refund",
                                         reason="尺码不合", lines=[(line.pk, 2)])
    assert request.amount_fen == line.payable_fen * 2 // 3
    with pytest.raises(SiyuError) as caught:  # one open request per order
        services.aftersale_request(order=paid, customer=buyer.customer, kind="refund_only", reason="又一个",
                                   lines=[(line.pk, 1)])
    assert caught.value.code == "aftersale_open"
    with pytest.raises(SiyuError):  # cannot refund before it is approved and the goods are back
        services.aftersale_refund(aftersale=request, actor="operator")
    services.aftersale_approve(aftersale=request, actor="operator")
    assert _stock(goods[0]) == (7, 0)
    services.aftersale_receive_return(aftersale=request, actor="operator")
    assert _stock(goods[0]) == (9, 0)
    with pytest.raises(SiyuError) as caught:  # receiving twice is refused: stock comes back once
        services.aftersale_receive_return(aftersale=request, actor="operator")
    assert caught.value.code == "aftersale_transition_refused"
    refund = services.aftersale_refund(aftersale=request, actor="operator")
    assert (refund.amount_fen, refund.restock) == (request.amount_fen, False)
    _settle(shop, django_capture_on_commit_callbacks)
    request.refresh_from_db()
    paid.refresh_from_db()
    assert request.status == "refunded"
    assert (paid.payment_status, paid.refunded_fen, paid.fulfilment_status) == ("partially_refunded",
                                                                                request.amount_fen, "shipped")
    assert _stock(goods[0]) == (9, 0)  # the refund itself restocks nothing more


def test_refund_only_rejected_then_exchange(shop, goods, paid, buyer):
    line = paid.lines.get(sku_id=goods[1].pk)
    request = services.aftersale_request(order=paid, customer=buyer.customer, kind="refund_only", reason="不想要了",
                                         lines=[(line.pk, 1)])
    with pytest.raises(SiyuError):
        services.aftersale_reject(aftersale=request, actor="operator", note_text="")
    services.aftersale_reject(aftersale=request, actor="operator", note_text="商品已拆封")
    assert AfterSale.objects.get(pk=request.pk).status == "rejected"
    with pytest.raises(SiyuError) as caught:  # exchanges need the goods to have shipped
        services.aftersale_request(order=paid, customer=buyer.customer, kind="exchange", reason="换颜色",
                                   lines=[(line.pk, 1)])
    assert caught.value.code == "aftersale_not_shipped"
    services.order_ship(order=paid, carrier="韵达", tracking_number="YD55555555", actor="operator")
    exchange = services.aftersale_request(order=paid, customer=buyer.customer, kind="exchange", reason="换颜色",
                                          lines=[(line.pk, 1)])
    assert exchange.amount_fen == 0
    services.aftersale_approve(aftersale=exchange, actor="operator")
    services.aftersale_receive_return(aftersale=exchange, actor="operator")
    assert _stock(goods[1]) == (10, 0)
    services.aftersale_close(aftersale=exchange, actor="operator", carrier="韵达", tracking_number="YD66666666")
    assert AfterSale.objects.get(pk=exchange.pk).status == "closed"
    assert _stock(goods[1]) == (9, 0)
    assert OrderRefund.objects.count() == 0


def test_complaints(shop, paid, buyer, other_workspace):
    with pytest.raises(SiyuError):
        services.complaint_file(workspace=shop.workspace, customer=buyer.customer, category="bogus", content="x")
    with pytest.raises(SiyuError):
        services.complaint_file(workspace=other_workspace, customer=buyer.customer, category="delivery", content="x")
    complaint = services.complaint_file(workspace=shop.workspace, customer=buyer.customer, order=paid,
                                        category="delivery", content="三天了还没发货")
    services.complaint_resolve(complaint=complaint, actor="operator", resolution="已加急发货并补偿优惠券")
    assert Complaint.objects.get().status == "resolved"
    with pytest.raises(SiyuError) as caught:
        services.complaint_resolve(complaint=complaint, actor="operator", resolution="再次")
    assert caught.value.code == "complaint_closed"
    assert any("投诉" in row.reason for row in paid.history.all())


def test_an_operator_cancels_a_paid_order_before_shipping_by_refunding_it(shop, goods, paid, buyer,
                                                                         django_capture_on_commit_callbacks):
    with pytest.raises(SiyuError) as caught:  # the customer cannot: paid orders are refunded through after-sales
        services.order_cancel(order=paid, by="customer", customer=buyer.customer)
    assert caught.value.code == "order_not_cancellable"
    assert _stock(goods[0]) == (7, 0)
    services.order_cancel(order=paid, by="operator", actor="operator", reason="缺货")
    refund = OrderRefund.objects.get()
    assert (refund.amount_fen, refund.restock) == (paid.paid_fen, True)
    with pytest.raises(SiyuError) as caught:  # a second click while the refund is on its way
        services.order_cancel(order=paid, by="operator", actor="operator")
    assert caught.value.code == "refund_in_flight"
    _settle(shop, django_capture_on_commit_callbacks)
    paid.refresh_from_db()
    assert (paid.order_status, paid.payment_status) == ("cancelled", "refunded")
    assert (_stock(goods[0]), _stock(goods[1])) == ((10, 0), (10, 0))
    with pytest.raises(SiyuError):
        services.order_ship(order=paid, carrier="顺丰", tracking_number="SF12345678", actor="operator")
