"""A real browser: create a group, see its activity chart, and save a rule from its table row (the row's
inputs belong to the row's form through form=, not by nesting)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from siyu.core.services import membership_grant, workspace_create
from siyu.engagement.communities.messages import messages_record
from siyu.engagement.communities.models import Community, CommunityRule

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_group_chart_and_rule_edit(live_server, settings):
    if not Path(CHROMIUM).exists():
        if os.environ.get("SIYU_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    workspace = workspace_create(slug="community-browser", name="花间集护肤")
    membership_grant(workspace=workspace, username="boss", password="pass-12345", role="admin")
    shots = Path(settings.BASE_DIR) / "var"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")
            page.set_default_timeout(60_000)  # the shared test machine is slow under load
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", "boss")
            page.fill("input[name=password]", "pass-12345")
            page.click("button[type=submit].primary")
            page.wait_for_url(f"{live_server.url}/")
            page.click("a.nav-item:has-text('社群运营')")
            page.fill("#create input[name=name]", "兴趣交流群")
            page.select_option("#create select[name=type]", "interest")
            page.click("#create button[type=submit]")
            expect(page.locator("h1")).to_contain_text("兴趣交流群")
            community = Community.objects.get(name="兴趣交流群")
            now = int(time.time())
            messages_record(workspace=workspace, messages=[
                {"msg_id": f"b{n}", "community_id": community.pk, "sender": {"id": f"wm{n % 3}"},
                 "content": "分享", "sent_at": now - 60 + n} for n in range(12)])
            page.reload()
            expect(page.locator("#chart-messages-daily svg.main-svg").first).to_be_visible()
            row = page.locator("tr[data-rule=flood]")
            row.locator("input[name=threshold]").fill("20")
            row.locator("button").click()
            expect(page.locator(".flash-item")).to_contain_text("已保存规则")
            page.screenshot(path=str(shots / "console-community.png"), full_page=True)
            page.click("a:has-text('运营节奏')")
            page.click("a.btn:has-text('兴趣群')")
            expect(page.locator("#slots input[name=theme][value='主题讨论']")).to_have_count(1)
            page.screenshot(path=str(shots / "console-community-rhythm.png"), full_page=True)
            page.click("a:has-text('KOC 培育')")
            expect(page.locator("#formula")).to_contain_text("贡献分")
            page.screenshot(path=str(shots / "console-community-koc.png"), full_page=True)
            page.click("a:has-text('社群列表')")
            expect(page.locator("tr[data-community]")).to_contain_text("兴趣交流群")
            page.screenshot(path=str(shots / "console-community-list.png"), full_page=True)
        finally:
            browser.close()
    rule = CommunityRule.objects.get(community=community, kind="flood")
    assert (rule.threshold, rule.window_seconds, rule.actions, rule.active) == (20, 60, ["warn"], True)
