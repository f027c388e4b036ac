"""A real browser on 积分与会员: both charts drawn by the local plotly.js, a customer's ledger found by id, and an
admin's manual adjustment made through the form."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from siyu.core.services import membership_grant, workspace_create
from siyu.loyalty.points import points_balance, points_earn, points_spend
from siyu.loyalty.tiers import growth_record, tier_evaluate
from tests.loyalty.factories import make_customer

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_loyalty_page_charts_ledger_and_adjustment(live_server, settings):
    if not Path(CHROMIUM).exists():
        if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    workspace = workspace_create(slug="loyalty-browser", name="花间集护肤")
    membership_grant(workspace=workspace, username="boss", password="pass-12345", role="admin")
    member = make_customer(workspace)
    for index, spend_fen in enumerate([150_000, 600_000, 250_000]):  # 银卡, 金卡, 银卡
        other = make_customer(workspace)
        growth_record(workspace=workspace, customer=other, source="order_paid", ref=f"o{index}", spend_fen=spend_fen)
        tier_evaluate(customer=other)
    points_earn(workspace=workspace, customer=member, amount=800, reason="purchase", ref="order:1")
    points_spend(workspace=workspace, customer=member, amount=300, ref="order:2", reason="checkout")
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
            page.fill("input[name=username]", "boss")
            page.fill("input[name=password]", "pass-12345")
            page.click("button[type=submit].primary")
            page.wait_for_url(f"{live_server.url}/")
            page.click("a.nav-item:has-text('积分与会员')")
            expect(page.locator("#chart-tier-distribution svg.main-svg").first).to_be_visible()
            expect(page.locator("#chart-points-monthly svg.main-svg").first).to_be_visible()
            expect(page.locator("[data-tier-count=silver]")).to_have_text("2")
            expect(page.locator("[data-tier-count=gold]")).to_have_text("1")

            page.fill("input[name=customer]", str(member.pk))
            page.click("#ledger form.inline-form button[type=submit]")
            expect(page.locator("[data-balance]")).to_have_text("500")
            page.fill("#adjust-form input[name=amount]", "-120")
            page.fill("#adjust-form input[name=reason]", "重复发放扣回")
            page.click("#adjust-form button[type=submit]")
            expect(page.locator(".flash-item")).to_contain_text("已调整")
            expect(page.locator("[data-balance]")).to_have_text("380")
            expect(page.locator("#ledger-table")).to_contain_text("重复发放扣回")
            page.screenshot(path=str(shots / "console-loyalty.png"), full_page=True)
        finally:
            browser.close()
    assert points_balance(customer=member) == 380
