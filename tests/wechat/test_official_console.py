"""The 公众号 console pages: who may see and edit, forms that call WeChat, and bad input refused."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.wechat.official import services
from siyu.wechat.official.models import AutoReplyRule, ChannelQrCode, Follower, MessageSend, OfficialSettings
from siyu.wechat_sim import mp
from tests.wechat.official_support import official_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(wechat_sim, wechat_app_factory):
    return official_account(wechat_app_factory, wechat_sim)


def test_overview_shows_followers_rules_and_today(clients, app, wechat_sim):
    services.rule_save(app=app, actor=None, keyword="营业时间", match="exact", reply_text="每天 10:00-22:00")
    mp.subscribe(wechat_sim, wechat_sim.state.user("v1"), app.appid)
    for role in ("admin", "operator", "analyst"):
        page = clients[role].get("/wechat/official/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "营业时间" in html and 'data-followers>1<' in html
        assert ("保存并发布到微信" in html) == (role != "analyst")
    assert clients["service"].get("/wechat/official/").status_code == 403
    assert clients["service"].get("/wechat/qrcodes/").status_code == 403


def test_operator_creates_a_channel_qr_code_and_it_counts_scans(clients, app, wechat_sim):
    answer = clients["operator"].post("/wechat/qrcodes/create", {
        "app": app.appid, "name": "门店试衣间", "channel": "store", "kind": "temporary", "expire_days": "7"})
    assert answer.status_code == 302
    code = ChannelQrCode.objects.get(app=app)
    assert code.channel == "store" and code.expire_seconds == 7 * 86400
    mp.scan(wechat_sim, wechat_sim.state.user("v2"), code.ticket)
    page = clients["analyst"].get(f"/wechat/qrcodes/?app={app.appid}").content.decode()
    assert "门店试衣间" in page and code.scene_str in page and "showqrcode?ticket=" in page
    assert "<td>1</td><td>1</td>" in page  # one scan, one subscribe


@pytest.mark.parametrize("form, code", [
    ({"name": "x", "channel": "store", "kind": "temporary", "expire_days": "40"}, "qrcode_expiry_invalid"),
    ({"name": "", "channel": "store", "kind": "permanent"}, "qrcode_name_invalid"),
    ({"name": "x", "channel": "<script>", "kind": "permanent"}, "qrcode_channel_invalid"),
])
def test_bad_qr_forms_are_refused_with_nothing_created(clients, app, wechat_sim, form, code):
    answer = clients["operator"].post("/wechat/qrcodes/create", {"app": app.appid, **form})
    assert answer.status_code == 400 and code in answer.content.decode()
    assert not ChannelQrCode.objects.exists() and not mp.mp(wechat_sim).qrcodes


def test_analyst_cannot_edit(clients, app, wechat_sim):
    for url, form in (("/wechat/qrcodes/create", {"name": "x", "channel": "store", "kind": "permanent"}),
                      ("/wechat/official/rules", {"keyword": "a", "match": "exact", "reply_text": "b"}),
                      ("/wechat/official/menu", {"menu": json.dumps({"button": [{"type": "click", "name": "a",
                                                                                  "key": "k"}]}), "publish": "1"})):
        assert clients["analyst"].post(url, {"app": app.appid, **form}).status_code == 403
    assert not ChannelQrCode.objects.exists() and not AutoReplyRule.objects.exists()
    assert app.appid not in mp.mp(wechat_sim).menus


def test_menu_form_publishes_and_reads_back(clients, app, wechat_sim):
    menu = {"button": [{"type": "click", "name": "领券", "key": "COUPON"}]}
    answer = clients["admin"].post("/wechat/official/menu", {"app": app.appid, "menu": json.dumps(menu),
                                                             "publish": "1"})
    assert answer.status_code == 302
    assert mp.mp(wechat_sim).menus[app.appid] == menu
    page = clients["admin"].get(answer["Location"]).content.decode()
    assert "data-published-menu" in page and "COUPON" in page
    bad = clients["admin"].post("/wechat/official/menu", {"app": app.appid, "menu": "{not json", "publish": "1"})
    assert bad.status_code == 400 and "menu_invalid_json" in bad.content.decode()
    too_long = clients["admin"].post("/wechat/official/menu", {"app": app.appid, "publish": "0", "menu": json.dumps(
        {"button": [{"type": "click", "name": "这是一个很长的菜单名", "key": "K"}]})})
    assert too_long.status_code == 400 and "16" in too_long.content.decode()
    assert OfficialSettings.objects.get(app=app).menu == menu


def test_rule_form_and_settings_form(clients, app):
    assert clients["operator"].post("/wechat/official/rules", {
        "app": app.appid, "keyword": "", "match": "exact", "reply_text": "x"}).status_code == 400
    assert clients["operator"].post("/wechat/official/rules", {
        "app": app.appid, "keyword": "a", "match": "regex", "reply_text": "x"}).status_code == 400
    assert not AutoReplyRule.objects.exists()
    assert clients["operator"].post("/wechat/official/rules", {
        "app": app.appid, "keyword": "地址", "match": "contains", "reply_text": "上海市", "priority": "3"}
    ).status_code == 302
    rule = AutoReplyRule.objects.get()
    assert clients["operator"].post("/wechat/official/rules/delete", {"app": app.appid, "rule_id": "999999"}
                                    ).status_code == 404
    assert clients["operator"].post("/wechat/official/rules/delete", {"app": app.appid, "rule_id": rule.pk}
                                    ).status_code == 302
    assert not AutoReplyRule.objects.exists()
    assert clients["admin"].post("/wechat/official/settings", {
        "app": app.appid, "account_type": "weird"}).status_code == 400
    assert clients["admin"].post("/wechat/official/settings", {
        "app": app.appid, "account_type": "subscription", "welcome_reply": "你好"}).status_code == 302
    row = OfficialSettings.objects.get(app=app)
    assert row.account_type == "subscription" and row.welcome_reply == "你好" and not row.unionid_access


def test_mass_send_form_explains_a_refusal(clients, app, wechat_sim):
    services.settings_update(app=app, actor=None, account_type="subscription", unionid_access=True,
                             welcome_reply="", default_reply="")
    for key in ("m1", "m2"):
        mp.subscribe(wechat_sim, wechat_sim.state.user(key), app.appid)
    form = {"app": app.appid, "kind": "mass", "audience": "all", "text": "今日上新"}
    assert clients["operator"].post("/wechat/official/send", form).status_code == 302
    refused = clients["operator"].post("/wechat/official/send", form)
    assert refused.status_code == 429 and "订阅号每天只能群发 1 次" in refused.content.decode()
    assert MessageSend.objects.count() == 1
    wrong_app = clients["operator"].post("/wechat/official/send", {**form, "app": "wxnotours000000000"})
    assert wrong_app.status_code == 404
    assert MessageSend.objects.count() == 1
    page = clients["analyst"].get("/wechat/official/").content.decode()
    assert f'data-send="{MessageSend.objects.get().pk}"' in page


def test_custom_message_form_within_and_outside_the_window(clients, app, wechat_sim):
    user = wechat_sim.state.user("talker")
    mp.subscribe(wechat_sim, user, app.appid)
    mp.send_text(wechat_sim, user, app.appid, "你好")
    openid = wechat_sim.state.openid(user, app.appid)
    page = clients["operator"].get("/wechat/official/").content.decode()
    assert openid in page and 'value="custom"' in page
    form = {"app": app.appid, "kind": "custom", "openid": openid, "text": "您好，有什么可以帮您？"}
    assert clients["operator"].post("/wechat/official/send", form).status_code == 302
    Follower.objects.filter(app=app, openid=openid).update(last_interaction_at=timezone.now() - timedelta(days=3))
    closed = clients["operator"].post("/wechat/official/send", form)
    assert closed.status_code == 409 and "48 小时" in closed.content.decode()
    assert MessageSend.objects.filter(kind="custom").count() == 1
    assert clients["operator"].post("/wechat/official/send", {**form, "kind": "fax"}).status_code == 400
