"""The H5 store's 秒杀 and 立即购买: the home zone and the product page show a running flash sale (price, time
left, units left, per-customer limit); 「立即抢购」 checks out just that line at the flash price through the orders
service and pays in the simulated cashier; sold out / not started / ended / over the limit are refused in the
page with nothing changed; 「立即购买」 checks out one SKU and leaves the cart as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.commerce.catalog.models import StorePage
from siyu.commerce.orders.models import Order
from siyu.commerce.promotions.models import FlashReservation, FlashSale
from siyu.commerce.store.models import CartItem
from tests.commerce import store_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.promotions_fixtures import make_flash_sale
from tests.commerce.store_fixtures import ADDRESS, csrf_post, h5_shopper, notifications_settle

pytestmark = pytest.mark.django_db
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory


def shop_url(store, path: str = "") -> str:
    return f"/shop/{store.workspace.slug}/{path}"


def cart_of(shopper) -> dict[int, int]:
    return dict(CartItem.objects.filter(cart__customer=shopper.customer).values_list("sku_id", "quantity"))


def refused(response, code: str, status: int) -> None:
    assert response.status_code == status, response.content.decode()[:500]
    assert f'data-error-code="{code}"' in response.content.decode(), response.content.decode()[:800]


def prepay_id_of(html: str) -> str:
    return html.split('name="prepay_id" value="')[1].split('"')[0]


def held_units(sale) -> int:
    sale.refresh_from_db()
    return sale.stock_total - sale.stock_left


def test_flash_sale_from_the_home_zone_to_a_paid_order(store, django_capture_on_commit_callbacks):
    shopper = h5_shopper(store)
    serum, (red, blue) = store.products["serum"]  # 89 yuan
    sale = make_flash_sale(store.workspace, red, price_fen=1990, stock=3, per_customer_limit=2, name="精华限时秒杀")
    StorePage.objects.create(workspace=store.workspace, blocks=[
        {"type": "zone", "zone": "seckill", "title": "今日秒杀", "flash_sale_id": sale.pk, "product_ids": [serum.pk]}])
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": blue.pk, "quantity": 1})

    home = shopper.client.get(shop_url(store)).content.decode()
    box = home.split(f'data-flash-sale-id="{sale.pk}"')[1]
    assert 'data-flash-state="running"' in home and "精华限时秒杀" in box and "¥19.90" in box and "¥89.00" in box
    assert "仅剩 3 件" in box and "每人限购 2 件" in box and 'class="countdown"' in box
    assert f'action="{shop_url(store, f"flash/{sale.pk}/")}"' in box and "立即抢购" in box
    product_page = shopper.client.get(shop_url(store, f"products/{serum.pk}/")).content.decode()
    assert f'data-flash-sale-id="{sale.pk}"' in product_page and "¥19.90" in product_page

    page = shopper.client.get(shop_url(store, f"flash/{sale.pk}/"), {"quantity": 2})
    html = page.content.decode()
    assert page.status_code == 200, html[:800]
    assert 'data-kind="flash"' in html.split('id="price-explain"')[1]  # 秒杀优惠 explained
    assert 'data-total-fen="' in html and "× 2" in html and "精华液" in html
    total = int(html.split('data-total-fen="')[1].split('"')[0])
    placed = csrf_post(shopper.client, store, shop_url(store, f"flash/{sale.pk}/"), {**ADDRESS, "quantity": 2})
    assert placed.status_code == 302, placed.content.decode()[:1500]
    order = Order.objects.get(customer=shopper.customer)
    assert order.flash_sale_id == sale.pk and order.total_fen == total
    line = order.lines.get()
    assert line.sku_id == red.pk and line.quantity == 2 and line.flash_sale and line.payable_fen == 2 * 1990
    assert held_units(sale) == 2
    assert cart_of(shopper) == {blue.pk: 1}  # the cart is not involved

    cashier = shopper.client.get(placed["Location"]).content.decode()
    assert 'id="sim-pay-sheet"' in cashier
    paid = csrf_post(shopper.client, store, shop_url(store, f"orders/{order.number}/simulate-pay"),
                     {"prepay_id": prepay_id_of(cashier)})
    assert paid.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_settle(store) == [204]
    order.refresh_from_db()
    assert order.payment_status == "paid" and order.paid_fen == total
    assert FlashReservation.objects.get(sale=sale).state == "committed"
    # the limit is used up: the box says so and another purchase is refused
    again = shopper.client.get(shop_url(store, f"products/{serum.pk}/")).content.decode()
    assert 'data-flash-state="limit_reached"' in again and "已达限购" in again
    refused(shopper.client.get(shop_url(store, f"flash/{sale.pk}/")), "flash_limit_reached", 409)


def test_flash_refusals_change_nothing(store):
    shopper = h5_shopper(store)
    _serum, (red, _blue) = store.products["serum"]
    sale = make_flash_sale(store.workspace, red, price_fen=990, stock=1, per_customer_limit=1)

    # over the per-customer limit: on the page and when placing
    refused(shopper.client.get(shop_url(store, f"flash/{sale.pk}/"), {"quantity": 2}), "flash_limit_reached", 409)
    refused(csrf_post(shopper.client, store, shop_url(store, f"flash/{sale.pk}/"), {**ADDRESS, "quantity": 2}),
            "flash_limit_reached", 409)
    for bad, code in (("0", "invalid_quantity"), ("x", "invalid_quantity"), ("-1", "invalid_quantity")):
        refused(shopper.client.get(shop_url(store, f"flash/{sale.pk}/"), {"quantity": bad}), code, 400)
    refused(shopper.client.get(shop_url(store, "flash/999999999/")), "flash_sale_not_found", 404)

    # sold out: another customer took the last unit
    rival = h5_shopper(store, "rival")
    assert csrf_post(rival.client, store, shop_url(store, f"flash/{sale.pk}/"), ADDRESS).status_code == 302
    assert held_units(sale) == 1
    refused(shopper.client.get(shop_url(store, f"flash/{sale.pk}/")), "flash_sold_out", 409)
    refused(csrf_post(shopper.client, store, shop_url(store, f"flash/{sale.pk}/"), ADDRESS), "flash_sold_out", 409)
    product = shopper.client.get(shop_url(store, f"products/{red.product_id}/")).content.decode()
    assert 'data-flash-state="sold_out"' in product and "已抢光" in product

    # not started and ended
    later = make_flash_sale(store.workspace, red, starts_at=timezone.now() + timedelta(hours=1),
                            ends_at=timezone.now() + timedelta(hours=2))
    product = shopper.client.get(shop_url(store, f"products/{red.product_id}/")).content.decode()
    assert f'data-flash-sale-id="{later.pk}" data-flash-state="upcoming"' in product and "距开始" in product
    refused(shopper.client.get(shop_url(store, f"flash/{later.pk}/")), "flash_sale_not_started", 409)
    refused(csrf_post(shopper.client, store, shop_url(store, f"flash/{later.pk}/"), ADDRESS),
            "flash_sale_not_started", 409)
    FlashSale.objects.filter(pk=later.pk).update(starts_at=timezone.now() - timedelta(hours=2),
                                                 ends_at=timezone.now() - timedelta(seconds=1))
    refused(csrf_post(shopper.client, store, shop_url(store, f"flash/{later.pk}/"), ADDRESS), "flash_sale_ended", 409)
    assert f'data-flash-sale-id="{later.pk}"' not in shopper.client.get(
        shop_url(store, f"products/{red.product_id}/")).content.decode()

    assert not Order.objects.filter(customer=shopper.customer).exists()
    assert not FlashReservation.objects.filter(customer=shopper.customer).exists()
    assert held_units(sale) == 1 and held_units(later) == 0


def test_another_workspaces_flash_sale_is_not_found(store, other_workspace):
    shopper = h5_shopper(store)
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    foreign_sale = make_flash_sale(other_workspace, foreign_sku)
    refused(shopper.client.get(shop_url(store, f"flash/{foreign_sale.pk}/")), "flash_sale_not_found", 404)
    refused(csrf_post(shopper.client, store, shop_url(store, f"flash/{foreign_sale.pk}/"), ADDRESS),
            "flash_sale_not_found", 404)
    assert not Order.objects.exists() and held_units(foreign_sale) == 0


def test_buy_now_checks_out_one_sku_and_leaves_the_cart_untouched(store):
    shopper = h5_shopper(store)
    cream, (small, large) = store.products["cream"]  # 129 yuan
    _serum, (red, _blue) = store.products["serum"]
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": small.pk, "quantity": 1})
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": red.pk, "quantity": 2})
    before = cart_of(shopper)

    answer = csrf_post(shopper.client, store, shop_url(store, "cart/add"),
                       {"sku_id": large.pk, "quantity": 3, "then": "buy", "product_id": cream.pk})
    assert answer.status_code == 302 and "/buy/?" in answer["Location"]
    assert cart_of(shopper) == before
    page = shopper.client.get(answer["Location"]).content.decode()
    assert "玫瑰面霜" in page and "× 3" in page and "精华液" not in page
    assert f'<input type="hidden" name="sku_id" value="{large.pk}">' in page
    total = int(page.split('data-total-fen="')[1].split('"')[0])
    assert total >= 3 * 12900 - 3 * 12900 // 2  # the engine's explained price of three, not of the cart

    placed = csrf_post(shopper.client, store, shop_url(store, "buy/"), {**ADDRESS, "sku_id": large.pk, "quantity": 3})
    assert placed.status_code == 302, placed.content.decode()[:1500]
    order = Order.objects.get(customer=shopper.customer)
    assert [(line.sku_id, line.quantity) for line in order.lines.all()] == [(large.pk, 3)]
    assert order.total_fen == total and order.flash_sale_id is None
    assert cart_of(shopper) == before
    assert "sim-pay-sheet" in shopper.client.get(placed["Location"]).content.decode()

    # add to cart is unchanged
    csrf_post(shopper.client, store, shop_url(store, "cart/add"), {"sku_id": large.pk, "quantity": 1, "then": "stay"})
    assert cart_of(shopper) == {**before, large.pk: 1}


def test_buy_now_refusals_change_nothing(store, other_workspace):
    shopper = h5_shopper(store)
    _cream, (small, _large) = store.products["cream"]  # 10 in stock
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    cases = [({"sku_id": small.pk, "quantity": 11}, "out_of_stock", 409),
             ({"sku_id": small.pk, "quantity": 0}, "invalid_quantity", 400),
             ({"sku_id": foreign_sku.pk, "quantity": 1}, "sku_not_found", 404),
             ({"sku_id": "", "quantity": 1}, "sku_required", 400)]
    for data, code, status in cases:
        refused(csrf_post(shopper.client, store, shop_url(store, "cart/add"), {**data, "then": "buy"}), code, status)
        refused(shopper.client.get(shop_url(store, "buy/"), data), code, status)
        refused(csrf_post(shopper.client, store, shop_url(store, "buy/"), {**ADDRESS, **data}), code, status)
    answer = csrf_post(shopper.client, store, shop_url(store, "buy/"),
                       {**ADDRESS, "phone": "123", "sku_id": small.pk, "quantity": 1})
    assert answer.status_code == 400 and "invalid_address" in answer.content.decode()
    assert not Order.objects.exists() and cart_of(shopper) == {}
    small.refresh_from_db()
    assert small.stock_reserved == 0
