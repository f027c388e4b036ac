"""A real browser builds a segment in the visual builder, watches the live count follow each edit, saves,
refreshes and sees the members (SPEC O4)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from siyu.core.services import membership_grant, workspace_create
from siyu.engagement.segments.conditions import CustomerFacts, EventFact
from siyu.engagement.segments.models import Segment
from tests.engagement.segments.factories import customer_make

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def brand(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    workspace = workspace_create(slug="segment-brand", name="花间集护肤")
    membership_grant(workspace=workspace, username="operator", password="pass-12345", role="operator")
    now = timezone.now()
    views = tuple(EventFact("product_view", now - timedelta(days=day)) for day in (1, 2))
    customer_make(workspace, CustomerFacts(events=views), now=now)  # viewed twice, never paid: the target
    customer_make(workspace, CustomerFacts(events=(*views, EventFact("order_paid", now - timedelta(days=1)))), now=now)
    customer_make(workspace, CustomerFacts(events=views[:1]), now=now)  # viewed once
    return workspace


def test_build_segment_with_live_count(live_server, brand):
    if not Path(CHROMIUM).exists():
        if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(locale="zh-CN")
            page.set_default_timeout(60_000)  # the machine is shared and often loaded
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", "operator")
            page.fill("input[name=password]", "pass-12345")
            page.click("button[type=submit].primary")
            page.wait_for_url(f"{live_server.url}/", wait_until="commit")
            page.goto(f"{live_server.url}/ops/segments/")
            page.click("[data-testid=segment-new]")
            page.fill("[data-testid=segment-name]", "想买未买")

            count = page.locator("[data-testid=live-count]")
            page.click("[data-testid=root-group] >> [data-testid=add-condition]")
            first = page.locator("[data-testid=condition-row]").nth(0)
            first.locator("[data-testid=condition-event-type]").select_option("product_view")
            expect(count).to_have_text("3")  # product_view ≥ 1 in 7 days
            first.locator("[data-testid=condition-count]").fill("2")
            expect(count).to_have_text("2")

            page.click("[data-testid=root-group] >> [data-testid=add-condition] >> nth=0")
            second = page.locator("[data-testid=condition-row]").nth(1)
            second.locator("[data-testid=condition-event-type]").select_option("order_paid")
            second.locator("[data-testid=condition-op]").select_option("eq")
            second.locator("[data-testid=condition-count]").fill("0")
            expect(count).to_have_text("1")
            expect(page.locator("[data-testid=live-text]")).to_have_text(
                "近 7 天 浏览商品 ≥ 2 次 且 近 7 天 没有 支付订单")

            # A nested group negated: NOT (city = 上海) keeps everyone (nobody lives in 上海).
            page.click("[data-testid=root-group] >> [data-testid=add-group] >> nth=0")
            group = page.locator("[data-testid=condition-group]")
            group.locator("[data-testid=group-not]").check()
            row = group.locator("[data-testid=condition-row]")
            row.locator("[data-testid=condition-field]").select_option("city")
            row.locator("[data-testid=condition-value]").fill("上海")
            expect(page.locator("[data-testid=live-text]")).to_contain_text("非 城市 是 上海")
            expect(count).to_have_text("1")

            # A bad value shows the refusal instead of a count.
            first.locator("[data-testid=condition-count]").fill("")
            expect(page.locator("[data-testid=live-error]")).to_contain_text("root.and[0].count")
            first.locator("[data-testid=condition-count]").fill("2")
            expect(count).to_have_text("1")

            page.click("[data-testid=segment-save]")
            expect(page.locator("[data-testid=segment-title]")).to_contain_text("想买未买")
            page.click("[data-testid=segment-refresh]")
            expect(page.locator("[data-testid=segment-member-count]")).to_have_text("1")
            expect(page.locator("[data-testid=segment-members] tbody tr")).to_have_count(1)
        finally:
            browser.close()
    segment = Segment.objects.get(workspace=brand, name="想买未买")
    assert segment.member_count == 1
