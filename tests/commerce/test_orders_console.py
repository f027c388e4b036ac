"""Console pages for orders and after-sales: filters, detail, actions by role, masked addresses for analysts,
service staff limited to their own customers, bad input refused with nothing changed."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from siyu.commerce.orders import services
from siyu.commerce.orders.models import AfterSale, Complaint, Order, OrderHistory
from siyu.core.services import membership_grant
from tests.commerce import orders_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.orders_fixtures import ADDRESS, make_buyer, pay, place

pytestmark = pytest.mark.django_db
shop, wechat_sim = orders_fixtures.shop, orders_fixtures.wechat_sim  # fixtures


@pytest.fixture
def staff(shop, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    result = {}
    for role in ("admin", "operator", "service", "analyst"):
        membership = membership_grant(workspace=shop.workspace, username=f"orders-{role}", password="pass-12345",
                                      role=role)
        client = Client()
        client.force_login(membership.user)
        result[role] = (client, membership)
    return result


@pytest.fixture
def orders(shop, staff, django_capture_on_commit_callbacks):
    """One paid order (owned by the service member's customer) and one unpaid order of someone else."""
    _, skus = make_product(shop.workspace, title="白瓷茶具", stock=10, price_fen=26800)
    mine, other = make_buyer(shop, "erin"), make_buyer(shop, "frank")
    mine.customer.owner = staff["service"][1].user
    mine.customer.save(update_fields=["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        paid = place(shop, mine, [(skus[0].pk, 2)])
        pay(shop, mine, paid)
        unpaid = place(shop, other, [(skus[1].pk, 1)])
    paid.refresh_from_db()
    return paid, unpaid


def _snapshot():
    return (list(Order.objects.order_by("pk").values_list("order_status", "payment_status", "fulfilment_status",
                                                          "refunded_fen", "remark", "tracking_number")),
            OrderHistory.objects.count())


def test_list_filters_and_detail(staff, orders):
    paid, unpaid = orders
    client = staff["operator"][0]
    page = client.get(reverse("console:commerce_orders"))
    assert page.status_code == 200
    text = page.content.decode()
    assert paid.number in text and unpaid.number in text
    page = client.get(reverse("console:commerce_orders"), {"payment": "paid"})
    assert paid.number in page.content.decode() and unpaid.number not in page.content.decode()
    page = client.get(reverse("console:commerce_orders"), {"number": unpaid.number[:12], "status": "pending_payment"})
    assert unpaid.number in page.content.decode() and paid.number not in page.content.decode()
    page = client.get(reverse("console:commerce_orders"), {"customer": str(paid.customer_id), "fulfilment": "bogus"})
    assert paid.number in page.content.decode() and unpaid.number not in page.content.decode()
    assert client.get(reverse("console:commerce_orders"), {"from": "2026-13-45"}).status_code == 400
    detail = client.get(reverse("console:commerce_order_detail", args=[paid.pk]))
    text = detail.content.decode()
    assert detail.status_code == 200
    assert "白瓷茶具" in text and ADDRESS["phone"] in text and "商品金额" in text and 'id="order-actions"' in text
    assert "已支付" in text and "待付款" in text  # the history shows both sides of each move


def test_analysts_read_with_the_address_masked_and_cannot_act(staff, orders):
    paid, _ = orders
    client = staff["analyst"][0]
    text = client.get(reverse("console:commerce_order_detail", args=[paid.pk])).content.decode()
    assert ADDRESS["phone"] not in text and ADDRESS["detail"] not in text and "138****8000" in text
    assert 'id="order-actions"' not in text
    before = _snapshot()
    answer = client.post(reverse("console:commerce_order_ship", args=[paid.pk]),
                         {"carrier": "顺丰", "tracking_number": "SF123456789"})
    assert answer.status_code == 403
    assert _snapshot() == before


def test_service_staff_see_only_their_customers_orders_and_cannot_act(staff, orders):
    paid, unpaid = orders
    client = staff["service"][0]
    text = client.get(reverse("console:commerce_orders")).content.decode()
    assert paid.number in text and unpaid.number not in text
    assert client.get(reverse("console:commerce_order_detail", args=[paid.pk])).status_code == 200
    assert client.get(reverse("console:commerce_order_detail", args=[unpaid.pk])).status_code == 404
    before = _snapshot()
    assert client.post(reverse("console:commerce_order_cancel", args=[unpaid.pk])).status_code == 403
    assert _snapshot() == before


def test_operator_ships_remarks_refunds_and_cancels(shop, staff, orders, django_capture_on_commit_callbacks):
    paid, unpaid = orders
    client = staff["operator"][0]
    answer = client.post(reverse("console:commerce_order_ship", args=[paid.pk]),
                         {"carrier": "顺丰速运", "tracking_number": "SF1029384756"})
    assert answer.status_code == 302
    answer = client.post(reverse("console:commerce_order_remark", args=[paid.pk]), {"remark": "客户要求周末送达"})
    assert answer.status_code == 302
    line = paid.lines.get()
    answer = client.post(reverse("console:commerce_order_refund", args=[paid.pk]),
                         {f"qty_{line.pk}": "1", "reason": "破损"})
    assert answer.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(reverse("console:commerce_order_cancel", args=[unpaid.pk]), {"reason": "客户电话取消"})
    assert answer.status_code == 302
    paid.refresh_from_db()
    unpaid.refresh_from_db()
    assert (paid.fulfilment_status, paid.tracking_number) == ("shipped", "SF1029384756")
    assert "客户要求周末送达" in paid.remark
    assert paid.refunds.get().amount_fen == line.payable_fen // 2
    assert (unpaid.order_status, unpaid.cancel_reason) == ("cancelled", "客户电话取消")
    history = OrderHistory.objects.filter(order=paid, field="fulfilment_status").get()
    assert history.actor.username == "orders-operator"


@pytest.mark.parametrize(("view", "data", "status"), [
    ("commerce_order_ship", {"carrier": "", "tracking_number": "SF1"}, 400),
    ("commerce_order_refund", {"amount_yuan": "-3"}, 400),
    ("commerce_order_refund", {"amount_yuan": "1.234"}, 400),
    ("commerce_order_refund", {"amount_yuan": "99999"}, 409),
    ("commerce_order_refund", {"qty_999999": "1"}, 400),
    ("commerce_order_refund", {}, 400),
    ("commerce_order_remark", {"remark": ""}, 400),
    ("commerce_order_ship", {"carrier": "顺丰", "tracking_number": "SF 1"}, 400),
])
def test_bad_input_is_refused_with_nothing_changed(staff, orders, view, data, status):
    paid, _ = orders
    if view == "commerce_order_refund" and "qty_999999" in data:
        data = {f"qty_{paid.lines.get().pk}": "x"}
    before = _snapshot()
    answer = staff["admin"][0].post(reverse(f"console:{view}", args=[paid.pk]), data)
    assert answer.status_code == status
    assert _snapshot() == before


def test_orders_of_another_workspace_are_not_found(staff, orders, other_workspace):
    foreign = Order.objects.get(pk=orders[1].pk)
    foreign_pk = foreign.pk
    Order.objects.filter(pk=foreign_pk).update(workspace=other_workspace)
    assert staff["admin"][0].get(reverse("console:commerce_order_detail", args=[foreign_pk])).status_code == 404
    assert staff["admin"][0].post(reverse("console:commerce_order_cancel", args=[foreign_pk])).status_code == 404
    assert Order.objects.get(pk=foreign_pk).order_status == "pending_payment"


def test_aftersales_page_and_actions(shop, staff, orders):
    paid, _ = orders
    services.order_ship(order=paid, carrier="顺丰", tracking_number="SF777777777", actor="operator")
    line = paid.lines.get()
    request = services.aftersale_request(order=paid, customer=paid.customer, kind="return_refund", reason="不合适",
                                         lines=[(line.pk, 1)])
    complaint = services.complaint_file(workspace=shop.workspace, customer=paid.customer, order=paid,
                                        category="product", content="杯口有裂纹")
    client = staff["operator"][0]
    text = client.get(reverse("console:commerce_aftersales")).content.decode()
    assert "不合适" in text and "杯口有裂纹" in text
    url = reverse("console:commerce_aftersale_action", args=[request.pk])
    assert client.post(url, {"action": "explode"}).status_code == 400
    assert client.post(url, {"action": "refund"}).status_code == 409
    assert AfterSale.objects.get(pk=request.pk).status == "requested"
    assert staff["analyst"][0].post(url, {"action": "approve"}).status_code == 403
    assert client.post(url, {"action": "approve"}).status_code == 302
    assert client.post(url, {"action": "receive"}).status_code == 302
    assert client.post(url, {"action": "refund"}).status_code == 302
    assert AfterSale.objects.get(pk=request.pk).refunds.count() == 1
    resolve = reverse("console:commerce_complaint_resolve", args=[complaint.pk])
    assert client.post(resolve, {"resolution": ""}).status_code == 400
    assert client.post(resolve, {"resolution": "已补发"}).status_code == 302
    assert Complaint.objects.get().status == "resolved"
    service_text = staff["service"][0].get(reverse("console:commerce_aftersales"), {"complaints": ""}).content.decode()
    assert "杯口有裂纹" in service_text  # the service member owns this customer
