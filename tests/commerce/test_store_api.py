"""The mini-program API (/api/mini/v1/): the same store over JSON with the Bearer session; every bad input
(wrong types, bad quantities, foreign SKUs, other customers' orders, expired coupons, off-shelf products)
answered with code + Chinese + English + status, and nothing changed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from siyu.commerce.catalog.models import ProductStatus
from siyu.commerce.orders.models import Order
from siyu.commerce.promotions.models import Coupon
from siyu.commerce.promotions.services import coupon_claim
from siyu.commerce.store.models import CartItem
from siyu.wechat_sim import pay as sim_pay
from tests.commerce import store_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.store_fixtures import ADDRESS, h5_shopper, make_coupon_template, mini_shopper

pytestmark = pytest.mark.django_db
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory
API = "/api/mini/v1"


def call(shopper, method: str, path: str, body=None, raw: str | None = None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    kwargs = {"content_type": "application/json"} if data is not None else {}
    return getattr(shopper.client, method)(API + path, data, **kwargs, **shopper.headers) if data is not None \
        else getattr(shopper.client, method)(API + path, **shopper.headers)


def refused(response, code: str, status: int) -> dict:
    assert response.status_code == status, response.content.decode()[:500]
    body = response.json()
    assert body["code"] == code, body
    assert body["message"] and body["message_en"]
    return body


def cart_of(shopper) -> dict[int, int]:
    return dict(CartItem.objects.filter(cart__customer=shopper.customer).values_list("sku_id", "quantity"))


def test_browse_and_cart_crud(store):
    shopper = mini_shopper(store)
    cream, (small, large) = store.products["cream"]
    home = call(shopper, "get", "/home")
    assert home.status_code == 200 and {c["name"] for c in home.json()["categories"]} == {"护肤"}
    assert [c["name"] for c in call(shopper, "get", "/categories").json()] == ["护肤"]
    listing = call(shopper, "get", "/products?q=面霜").json()
    assert [item["title"] for item in listing["items"]] == ["玫瑰面霜"] and listing["items"][0]["price_fen"] == 12900
    product = call(shopper, "get", f"/products/{cream.pk}").json()
    assert {sku["id"] for sku in product["skus"]} == {small.pk, large.pk}
    assert call(shopper, "post", "/cart/items", {"sku_id": small.pk, "quantity": 2}).json()["count"] == 2
    assert call(shopper, "put", f"/cart/items/{small.pk}", {"quantity": 3, "selected": True}).json()["count"] == 3
    call(shopper, "post", "/cart/items", {"sku_id": large.pk, "quantity": 1})
    assert call(shopper, "delete", f"/cart/items/{large.pk}").json()["count"] == 3
    assert cart_of(shopper) == {small.pk: 3}


def test_requests_without_a_session_are_refused(store):
    _cream, (small, _large) = store.products["cream"]
    stranger = Client()
    refused(stranger.get(API + "/cart"), "unauthorized", 401)
    refused(stranger.post(API + "/cart/items", json.dumps({"sku_id": small.pk, "quantity": 1}),
                          content_type="application/json", HTTP_AUTHORIZATION="Bearer wxs_forged"), "unauthorized", 401)
    assert not CartItem.objects.exists()


def test_an_h5_cookie_session_must_send_the_csrf_token_on_writes(store):
    shopper = h5_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    refused(shopper.client.post(API + "/cart/items", json.dumps({"sku_id": small.pk, "quantity": 1}),
                                content_type="application/json"), "csrf_failed", 403)
    assert shopper.client.get(API + "/cart").status_code == 200  # reads need no token
    assert not CartItem.objects.exists()


@pytest.mark.parametrize(("body", "code", "status"), [
    ({"sku_id": "1", "quantity": 1}, "invalid_request", 422),
    ({"sku_id": 1, "quantity": "2"}, "invalid_request", 422),
    ({"sku_id": 1, "quantity": 1.5}, "invalid_request", 422),
    ({"sku_id": 1, "quantity": None}, "invalid_request", 422),
    ({"sku_id": 1, "quantity": True}, "invalid_request", 422),
    ({"quantity": 1}, "invalid_request", 422),
    ({"sku_id": "SKU", "quantity": -1}, "invalid_request", 422),
    ({"sku_id": 0, "quantity": 1}, "invalid_id", 400),
    ({"sku_id": 10**20, "quantity": 1}, "invalid_id", 400),
])
def test_cart_refuses_wrong_types(store, body, code, status):
    shopper = mini_shopper(store)
    refused(call(shopper, "post", "/cart/items", body), code, status)
    assert cart_of(shopper) == {}


@pytest.mark.parametrize(("quantity", "code", "status"), [
    (-1, "invalid_quantity", 400), (0, "invalid_quantity", 400), (100, "quantity_too_large", 400),
    (10**30, "quantity_too_large", 400), (11, "out_of_stock", 409),
])
def test_cart_refuses_bad_quantities(store, quantity, code, status):
    shopper = mini_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    call(shopper, "post", "/cart/items", {"sku_id": small.pk, "quantity": 1})
    refused(call(shopper, "post", "/cart/items", {"sku_id": small.pk, "quantity": quantity}), code, status)
    refused(call(shopper, "put", f"/cart/items/{small.pk}", {"quantity": quantity if quantity else -1}),
            code if quantity else "invalid_quantity", status)
    assert cart_of(shopper) == {small.pk: 1}


def test_foreign_and_off_shelf_skus_are_refused(store, other_workspace):
    shopper = mini_shopper(store)
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    refused(call(shopper, "post", "/cart/items", {"sku_id": foreign_sku.pk, "quantity": 1}), "sku_not_found", 404)
    refused(call(shopper, "get", f"/products/{_foreign.pk}"), "product_not_found", 404)
    refused(call(shopper, "post", "/quote", {"lines": [{"sku_id": foreign_sku.pk, "quantity": 1}]}),
            "sku_not_found", 404)
    serum, (red, _blue) = store.products["serum"]
    call(shopper, "post", "/cart/items", {"sku_id": red.pk, "quantity": 1})
    serum.status = ProductStatus.OFF_SHELF
    serum.save()
    refused(call(shopper, "post", "/cart/items", {"sku_id": red.pk, "quantity": 1}), "product_off_shelf", 409)
    assert call(shopper, "get", "/cart").json()["lines"][0]["problem"] == "off_shelf"
    refused(call(shopper, "post", "/checkout", {"address": ADDRESS}), "product_off_shelf", 409)
    assert not Order.objects.exists() and cart_of(shopper) == {red.pk: 1}


def test_quote_checkout_prepay_pay_and_orders(store, django_capture_on_commit_callbacks):
    shopper = mini_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    _serum, (red, _blue) = store.products["serum"]
    template = make_coupon_template(store.workspace, name="满300减30", kind="threshold", threshold_fen=30000,
                                    amount_fen=3000)
    claimed = call(shopper, "post", "/coupons/claim", {"template_id": template.pk})
    assert claimed.status_code == 201
    coupon_id = claimed.json()["coupon_id"]
    assert [c["id"] for c in call(shopper, "get", "/coupons").json()["mine"]] == [coupon_id]
    call(shopper, "post", "/cart/items", {"sku_id": small.pk, "quantity": 1})
    call(shopper, "post", "/cart/items", {"sku_id": red.pk, "quantity": 2})
    quote = call(shopper, "post", "/quote", {"coupon_ids": [coupon_id]}).json()
    assert quote["total_fen"] == 27700
    assert sum(a["amount_fen"] for a in quote["adjustments"]) == quote["total_fen"]
    assert [a["kind"] for a in quote["adjustments"] if a["amount_fen"] < 0] == ["coupon"]

    placed = call(shopper, "post", "/checkout", {"coupon_ids": [coupon_id], "address": ADDRESS, "note": "请用纸盒"})
    assert placed.status_code == 201, placed.content
    order = placed.json()
    assert order["total_fen"] == 27700 and order["payment_status"] == "unpaid" and order["address"]["city"] == "上海市"
    assert cart_of(shopper) == {}
    prepay = call(shopper, "post", f"/orders/{order['number']}/prepay")
    assert prepay.status_code == 200
    params = prepay.json()["pay_params"]
    assert params["appId"] == store.miniapp.appid and params["package"].startswith("prepay_id=") and params["paySign"]
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.pay(store.sim, shopper.user, prepay.json()["prepay_id"])
    detail = call(shopper, "get", f"/orders/{order['number']}").json()
    assert detail["payment_status"] == "paid" and detail["paid_fen"] == 27700
    assert [row["number"] for row in call(shopper, "get", "/orders").json()] == [order["number"]]
    refused(call(shopper, "post", f"/orders/{order['number']}/cancel"), "order_not_cancellable", 409)
    refused(call(shopper, "post", f"/orders/{order['number']}/prepay"), "order_not_payable", 409)
    line_id = detail["lines"][0]["id"]
    for body, code, status in [
        ({"kind": "refund_only", "reason": "不想要了", "lines": [{"line_id": line_id, "quantity": -1}]}, "invalid_quantity", 400),
        ({"kind": "refund_only", "reason": "不想要了", "lines": [{"line_id": 999999, "quantity": 1}]}, "order_line_not_found", 404),
        ({"kind": "refund_only", "reason": "", "lines": [{"line_id": line_id, "quantity": 1}]}, "invalid_text", 400),
        ({"kind": "return_refund", "reason": "不想要了", "lines": [{"line_id": line_id, "quantity": 1}]}, "aftersale_not_shipped", 409),
        ({"kind": "refund_only", "reason": 5, "lines": [{"line_id": line_id, "quantity": 1}]}, "invalid_request", 422),
    ]:
        refused(call(shopper, "post", f"/orders/{order['number']}/aftersales", body), code, status)
    asked = call(shopper, "post", f"/orders/{order['number']}/aftersales",
                 {"kind": "refund_only", "reason": "不想要了", "lines": [{"line_id": line_id, "quantity": 1}]})
    assert asked.status_code == 201 and asked.json()["status"] == "requested"


def test_other_customers_orders_are_not_found_and_unchanged(store):
    buyer, other = mini_shopper(store, "buyer"), mini_shopper(store, "other")
    _cream, (small, _large) = store.products["cream"]
    placed = call(buyer, "post", "/checkout", {"lines": [{"sku_id": small.pk, "quantity": 1}], "address": ADDRESS})
    number = placed.json()["number"]
    refused(call(other, "get", f"/orders/{number}"), "order_not_found", 404)
    refused(call(other, "post", f"/orders/{number}/cancel"), "order_not_found", 404)
    refused(call(other, "post", f"/orders/{number}/prepay"), "order_not_found", 404)
    refused(call(other, "post", f"/orders/{number}/aftersales",
                 {"kind": "refund_only", "reason": "x", "lines": [{"line_id": 1, "quantity": 1}]}), "order_not_found", 404)
    assert Order.objects.get(number=number).order_status == "pending_payment"
    cancelled = call(buyer, "post", f"/orders/{number}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["order_status"] == "cancelled"


def test_checkout_refuses_expired_coupons_bad_addresses_and_bad_points(store):
    shopper = mini_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    template = make_coupon_template(store.workspace, kind="no_threshold", amount_fen=500)
    coupon = coupon_claim(workspace=store.workspace, customer=shopper.customer, template_id=template.pk)
    Coupon.objects.filter(pk=coupon.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    lines = [{"sku_id": small.pk, "quantity": 1}]
    refused(call(shopper, "post", "/quote", {"lines": lines, "coupon_ids": [coupon.pk]}), "coupon_unavailable", 400)
    refused(call(shopper, "post", "/checkout", {"lines": lines, "coupon_ids": [coupon.pk], "address": ADDRESS}),
            "coupon_unavailable", 400)
    refused(call(shopper, "post", "/checkout", {"lines": lines, "address": {**ADDRESS, "phone": "12"}}),
            "invalid_address", 400)
    refused(call(shopper, "post", "/checkout", {"lines": lines, "address": {**ADDRESS, "name": 7}}),
            "invalid_request", 422)
    refused(call(shopper, "post", "/checkout", {"lines": lines, "points": -5, "address": ADDRESS}), "invalid_points", 400)
    refused(call(shopper, "post", "/checkout", {"lines": [], "address": ADDRESS}), "invalid_lines", 400)
    refused(call(shopper, "post", "/checkout", {"lines": lines * 2, "address": ADDRESS}), "duplicate_line", 400)
    refused(call(shopper, "post", "/checkout", raw="{not json"), "http_error", 400)
    assert not Order.objects.exists()
    assert Coupon.objects.get(pk=coupon.pk).state == "available"


def test_the_api_is_documented_in_openapi(store):
    schema = Client().get("/api/openapi.json").json()
    for path in ("/api/mini/v1/home", "/api/mini/v1/cart/items", "/api/mini/v1/quote", "/api/mini/v1/checkout",
                 "/api/mini/v1/orders/{number}/prepay", "/api/mini/v1/orders/{number}/aftersales",
                 "/api/mini/v1/coupons/claim"):
        assert path in schema["paths"], path


def test_topup_suggestions_over_the_api(store):
    from tests.commerce.promotions_fixtures import make_full_reduction

    shopper = mini_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    gift, _ = make_product(store.workspace, title="节日礼盒", price_fen=25900, stock=3)
    make_full_reduction(store.workspace, tiers=((30000, 3000),), name="满300减30")
    assert call(shopper, "get", "/cart/topups").json()["items"] == []  # empty cart: nothing to top up
    call(shopper, "post", "/cart/items", {"sku_id": small.pk, "quantity": 1})
    items = call(shopper, "get", "/cart/topups").json()["items"]
    assert [item["id"] for item in items] == [gift.pk]


def test_flash_sale_purchase_over_the_api(store, other_workspace):
    from tests.commerce.promotions_fixtures import make_flash_sale

    shopper = mini_shopper(store)
    _serum, (red, _blue) = store.products["serum"]
    sale = make_flash_sale(store.workspace, red, price_fen=100, stock=2, per_customer_limit=1)
    lines = [{"sku_id": red.pk, "quantity": 1}]
    quote = call(shopper, "post", "/quote", {"lines": lines, "flash_sale_id": sale.pk}).json()
    assert quote["lines"][0]["price_kind"] == "flash" and quote["lines"][0]["item_price_fen"] == 100
    refused(call(shopper, "post", "/quote", {"flash_sale_id": sale.pk}), "invalid_lines", 400)
    refused(call(shopper, "post", "/checkout", {"lines": [{"sku_id": red.pk, "quantity": 2}], "flash_sale_id": sale.pk,
                                                "address": ADDRESS}), "flash_limit_reached", 409)
    refused(call(shopper, "post", "/checkout", {"lines": lines, "flash_sale_id": "1", "address": ADDRESS}),
            "invalid_request", 422)
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    foreign_sale = make_flash_sale(other_workspace, foreign_sku)
    answer = call(shopper, "post", "/checkout", {"lines": lines, "flash_sale_id": foreign_sale.pk, "address": ADDRESS})
    assert answer.status_code == 404, answer.content
    assert not Order.objects.exists()
    placed = call(shopper, "post", "/checkout", {"lines": lines, "flash_sale_id": sale.pk, "address": ADDRESS})
    assert placed.status_code == 201, placed.content
    assert placed.json()["lines"][0]["payable_fen"] == 100  # the flash price, not the SKU's 89 yuan
    assert Order.objects.get().flash_sale_id == sale.pk


def test_the_product_page_reads_its_skus_once_and_shows_every_change_at_once(store, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from siyu.commerce.catalog.inventory import stock_adjust
    from siyu.commerce.store import member_services
    from tests.commerce.promotions_fixtures import make_limited_discount

    viewed = []
    monkeypatch.setattr(member_services, "product_viewed", lambda **kwargs: viewed.append(kwargs["product_id"]))
    shopper = mini_shopper(store)
    cream, (small, large) = store.products["cream"]
    assert call(shopper, "get", f"/products/{cream.pk}").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        page = call(shopper, "get", f"/products/{cream.pk}").json()
    sku_reads = [q["sql"] for q in queries.captured_queries if 'FROM "commerce_catalog_sku"' in q["sql"]]
    assert len(sku_reads) == 1 and len(queries.captured_queries) <= 6
    assert [sku["price_fen"] for sku in page["skus"]] == [12900, 12900] and page["skus"][0]["available"] == 10
    assert viewed == [cream.pk]  # the second view of the day queued nothing more
    make_limited_discount(store.workspace, percent_off=10, sku_ids=[small.pk])
    stock_adjust(sku=small, delta=-7, reason="盘点")
    small.refresh_from_db()
    small.low_stock_threshold = 5
    small.save()
    page = call(shopper, "get", f"/products/{cream.pk}").json()
    first = next(sku for sku in page["skus"] if sku["id"] == small.pk)
    assert (first["price_fen"], first["price_kind"], first["available"], first["low"]) == (11610, "limited_time", 3,
                                                                                          True)
    large.active = False
    large.save()
    assert [sku["id"] for sku in call(shopper, "get", f"/products/{cream.pk}").json()["skus"]] == [small.pk]


def test_a_quote_reads_each_sku_once_and_refuses_what_the_cart_refuses(store, other_workspace):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    shopper = mini_shopper(store)
    _cream, (small, large) = store.products["cream"]
    body = {"lines": [{"sku_id": small.pk, "quantity": 1}, {"sku_id": large.pk, "quantity": 2}]}
    call(shopper, "post", "/quote", body)
    with CaptureQueriesContext(connection) as queries:
        quoted = call(shopper, "post", "/quote", body).json()
    assert quoted["subtotal_fen"] == 3 * 12900
    assert sum('FROM "commerce_catalog_sku"' in q["sql"] for q in queries.captured_queries) == 1
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    refused(call(shopper, "post", "/quote", {"lines": [{"sku_id": small.pk, "quantity": 1},
                                                     {"sku_id": foreign_sku.pk, "quantity": 1}]}), "sku_not_found", 404)
    large.active = False
    large.save()
    refused(call(shopper, "post", "/quote", body), "product_off_shelf", 409)
