"""The H5 store's pages: identification through 公众号 OAuth, browsing with engine prices, the cart, checkout
with an explained price and a coupon, simulated WeChat Pay, orders, after-sales, coupon center; every bad
input refused with its code and status and nothing changed."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.utils import timezone

from siyu.commerce.catalog.models import ProductStatus
from siyu.commerce.orders.models import Order
from siyu.commerce.promotions.models import Coupon
from siyu.commerce.promotions.services import coupon_claim
from siyu.commerce.store.models import CartItem
from siyu.wechat_sim.oauth import authorize_url_for
from tests.commerce import store_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.store_fixtures import (
    ADDRESS,
    csrf_post,
    h5_shopper,
    make_coupon_template,
    notifications_settle,
)

pytestmark = pytest.mark.django_db
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory


def shop_url(store, path: str = "") -> str:
    return f"/shop/{store.workspace.slug}/{path}"


def cart_of(shopper) -> dict[int, int]:
    return dict(CartItem.objects.filter(cart__customer=shopper.customer).values_list("sku_id", "quantity"))


def refused(response, code: str, status: int) -> None:
    assert response.status_code == status, response.content.decode()[:500]
    assert f'data-error-code="{code}"' in response.content.decode(), response.content.decode()[:800]


# --- identification --------------------------------------------------------------------------------------------
def test_a_browser_without_session_goes_through_oauth_and_comes_back_identified(store):
    client = Client()
    first = client.get(shop_url(store, "products/1/?from=menu"))
    assert first.status_code == 302
    start = urlsplit(first["Location"])
    assert start.path == f"/wx/consumer/oauth/{store.official.appid}/start"
    query = parse_qs(start.query)
    assert query["scope"] == ["snsapi_base"] and query["next"] == [shop_url(store, "products/1/?from=menu")]

    to_wechat = client.get(first["Location"])
    assert to_wechat.status_code == 302 and to_wechat["Location"].startswith(store.sim.base_url)
    authorize = requests.get(authorize_url_for(store.sim, user="xiaoyu", url=to_wechat["Location"]),
                             allow_redirects=False, timeout=10)
    assert authorize.status_code == 302
    back = urlsplit(authorize.headers["Location"])
    landing = client.get(f"{back.path}?{back.query}")
    assert landing.status_code == 302 and landing["Location"] == shop_url(store, "products/1/?from=menu")
    product, _skus = store.products["cream"]
    page = client.get(shop_url(store, f"products/{product.pk}/"))
    assert page.status_code == 200 and "玫瑰面霜" in page.content.decode()


def test_a_session_of_another_brand_is_not_this_stores_shopper(store, other_workspace):
    shopper = h5_shopper(store)
    # the other workspace's store has no 公众号: it says so instead of redirecting
    answer = shopper.client.get(f"/shop/{other_workspace.slug}/")
    refused(answer, "store_unavailable", 503)
    refused(shopper.client.get("/shop/no-such-brand/"), "store_not_found", 404)


# --- browsing ----------------------------------------------------------------------------------------------------
def test_home_category_search_and_product_pages_show_engine_prices(store):
    shopper = h5_shopper(store)
    product, skus = store.products["cream"]
    home = shopper.client.get(shop_url(store))
    assert home.status_code == 200 and "护肤" in home.content.decode()
    listing = shopper.client.get(shop_url(store, f"categories/{store.products['category'].pk}/")).content.decode()
    assert "玫瑰面霜" in listing and "¥129.00" in listing
    found = shopper.client.get(shop_url(store, "search/"), {"q": "面霜"}).content.decode()
    assert "玫瑰面霜" in found and "精华液" not in found
    page = shopper.client.get(shop_url(store, f"products/{product.pk}/")).content.decode()
    assert 'id="sku-data"' in page and f'"id": {skus[0].pk}' in page and "50ml" in page and "100ml" in page


def test_off_shelf_and_foreign_products_are_not_shown(store, other_workspace):
    shopper = h5_shopper(store)
    product, _skus = store.products["serum"]
    product.status = ProductStatus.OFF_SHELF
    product.save()
    refused(shopper.client.get(shop_url(store, f"products/{product.pk}/")), "product_not_found", 404)
    foreign, _ = make_product(other_workspace, title="别家商品")
    refused(shopper.client.get(shop_url(store, f"products/{foreign.pk}/")), "product_not_found", 404)


# --- cart ----------------------------------------------------------------------------------------------------------
def test_cart_add_update_remove(store):
    shopper = h5_shopper(store)
    _cream, (small, large) = store.products["cream"]
    answer = csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 2})
    assert answer.status_code == 302
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1})
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": large.pk, "quantity": 1})
    assert cart_of(shopper) == {small.pk: 3, large.pk: 1}
    page = shopper.client.get(shop_url(store, "cart/")).content.decode()
    assert "玫瑰面霜" in page and 'id="price-explain"' in page
    csrf_post(shopper.client, store, shop_url(store, "cart/update"), {"sku_id": small.pk, "quantity": 5})
    csrf_post(shopper.client, store, shop_url(store, "cart/remove"), {"sku_id": large.pk})
    assert cart_of(shopper) == {small.pk: 5}
    csrf_post(shopper.client, store, shop_url(store, "cart/update"), {"sku_id": small.pk, "quantity": 0})
    assert cart_of(shopper) == {}


@pytest.mark.parametrize(("quantity", "code", "status"), [
    ("-1", "invalid_quantity", 400), ("0", "invalid_quantity", 400), ("abc", "invalid_quantity", 400),
    ("1.5", "invalid_quantity", 400), ("100", "quantity_too_large", 400),
    ("99999999999999999999", "quantity_too_large", 400), ("11", "out_of_stock", 409),
])
def test_cart_refuses_bad_quantities_and_changes_nothing(store, quantity, code, status):
    shopper = h5_shopper(store)
    _cream, (small, _large) = store.products["cream"]  # 10 in stock
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1})
    refused(csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": quantity}),
            code, status)
    assert cart_of(shopper) == {small.pk: 1}


def test_cart_refuses_foreign_unknown_and_off_shelf_skus(store, other_workspace):
    shopper = h5_shopper(store)
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    for value, code, status in [(foreign_sku.pk, "sku_not_found", 404), (10**12, "sku_not_found", 404),
                                ("x", "invalid_id", 400), (-3, "invalid_id", 400), ("", "sku_required", 400)]:
        refused(csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": value, "quantity": 1}),
                code, status)
    serum, (red, _blue) = store.products["serum"]
    serum.status = ProductStatus.OFF_SHELF
    serum.save()
    refused(csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": red.pk, "quantity": 1}),
            "product_off_shelf", 409)
    refused(csrf_post(shopper.client, store, shop_url(store, "cart/update"), {"sku_id": red.pk, "quantity": 2}),
            "cart_item_not_found", 404)
    assert cart_of(shopper) == {}


def test_posts_need_the_csrf_token_and_a_session(store):
    shopper = h5_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    assert shopper.client.post(shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1}).status_code == 403
    stranger = Client()
    refused(stranger.post(shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1}),
            "consumer_unauthenticated", 401)
    assert not CartItem.objects.exists()


# --- checkout, pay, orders -------------------------------------------------------------------------------------------
def _fill_cart(store, shopper):
    _cream, (small, _large) = store.products["cream"]
    _serum, (red, _blue) = store.products["serum"]
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1})
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": red.pk, "quantity": 2})
    return small, red


def test_checkout_with_coupon_explains_the_price_and_pays_in_the_simulator(store, django_capture_on_commit_callbacks):
    shopper = h5_shopper(store)
    _fill_cart(store, shopper)  # 129 + 2 × 89 = 307 yuan
    template = make_coupon_template(store.workspace, name="满300减30", kind="threshold", threshold_fen=30000,
                                    amount_fen=3000)
    claim = csrf_post(shopper.client, store, shop_url(store, "coupons/claim"), {"template_id": template.pk})
    assert claim.status_code == 302
    coupon = Coupon.objects.get(customer=shopper.customer)

    page = shopper.client.get(shop_url(store, "checkout/"), {"coupon": coupon.pk}).content.decode()
    assert 'data-kind="coupon"' in page and "-¥30.00" in page and 'data-total-fen="27700"' in page

    placed = csrf_post(shopper.client, store, shop_url(store, "checkout/"), {**ADDRESS, "coupon": coupon.pk})
    assert placed.status_code == 302, placed.content.decode()[:800]
    order = Order.objects.get(customer=shopper.customer)
    assert order.total_fen == 27700 and order.coupon_ids == [coupon.pk]
    assert cart_of(shopper) == {}  # bought lines leave the cart

    cashier = shopper.client.get(placed["Location"])
    html = cashier.content.decode()
    assert cashier.status_code == 200 and 'id="sim-pay-sheet"' in html and '"mode": "simulator"' in html
    prepay_id = html.split('name="prepay_id" value="')[1].split('"')[0]
    paid = csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/simulate-pay"),
                     {"prepay_id": prepay_id})
    assert paid.status_code == 302 and paid["Location"].endswith("?paying=1")
    waiting = shopper.client.get(paid["Location"]).content.decode()  # WeChat has not notified Siyu yet
    assert "data-await-paid" in waiting and 'data-payment-status="unpaid"' in waiting
    with django_capture_on_commit_callbacks(execute=True):  # the payment event is delivered on commit
        assert notifications_settle(store) == [204]
    order.refresh_from_db()
    assert order.payment_status == "paid" and order.paid_fen == 27700
    detail = shopper.client.get(paid["Location"]).content.decode()
    assert 'data-payment-status="paid"' in detail and "满300减30" in detail and "data-await-paid" not in detail
    listing = shopper.client.get(shop_url(store, "orders/")).content.decode()
    assert order.number in listing


def test_checkout_refuses_expired_coupon_bad_address_and_changes_nothing(store):
    shopper = h5_shopper(store)
    small, red = _fill_cart(store, shopper)
    template = make_coupon_template(store.workspace, kind="no_threshold", amount_fen=500)
    coupon = coupon_claim(workspace=store.workspace, customer=shopper.customer, template_id=template.pk)
    Coupon.objects.filter(pk=coupon.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    answer = csrf_post(shopper.client, store, shop_url(store, "checkout/"), {**ADDRESS, "coupon": coupon.pk})
    assert answer.status_code == 400 and "coupon_unavailable" in answer.content.decode()
    answer = csrf_post(shopper.client, store, shop_url(store, "checkout/"), {**ADDRESS, "phone": "12345"})
    assert answer.status_code == 400 and "invalid_address" in answer.content.decode()
    answer = csrf_post(shopper.client, store, shop_url(store, "checkout/"), {**ADDRESS, "points": "-5"})
    refused(answer, "invalid_points", 400)
    assert not Order.objects.exists()
    assert cart_of(shopper) == {small.pk: 1, red.pk: 2}


def test_other_customers_orders_are_not_found_and_unchanged(store):
    buyer, other = h5_shopper(store, "buyer"), h5_shopper(store, "other")
    _fill_cart(store, buyer)
    csrf_post(buyer.client, store, shop_url(store, "checkout/"), ADDRESS)
    order = Order.objects.get(customer=buyer.customer)
    refused(other.client.get(shop_url(store, f"orders/{order.number}/")), "order_not_found", 404)
    refused(csrf_post(other.client, store, shop_url(store, f"orders/{order.number}/cancel")), "order_not_found", 404)
    refused(csrf_post(other.client, store, shop_url(store, f"orders/{order.number}/pay")), "order_not_found", 404)
    order.refresh_from_db()
    assert order.order_status == "pending_payment"
    cancelled = csrf_post(buyer.client, store, shop_url(store, f"orders/{order.number}/cancel"))
    assert cancelled.status_code == 302
    order.refresh_from_db()
    assert order.order_status == "cancelled"
    refused(csrf_post(buyer.client, store, shop_url(store, f"orders/{order.number}/pay")), "order_not_payable", 409)


def test_simulated_pay_refuses_a_prepay_of_another_order(store):
    shopper = h5_shopper(store)
    _fill_cart(store, shopper)
    csrf_post(shopper.client, store, shop_url(store, "checkout/"), ADDRESS)
    order = Order.objects.get(customer=shopper.customer)
    refused(csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/simulate-pay"),
                      {"prepay_id": "wx-forged"}), "prepay_invalid", 400)
    order.refresh_from_db()
    assert order.payment_status == "unpaid"


def test_aftersale_request_after_paying(store, django_capture_on_commit_callbacks):
    shopper = h5_shopper(store)
    _fill_cart(store, shopper)
    placed = csrf_post(shopper.client, store, shop_url(store, "checkout/"), ADDRESS)
    order = Order.objects.get(customer=shopper.customer)
    refused(shopper.client.get(shop_url(store, f"orders/{order.number}/aftersale/")), "aftersale_not_allowed", 409)
    html = shopper.client.get(placed["Location"]).content.decode()
    prepay_id = html.split('name="prepay_id" value="')[1].split('"')[0]
    csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/simulate-pay"), {"prepay_id": prepay_id})
    with django_capture_on_commit_callbacks(execute=True):  # the payment event is delivered on commit
        assert notifications_settle(store) == [204]
    line = order.lines.order_by("pk").first()
    bad = csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/aftersale/"),
                    {"kind": "refund_only", "reason": "不想要了", f"qty_{line.pk}": "-1"})
    refused(bad, "invalid_quantity", 400)
    bad = csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/aftersale/"),
                    {"kind": "teleport", "reason": "不想要了", f"qty_{line.pk}": "1"})
    refused(bad, "invalid_aftersale_kind", 400)
    assert not order.aftersales.exists()
    ok = csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/aftersale/"),
                   {"kind": "refund_only", "reason": "不想要了", f"qty_{line.pk}": "1"})
    assert ok.status_code == 302, ok.content.decode()[-1500:]
    aftersale = order.aftersales.get()
    assert aftersale.kind == "refund_only" and aftersale.status == "requested" and aftersale.amount_fen > 0


def test_coupon_center_claims_and_refuses_unknown_templates(store, other_workspace):
    shopper = h5_shopper(store)
    template = make_coupon_template(store.workspace, name="新人无门槛券", kind="no_threshold", amount_fen=1000)
    foreign = make_coupon_template(other_workspace, name="别家券", kind="no_threshold", amount_fen=1000)
    page = shopper.client.get(shop_url(store, "coupons/")).content.decode()
    assert "新人无门槛券" in page and "别家券" not in page
    assert csrf_post(shopper.client, store, shop_url(store, "coupons/claim"), {"template_id": template.pk}).status_code == 302
    assert Coupon.objects.filter(customer=shopper.customer).count() == 1
    for value in (foreign.pk, "abc", -1):
        answer = csrf_post(shopper.client, store, shop_url(store, "coupons/claim"), {"template_id": value})
        assert answer.status_code in (400, 404), answer.status_code
    assert Coupon.objects.filter(customer=shopper.customer).count() == 1


def test_prices_come_from_the_engine_and_topups_are_suggested(store):
    from tests.commerce.promotions_fixtures import make_full_reduction, make_limited_discount

    shopper = h5_shopper(store)
    cream, (small, _large) = store.products["cream"]
    make_limited_discount(store.workspace, name="周末特惠", sku_ids=[small.pk], price_fen=9900)
    page = shopper.client.get(shop_url(store, f"products/{cream.pk}/")).content.decode()
    assert "¥99.00" in page and "限时折扣价" in page  # the engine's price, not the catalog's 129
    listing = shopper.client.get(shop_url(store, "search/"), {"q": "面霜"}).content.decode()
    assert "¥99.00" in listing and "限时价" in listing

    make_product(store.workspace, title="节日礼盒", price_fen=25900, stock=3)
    make_full_reduction(store.workspace, tiers=((30000, 3000),), name="满300减30")
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1})
    cart = shopper.client.get(shop_url(store, "cart/")).content.decode()
    assert 'id="topup"' in cart and "节日礼盒" in cart and "再买" in cart
