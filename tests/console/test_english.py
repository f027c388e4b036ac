"""The WeChat console pages in English: every built navigation item under /wechat/ renders, and its navigation
and headings carry no Chinese left untranslated (data from the database, e.g. member names, may stay Chinese)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from siyu.console.navigation import NAVIGATION
from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.models import Staff
from tests.wechat import conftest as wechat_conftest
from tests.wechat import work_fixtures

wechat_sim, wechat_app_factory, work_app = (wechat_conftest.wechat_sim, wechat_conftest.wechat_app_factory,
                                            wechat_conftest.work_app)
corp, staff, immediate_tasks = work_fixtures.corp, work_fixtures.staff, work_fixtures.immediate_tasks

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
CHECKED = {"nav", "h1", "h2", "h3", "th", "legend", "summary", "button", "label"}  # page furniture, not data
SKIPPED = {"option", "select", "textarea", "code", "script", "style"}  # values typed in or read from the database


class Furniture(HTMLParser):
    """Collects the text of navigation, headings, table headers, buttons and form labels."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped: form values, code, the language switch)
        self.texts: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag in {"input", "br", "img", "meta", "link", "hr"}:
            return
        classes = (dict(attrs).get("class") or "").split()
        skip = tag in SKIPPED or "lang-switch" in classes or "mono" in classes
        self.stack.append((tag, skip))

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data):
        if not data.strip() or any(skip for _tag, skip in self.stack):
            return
        for tag, _skip in reversed(self.stack):
            if tag in CHECKED:
                self.texts.append((tag, data.strip()))
                return


def wechat_nav_urls() -> list[str]:
    urls = [item.url for group in NAVIGATION for item in group.items if item.built]
    return [url for url in urls if url.startswith("/wechat/")]


@pytest.fixture
def english_admin(clients):
    client = clients["admin"]
    response = client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert response.status_code == 302
    return client


@pytest.fixture
def connected(workspace, wechat_app_factory, corp, staff):
    """Every kind of WeChat account connected, a 「联系我」 code with a member, so the pages show their sections."""
    apps = {kind: wechat_app_factory(kind, name=f"Brand {kind}") for kind in ("official", "miniapp", "pay")}
    contact_way_save(workspace=workspace, app=corp, name="小红书笔记", channel="xiaohongshu",
                     members=[(staff["zhangsan"].pk, 5)], welcome_text="你好")
    return apps


def test_navigation_lists_the_wechat_pages():
    urls = wechat_nav_urls()
    for name in ("wechat_qrcodes", "wechat_contact_ways", "wechat_official", "wechat_work", "wechat_consumer",
                 "wechat_pay", "wechat_apps"):
        assert reverse(f"console:{name}") in urls


def test_wechat_pages_in_english(english_admin, clients, connected):
    """One set-up (simulator, four accounts, a corp with members) for every check that needs accounts."""
    member_names = set(Staff.objects.values_list("name", flat=True))  # data: the checkbox labels name members
    assert member_names
    untranslated, pages = {}, {}
    for url in wechat_nav_urls():
        response = english_admin.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert '<html lang="en">' in body, url
        parser = Furniture()
        parser.feed(body)
        assert any(tag == "h1" for tag, _text in parser.texts), url
        assert any(tag == "nav" for tag, _text in parser.texts), url
        left = [f"<{tag}> {text}" for tag, text in parser.texts if CJK.search(text) and text not in member_names]
        if left:
            untranslated[url] = left
        pages[url] = html.unescape(body)
    assert untranslated == {}

    # a few sentences, read as a visitor would
    apps, official = pages[reverse("console:wechat_apps")], pages[reverse("console:wechat_official")]
    work, pay = pages[reverse("console:wechat_work")], pages[reverse("console:wechat_pay")]
    ways = pages[reverse("console:wechat_contact_ways")]
    assert "Accounts & API health" in apps and "Connected accounts" in apps
    assert "Message encryption mode: " in apps and "：" not in apps.split("<main")[1]
    assert "Keyword auto-replies" in official and "Custom menu" in official
    assert "Mass-send tasks" in work and "Departed members' handover" in work
    assert "Notification inbox" in pay and "Amount refunded (yuan)" in pay
    assert "Channel QR codes · WeCom Contact Me" in ways
    assert "小红书笔记" in ways  # data stays as entered
    account = connected["official"]
    form = html.unescape(english_admin.get(reverse("console:wechat_app_edit", args=[account.pk])).content.decode())
    assert "Edit Official Account: Brand official" in form and "Back to accounts" in form

    # a flash message after an action
    response = english_admin.post(reverse("console:wechat_official_settings"), {
        "app": account.appid, "account_type": "service", "welcome_reply": "欢迎", "default_reply": ""}, follow=True)
    body = html.unescape(response.content.decode())
    assert response.status_code == 200 and "Official Account settings saved" in body

    # without the language cookie the console stays Chinese
    chinese = clients["operator"].get(reverse("console:wechat_work")).content.decode()
    assert "群发任务" in chinese and "Mass-send tasks" not in chinese


def test_wechat_pages_in_english_with_nothing_connected(english_admin):
    """The empty states (no account yet) are translated too."""
    for url in wechat_nav_urls():
        response = english_admin.get(url)
        assert response.status_code == 200, url
        parser = Furniture()
        parser.feed(response.content.decode())
        assert [text for _tag, text in parser.texts if CJK.search(text)] == [], url


OPERATIONS_PAGES = ("segments", "rfm", "journeys", "communities", "service", "inbox", "loyalty_tasks")


def furniture_left_in_chinese(client, url, allowed=frozenset()) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    body = response.content.decode()
    assert '<html lang="en">' in body, url
    parser = Furniture()
    parser.feed(body)
    assert any(tag == "h1" for tag, _text in parser.texts), url
    assert any(tag == "nav" for tag, _text in parser.texts), url
    return [f"<{tag}> {text}" for tag, text in parser.texts if CJK.search(text) and text not in allowed]


def test_operations_pages_in_english(english_admin):
    """The operations layer (segments, RFM, journeys, communities, service bot, staff inbox, growth tasks): navigation,
    headings, table headers, labels and buttons are translated."""
    untranslated = {}
    for name in OPERATIONS_PAGES:
        url = reverse(f"console:{name}")
        left = furniture_left_in_chinese(english_admin, url)
        if left:
            untranslated[url] = left
    assert untranslated == {}


def test_operations_pages_with_data_in_english(english_admin, workspace):
    """With a segment, a journey, a hand-tracked community and a staff task, the lists show their tables and the
    detail, editor and report pages render in English too (names are typed in ASCII here: data may stay as entered)."""
    from siyu.engagement.communities.services import community_create
    from siyu.engagement.journeys.models import Journey
    from siyu.engagement.segments.models import Segment
    from tests.engagement.inbox import factories as inbox_factories

    segment = Segment.objects.create(workspace=workspace, name="New buyers", definition={})
    created = english_admin.post(reverse("console:journeys"), {"name": "Welcome"})
    assert created.status_code == 302
    journey = Journey.objects.get(workspace=workspace, name="Welcome")
    community = community_create(workspace=workspace, name="VIP club", type="vip")
    customer = inbox_factories.customer(workspace)
    task = inbox_factories.task(workspace, "t-1", customer_id=customer.pk, title="Call back")
    urls = [reverse(f"console:{name}") for name in OPERATIONS_PAGES] + [
        reverse("console:segment_new"), reverse("console:segment_detail", args=[segment.pk]),
        reverse("console:segment_edit", args=[segment.pk]), reverse("console:journey_edit", args=[journey.pk]),
        reverse("console:journey_report", args=[journey.pk]),
        reverse("console:community_detail", args=[community.pk]), reverse("console:community_rhythm"),
        reverse("console:community_koc"), reverse("console:inbox_task", args=[task.pk])]
    untranslated = {}
    for url in urls:
        left = furniture_left_in_chinese(english_admin, url)
        if left:
            untranslated[url] = left
    assert untranslated == {}
    segments = html.unescape(english_admin.get(reverse("console:segments")).content.decode())
    assert "New segment" in segments and "New buyers" in segments


# --- Chinese punctuation in English chrome ------------------------------------------------------------------------
# Full-width colon, brackets, comma, full stop … (CJK Symbols and Punctuation, Halfwidth and Fullwidth Forms).
CJK_PUNCTUATION = re.compile(r"[\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]")
HAN = re.compile(r"[\u3400-\u9fff]")
TEXT_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")


class Chrome(HTMLParser):
    """Every text node and text attribute of the page except form values, code and scripts."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if not any(skip for _tag, skip in self.stack):
            self.texts.extend(str(values[name]) for name in TEXT_ATTRIBUTES if values.get(name))
            if tag == "input" and values.get("type") in {"submit", "button"} and values.get("value"):
                self.texts.append(str(values["value"]))
        if tag in {"input", "br", "img", "meta", "link", "hr"}:
            return
        classes = (values.get("class") or "").split()
        self.stack.append((tag, tag in SKIPPED or "lang-switch" in classes or "mono" in classes))

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data):
        if data.strip() and not any(skip for _tag, skip in self.stack):
            self.texts.append(data.strip())


def chinese_punctuation_in_english(body: str) -> list[str]:
    """Texts of an English page with Chinese punctuation and no Chinese characters: a translated string with a
    Chinese colon or bracket left in the template or the msgstr (a text with Chinese in it is data, or is caught
    as untranslated by the checks above)."""
    parser = Chrome()
    parser.feed(body)
    return [text for text in parser.texts if CJK_PUNCTUATION.search(text) and not HAN.search(text)]


def console_urls() -> list[str]:
    return [item.url for group in NAVIGATION for item in group.items if item.built]


def test_no_chinese_punctuation_in_english_console_pages(english_admin, connected, workspace):
    """Every built console page (and the operations layer's detail pages), rendered in English with accounts
    connected and some data: no Chinese colon, bracket or comma left in the page's own text."""
    from siyu.engagement.communities.services import community_create
    from siyu.engagement.journeys.models import Journey
    from siyu.engagement.segments.models import Segment
    from tests.engagement.inbox import factories as inbox_factories

    segment = Segment.objects.create(workspace=workspace, name="New buyers", definition={})
    assert english_admin.post(reverse("console:journeys"), {"name": "Welcome"}).status_code == 302
    journey = Journey.objects.get(workspace=workspace, name="Welcome")
    community = community_create(workspace=workspace, name="VIP club", type="vip")
    customer = inbox_factories.customer(workspace)
    task = inbox_factories.task(workspace, "t-2", customer_id=customer.pk, title="Call back")
    urls = [
        *console_urls(), reverse("console:segment_new"), reverse("console:segment_detail", args=[segment.pk]),
        reverse("console:segment_edit", args=[segment.pk]), reverse("console:journey_edit", args=[journey.pk]),
        reverse("console:journey_report", args=[journey.pk]),
        reverse("console:community_detail", args=[community.pk]), reverse("console:community_rhythm"),
        reverse("console:community_koc"), reverse("console:inbox_task", args=[task.pk]),
        reverse("console:wechat_app_edit", args=[connected["official"].pk]),
        *(reverse("console:wechat_app_create", args=[kind]) for kind in ("official", "miniapp", "work", "pay"))]
    found = {}
    for url in urls:
        response = english_admin.get(url)
        assert response.status_code == 200, url
        body = html.unescape(response.content.decode())
        assert '<html lang="en">' in body, url
        left = chinese_punctuation_in_english(body)
        if left:
            found[url] = left
    assert found == {}, "\n".join(f"{url}: {texts}" for url, texts in found.items())


def test_the_punctuation_check_finds_a_leak():
    assert chinese_punctuation_in_english("<main><h1>Name：</h1><p>（optional）</p><td>小红书，笔记</td></main>") == [
        "Name：", "（optional）"]
    assert chinese_punctuation_in_english('<input placeholder="e.g. 【VIP】"><textarea>Note：x</textarea>') == [
        "e.g. 【VIP】"]
