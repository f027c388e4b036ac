"""A real browser (issue 5): build a segment in the console's builder and watch its live count, create a journey
on it in the journey editor, activate it, run time forward from the report page, see the template messages in
the WeChat simulator and the numbers in the journey report.

Over real HTTP both ways: Siyu is pytest-django's live server, the simulator its own HTTP server delivering the
followers' subscribe callbacks to Siyu and receiving the template messages Siyu sends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.test import Client

from siyu.core.services import membership_grant
from siyu.customers.models import Identity
from siyu.engagement.journeys.models import JourneyMessage, MessageStatus
from siyu.wechat.official import services as official_services
from siyu.wechat_sim import mp
from siyu.wechat_sim.server import Simulator
from tests.wechat.conftest import wechat_app_factory  # noqa: F401 - fixture
from tests.wechat.official_support import official_account

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def wechat_sim(live_server, settings):
    sim = Simulator(siyu_url=live_server.url, seed=11)
    settings.SIYU_WECHAT_BASE_URL = sim.start()
    settings.SIYU_PUBLIC_URL = live_server.url
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.0,)
    yield sim
    sim.stop()


@pytest.fixture
def brand(wechat_sim, wechat_app_factory, workspace, settings):  # noqa: F811
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    membership_grant(workspace=workspace, username="operator", password="pass-12345", role="operator")
    app = official_account(wechat_app_factory, wechat_sim)
    official_services.settings_update(app=app, actor=None, account_type="service", unionid_access=False,
                                      welcome_reply="", default_reply="")
    # Followers arrive through the subscribe callback, delivered in-process here (under a loaded machine the
    # live server may miss the simulator's 10-second callback timeout); messages later go over real HTTP.
    http_transport, client = wechat_sim.transport, Client()

    def in_process(method, url, body, headers):
        response = client.generic(method, url.removeprefix(wechat_sim.siyu_url), data=body, content_type="text/xml")
        return response.status_code, response.content

    wechat_sim.transport = in_process
    for index, city in enumerate(["杭州", "杭州", "上海"]):
        user = wechat_sim.state.user(f"fan{index}")
        assert mp.subscribe(wechat_sim, user, app.appid).status == 200
        customer = Identity.objects.get(kind="openid", namespace=app.appid,
                                        value=wechat_sim.state.openid(user, app.appid)).customer
        customer.city = city
        customer.save(update_fields=["city"])
    wechat_sim.transport = http_transport
    return app


def test_segment_to_journey_to_messages_and_report(live_server, wechat_sim, brand):
    if not Path(CHROMIUM).exists():
        if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(locale="zh-CN")
            page.set_default_timeout(90_000)  # the machine is shared and often loaded
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", "operator")
            page.fill("input[name=password]", "pass-12345")
            page.click("button[type=submit].primary")
            page.wait_for_url(f"{live_server.url}/", wait_until="commit")

            # 1. the segment, with its live count
            page.goto(f"{live_server.url}/ops/segments/")
            page.click("[data-testid=segment-new]")
            page.fill("[data-testid=segment-name]", "杭州粉丝")
            page.click("[data-testid=root-group] >> [data-testid=add-condition]")
            row = page.locator("[data-testid=condition-row]").nth(0)
            row.locator("[data-testid=condition-field]").select_option("city")
            row.locator("[data-testid=condition-value]").fill("杭州")
            expect(page.locator("[data-testid=live-count]")).to_have_text("2")
            page.click("[data-testid=segment-save]")
            expect(page.locator("[data-testid=segment-title]")).to_contain_text("杭州粉丝")
            page.click("[data-testid=segment-refresh]")
            expect(page.locator("[data-testid=segment-member-count]")).to_have_text("2")

            # 2. the journey on it
            page.goto(f"{live_server.url}/ops/journeys/")
            page.fill("[data-testid=journey-create-name]", "杭州新品通知")
            page.click("[data-testid=journey-create-submit]")
            page.locator("[data-testid=trigger-type]").select_option("segment_entered")
            page.locator("[data-testid=trigger-segment_id]").select_option(label="杭州粉丝")
            page.locator("[data-testid=journey-add-type]").select_option("message")
            page.click("[data-testid=journey-add-step]")
            page.locator("[data-testid=step-s1-app_id]").select_option(str(brand.pk))
            page.fill("[data-testid=step-s1-template_id]", "TPL_new_arrival")
            page.locator("[data-testid=step-s1-template_id]").press("Tab")
            page.fill("[data-testid=step-s1-data]", json.dumps({"first": "杭州门店新品到店"}, ensure_ascii=False))
            page.locator("[data-testid=step-s1-data]").press("Tab")
            page.click("[data-testid=journey-activate]")
            expect(page.locator("[data-testid=journey-status]")).to_have_text("运行中")

            # 3. run time forward from the report, then the report and the simulator
            page.click("[data-testid=journey-report-link]")
            expect(page.locator("[data-testid=report-entered]")).to_have_text("2")
            page.click("[data-testid=journey-run-submit]")
            expect(page.locator("[data-testid=report-sent]")).to_have_text("2")
            expect(page.locator("[data-testid=report-completed]")).to_have_text("2")
            expect(page.locator("[data-testid=report-messages] tr[data-status=sent] td").nth(1)).to_have_text("2")

            page.goto(f"{wechat_sim.base_url}/_sim/mp/sent?appid={brand.appid}&api=template")
            arrived = json.loads(page.inner_text("body"))
            assert len(arrived) == 2
            assert {item["payload"]["data"]["first"]["value"] for item in arrived} == {"杭州门店新品到店"}
        finally:
            browser.close()
    assert JourneyMessage.objects.filter(status=MessageStatus.SENT).count() == 2
