"""The H5 store in a real browser (issue 4): a phone-sized Chromium opens the store through the simulated
公众号 OAuth, claims a coupon, adds two SKUs, checks out with the coupon (the explained price shows it on its
own line), pays in the simulated WeChat cashier and sees the order as paid; then an operator logs in to the
console and ships it with the orders page's form, and the shopper sees it shipped.

Over real HTTP both ways, as in production: Siyu is pytest-django's live server, the WeChat simulator its
own HTTP server delivering the payment notification to Siyu's notify URL; the browser follows the OAuth
redirects between them (the simulator knows the WeChat user from its ``sim_user`` cookie, as WeChat's
in-app browser knows who is logged in).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from siyu.commerce.orders.models import Order
from siyu.core.services import membership_grant
from siyu.wechat_sim.server import Simulator
from tests.commerce.catalog_fixtures import make_category, make_product
from tests.commerce.promotions_fixtures import make_coupon_template
from tests.wechat.conftest import wechat_app_factory  # noqa: F401 - fixture
from tests.wechat.test_pay_support import APPID, connect_merchant

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread

CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _require_chromium():
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
        pytest.fail(f"Chromium not found at {CHROMIUM} (SIYU_CHROMIUM) and SIYU_REQUIRE_SERVICES=1")
    pytest.skip(f"Chromium not found at {CHROMIUM}; set SIYU_CHROMIUM to run the browser test")


@pytest.fixture
def wechat_sim(live_server, settings):
    """The simulator over HTTP, delivering callbacks and payment notifications to the live server."""
    sim = Simulator(siyu_url=live_server.url, seed=4)
    settings.SIYU_WECHAT_BASE_URL = sim.start()
    settings.SIYU_PUBLIC_URL = live_server.url
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.0,)
    yield sim
    sim.stop()


@pytest.fixture
def brand(wechat_sim, wechat_app_factory, workspace, settings):  # noqa: F811
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    connect_merchant(wechat_sim, workspace)
    wechat_app_factory("official", appid=APPID, name="花间集")
    membership_grant(workspace=workspace, username="operator", password="pass-12345", role="operator",
                     display_name="运营小林")
    category = make_category(workspace, name="护肤")
    cream, _ = make_product(workspace, title="玫瑰面霜", price_fen=12900, category=category, stock=10,
                            specs=[{"规格": "50ml"}, {"规格": "100ml"}])
    serum, _ = make_product(workspace, title="精华液", price_fen=8900, category=category, stock=5,
                            specs=[{"颜色": "红", "尺码": "M"}, {"颜色": "蓝", "尺码": "M"}])
    make_coupon_template(workspace, name="满200减30", kind="threshold", threshold_fen=20000, amount_fen=3000)
    return {"cream": cream, "serum": serum}


def test_buy_two_skus_with_a_coupon_pay_in_the_simulator_and_ship_from_the_console(live_server, wechat_sim, brand,
                                                                                   workspace):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    shop = f"{live_server.url}/shop/{workspace.slug}"
    shots = Path(django_settings.BASE_DIR) / "var"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                          is_mobile=True, has_touch=True, locale="zh-CN",
                                          user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                                                     "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
                                                     "MicroMessenger/8.0.47 NetType/WIFI Language/zh_CN")
            # the WeChat user "logged in" to the simulated in-app browser
            context.add_cookies([{"name": "sim_user", "value": "xiaoyu", "url": wechat_sim.base_url}])
            page = context.new_page()
            page.set_default_timeout(20_000)

            # 1. The store's first page: through the 公众号 OAuth and back, identified.
            page.goto(f"{shop}/")
            page.wait_for_url(f"{shop}/**")  # WeChat's "#wechat_redirect" fragment rides along the redirects
            expect(page.locator(".grid-cats")).to_contain_text("护肤")

            # 2. Coupon center: claim 满200减30.
            page.goto(f"{shop}/coupons/")
            page.click("[data-action=claim]")
            expect(page.locator("#my-coupons")).to_contain_text("满200减30")

            # 3. Two SKUs: 玫瑰面霜 100ml and 精华液 红/M (M is the only size: chosen already).
            page.goto(f"{shop}/products/{brand['cream'].pk}/")
            page.click("label.chip:has-text('100ml')")
            expect(page.locator("#sku-stock")).to_have_attribute("data-state", "in_stock")
            page.click("[data-action=add-to-cart]")
            expect(page.locator(".flash")).to_contain_text("已加入购物车")
            page.goto(f"{shop}/products/{brand['serum'].pk}/")
            page.click("label.chip:has-text('红')")
            page.click("[data-action=add-to-cart]")
            expect(page.locator(".flash")).to_contain_text("已加入购物车")
            page.goto(f"{shop}/cart/")
            expect(page.locator(".cart-line")).to_have_count(2)
            expect(page.locator("#cart-total")).to_have_text("¥218.00")

            # 4. Checkout with the coupon: the explained price shows it on its own line.
            page.click("[data-action=checkout]")
            page.select_option("#coupon", label="满200减30(¥30,满200可用)")
            expect(page.locator("#price-explain [data-kind=coupon]")).to_contain_text("-¥30.00")
            expect(page.locator("#checkout-total")).to_have_text("¥188.00")
            page.fill("#a-name", "林晓雨")
            page.fill("#a-phone", "13812345678")
            page.fill("#a-province", "上海市")
            page.fill("#a-city", "上海市")
            page.fill("#a-district", "静安区")
            page.fill("#a-detail", "南京西路 1266 号 2 楼")
            page.screenshot(path=str(shots / "store-checkout.png"), full_page=True)
            page.click("[data-action=place-order]")

            # 5. The simulated WeChat cashier: confirm; the simulator notifies Siyu; the order shows as paid.
            expect(page.locator("#sim-pay-sheet")).to_be_visible()
            page.click("[data-action=sim-pay]")
            expect(page.locator("[data-field=payment_status]")).to_have_text("已支付")
            page.screenshot(path=str(shots / "store-order-paid.png"), full_page=True)
            order = Order.objects.get(workspace=workspace)
            assert order.total_fen == 18800 and order.payment_status == "paid" and order.paid_fen == 18800

            # 6. The operator ships it from the console's order page.
            console = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")
            console.set_default_timeout(20_000)
            console.goto(f"{live_server.url}/login/")
            console.fill("input[name=username]", "operator")
            console.fill("input[name=password]", "pass-12345")
            console.click("button[type=submit].primary")
            console.wait_for_url(f"{live_server.url}/")
            console.goto(f"{live_server.url}/commerce/orders/{order.pk}/")
            console.fill("#order-actions input[name=carrier]", "顺丰速运")
            console.fill("#order-actions input[name=tracking_number]", "SF1234567890")
            console.click("#order-actions button:has-text('发货')")
            console.wait_for_load_state()
            console.screenshot(path=str(shots / "console-order-shipped.png"), full_page=True)

            # 7. The shopper sees it shipped, with the tracking number.
            page.reload()
            expect(page.locator("[data-field=fulfilment_status]")).to_have_text("已发货")
            expect(page.locator("#order-status")).to_contain_text("SF1234567890")
        finally:
            browser.close()
    order.refresh_from_db()
    assert order.fulfilment_status == "shipped" and order.tracking_number == "SF1234567890"
