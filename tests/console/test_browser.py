"""A real browser against a running server: log in, see the dashboard chart, find a customer by phone,
open the 360 page and tag the customer (issue 2, "a real-browser test")."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from siyu.analytics.services import analytics_refresh
from siyu.core.services import membership_grant, workspace_create
from siyu.customers.models import CustomerTag
from tests.console.factories import consent, make_customer, make_tag

# Playwright's sync API runs an event loop in this thread; the ORM calls here are ordinary blocking ones.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _require_chromium():
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
        pytest.fail(f"Chromium not found at {CHROMIUM} (SIYU_CHROMIUM) and SIYU_REQUIRE_SERVICES=1")
    pytest.skip(f"Chromium not found at {CHROMIUM}; set SIYU_CHROMIUM to run the browser test")


@pytest.fixture
def brand(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    workspace = workspace_create(slug="browser-brand", name="花间集护肤")
    membership_grant(workspace=workspace, username="operator", password="pass-12345", role="operator",
                     display_name="运营小林")
    now = timezone.now()
    for k, channel in enumerate(["official_account", "xiaohongshu", "store", "douyin", "wecom", "mini_program"]):
        make_customer(workspace, at=now - timedelta(days=20 * k + 1), channel=channel,
                      identities=[("openid", "wxmp", f"o{k}")],
                      events=[("page_view", channel, m) for m in range(k + 1)])
    customer = make_customer(workspace, at=now - timedelta(days=3), name="林晓雨", phone="13812345678",
                             channel="xiaohongshu", identities=[("unionid", "", "uLIN"), ("openid", "wxmp", "oLIN")],
                             events=[("qr_scan", "xiaohongshu", 0, "xhs"), ("product_view", "mini_program", 60),
                                     ("order_paid", "mini_program", 120)])
    consent(customer, "marketing", True, now - timedelta(days=3))
    tag = make_tag(workspace, name="高意向", group="购买意向")
    analytics_refresh(workspace=workspace)
    return customer, tag


def test_login_dashboard_search_360_and_tag(live_server, brand):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    customer, tag = brand
    shots = Path(settings.BASE_DIR) / "var"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/login/")
            expect(page.locator("h1")).to_have_text("Siyu 私域")
            page.fill("input[name=username]", "operator")
            page.fill("input[name=password]", "pass-12345")
            page.click("button[type=submit].primary")

            # Dashboard: plotly drew the channel matrix as an SVG from the locally served plotly.js.
            page.wait_for_url(f"{live_server.url}/")
            expect(page.locator("#chart-channel-matrix svg.main-svg").first).to_be_visible()
            expect(page.locator("#chart-events-daily svg.main-svg").first).to_be_visible()
            expect(page.locator("[data-kpi=customers_total]")).to_have_text("7")
            page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)

            # Search by the full phone number and open the 360 page.
            page.click("a.nav-item:has-text('客户')")
            page.fill("input[name=q]", "138 1234 5678")
            page.click("form.filters button[type=submit]")
            row_link = page.locator("table.table tbody a.strong")
            expect(row_link).to_have_count(1)
            expect(row_link).to_have_text("林晓雨")
            row_link.click()
            page.wait_for_url(f"{live_server.url}/customers/{customer.pk}/")
            expect(page.locator("[data-field=phone]")).to_have_text("13812345678")
            expect(page.locator("ol.timeline")).to_contain_text("支付订单")  # the event timeline

            # Tag the customer inline.
            page.select_option("#tag-add-form select[name=tag_id]", str(tag.pk))
            page.click("#tag-add-form button[type=submit]")
            expect(page.locator("#customer-tags [data-tag='高意向']")).to_be_visible()
            expect(page.locator(".flash-item")).to_contain_text("已添加标签")
            page.screenshot(path=str(shots / "console-customer.png"), full_page=True)
        finally:
            browser.close()
    assert CustomerTag.objects.filter(customer=customer, tag=tag).exists()
