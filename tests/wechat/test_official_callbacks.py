"""公众号 callbacks end to end: the simulator's consumers act, Siyu verifies, records and replies."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from siyu.customers.models import Customer, Event, Identity
from siyu.wechat.official import services
from siyu.wechat.official.models import ChannelQrCode, Follower
from siyu.wechat_sim import crypto, mp
from tests.wechat.official_support import customer_of, official_account

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_subscribe_via_channel_qr_makes_one_customer_with_openid_and_unionid(wechat_sim, wechat_app_factory,
                                                                              workspace, mode):
    app = official_account(wechat_app_factory, wechat_sim, mode=mode)
    services.settings_update(app=app, actor=None, account_type="service", unionid_access=True,
                             welcome_reply="欢迎关注！回复「优惠」领券", default_reply="")
    code = services.qrcode_create(app=app, actor=None, name="小红书春季笔记", channel="xiaohongshu", kind="permanent")
    user = wechat_sim.state.user("alice")

    delivery = mp.scan(wechat_sim, user, code.ticket)

    assert delivery.status == 200
    assert "欢迎关注！回复「优惠」领券" in delivery.reply  # decrypted and signature-checked by the simulator
    if mode == "safe":
        assert b"<Encrypt>" in delivery.body and "欢迎".encode() not in delivery.body
    if mode == "plain":
        assert "欢迎关注".encode() in delivery.body
    openid, unionid = wechat_sim.state.openid(user, app.appid), wechat_sim.state.unionid(user, app.appid)
    customer = customer_of(workspace, kind="openid", namespace=app.appid, value=openid)
    assert customer is not None and customer == customer_of(workspace, kind="unionid", value=unionid)
    assert customer.first_channel == "xiaohongshu"
    assert Customer.objects.filter(workspace=workspace).count() == 1
    events = list(Event.objects.filter(workspace=workspace).order_by("type").values_list("type", "channel"))
    assert events == [("qr_scan", "xiaohongshu"), ("subscribe", "xiaohongshu")]
    code.refresh_from_db()
    assert (code.scans, code.subscribes) == (1, 1)
    follower = Follower.objects.get(app=app, openid=openid)
    assert follower.subscribed and follower.unionid == unionid and follower.qr_code == code
    assert follower.customer_id == customer.pk


def test_duplicated_callback_changes_nothing(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim)
    code = services.qrcode_create(app=app, actor=None, name="门店收银台", channel="store", kind="temporary",
                                  expire_seconds=3600)
    wechat_sim.faults.add("duplicate_notify", host="api.weixin.qq.com", path="/callback")
    delivery = mp.scan(wechat_sim, wechat_sim.state.user("bob"), code.ticket)
    assert delivery.attempts == 2 and delivery.status == 200
    assert Event.objects.filter(workspace=workspace).count() == 2
    assert Identity.objects.filter(workspace=workspace).count() == 2
    code.refresh_from_db()
    assert (code.scans, code.subscribes) == (1, 1)


def test_scan_when_following_then_unsubscribe(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim)
    code = services.qrcode_create(app=app, actor=None, name="抖音", channel="douyin", kind="permanent")
    user = wechat_sim.state.user("carol")
    mp.subscribe(wechat_sim, user, app.appid)  # followed from search first: 公众号 is the first channel
    assert mp.scan(wechat_sim, user, code.ticket).status == 200
    code.refresh_from_db()
    assert (code.scans, code.subscribes) == (1, 0)
    openid = wechat_sim.state.openid(user, app.appid)
    customer = customer_of(workspace, kind="openid", namespace=app.appid, value=openid)
    assert customer.first_channel == "official_account"
    assert list(Event.objects.filter(workspace=workspace).order_by("pk").values_list("type", flat=True)) == \
        ["subscribe", "qr_scan"]
    assert mp.unsubscribe(wechat_sim, user, app.appid).status == 200
    assert Event.objects.filter(workspace=workspace, type="unsubscribe").count() == 1
    assert not Follower.objects.get(app=app, openid=openid).subscribed


def test_keyword_reply_default_reply_and_menu_click(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim)
    services.settings_update(app=app, actor=None, account_type="service", unionid_access=False, welcome_reply="",
                             default_reply="客服稍后回复您")
    services.rule_save(app=app, actor=None, keyword="优惠", match="contains", reply_text="本周满199减30", priority=1)
    services.rule_save(app=app, actor=None, keyword="优惠券", match="exact", reply_text="券已发放", priority=5)
    services.rule_save(app=app, actor=None, keyword="MENU_NEW", match="exact", reply_text="新品在这里")
    services.rule_save(app=app, actor=None, keyword="关闭的", match="exact", reply_text="x", enabled=False)
    user = wechat_sim.state.user("dan")
    mp.subscribe(wechat_sim, user, app.appid)
    assert "券已发放" in mp.send_text(wechat_sim, user, app.appid, " 优惠券 ").reply
    assert "本周满199减30" in mp.send_text(wechat_sim, user, app.appid, "有优惠吗").reply
    assert "客服稍后回复您" in mp.send_text(wechat_sim, user, app.appid, "关闭的").reply
    assert "新品在这里" in mp.click_menu(wechat_sim, user, app.appid, "MENU_NEW").reply
    assert mp.click_menu(wechat_sim, user, app.appid, "OTHER").reply == ""
    types = list(Event.objects.filter(workspace=workspace).values_list("type", flat=True))
    assert types.count("message_in") == 3 and types.count("menu_click") == 2
    texts = set(Event.objects.filter(workspace=workspace, type="message_in").values_list("properties__text", flat=True))
    assert "有优惠吗" in texts
    # without unionid access no unionid identity is recorded
    assert not Identity.objects.filter(workspace=workspace, kind="unionid").exists()


def test_url_verification(wechat_sim, wechat_app_factory):
    app = official_account(wechat_app_factory, wechat_sim)
    token = app.secrets()["token"]
    query = crypto.plain_query(token)
    client = Client()
    answer = client.get(f"/wx/official/{app.appid}/callback", {**query, "echostr": "hello123"})
    assert answer.status_code == 200 and answer.content == b"hello123"
    bad = client.get(f"/wx/official/{app.appid}/callback", {**query, "signature": "0" * 40, "echostr": "x"})
    assert bad.status_code == 403


def test_unknown_appid_is_404_and_stores_nothing(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim, mode="plain")
    xml = mp.event_xml(wechat_sim.state.apps[app.appid], "oX", "event", {"Event": "subscribe", "EventKey": ""},
                       create_time=1)
    query = crypto.plain_query(app.secrets()["token"])
    answer = Client().post("/wx/official/wxdoesnotexist00000/callback?" + "&".join(f"{k}={v}" for k, v in
                                                                                 query.items()),
                           data=xml, content_type="text/xml")
    assert answer.status_code == 404 and b"wechat_app_unknown" in answer.content
    assert not Event.objects.exists() and not Follower.objects.exists()


def test_wrong_signature_rejected_with_nothing_changed(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim, mode="plain")
    with wechat_sim.lock:
        wechat_sim.state.apps[app.appid].token = "notthetoken"
    delivery = mp.send_text(wechat_sim, wechat_sim.state.user("eve"), app.appid, "hi")
    assert delivery.status == 403
    assert not Event.objects.exists() and not Follower.objects.exists()
    assert not ChannelQrCode.objects.exists()


def test_replayed_request_is_refused_and_changes_nothing(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim)
    secrets = app.secrets()
    sim_app = wechat_sim.state.apps[app.appid]
    xml = mp.event_xml(sim_app, "oReplayUser000000000000000", "text", {"Content": "hi", "MsgId": 42},
                       create_time=int(time.time()))
    body, query = crypto.safe_envelope(secrets["token"], secrets["encoding_aes_key"], app.appid, xml)
    url = f"/wx/official/{app.appid}/callback?" + "&".join(f"{key}={value}" for key, value in query.items())
    client = Client()
    assert client.post(url, data=body, content_type="text/xml").status_code == 200
    events = Event.objects.count()
    replay = client.post(url, data=body, content_type="text/xml")
    assert replay.status_code == 403 and b"replayed" in replay.content
    assert Event.objects.count() == events == 1


def test_follower_from_before_siyu_scanning_gets_unionid(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim)
    code = services.qrcode_create(app=app, actor=None, name="异业合作", channel="partner", kind="permanent")
    user = wechat_sim.state.user("old-fan")
    openid = wechat_sim.state.openid(user, app.appid)
    with wechat_sim.lock:  # followed years ago; Siyu never saw the subscribe
        mp.mp(wechat_sim).followers[(app.appid, openid)] = mp.Follower(app.appid, openid, user.key, subscribed=True)
    assert mp.scan(wechat_sim, user, code.ticket).status == 200
    customer = customer_of(workspace, kind="unionid", value=wechat_sim.state.unionid(user, app.appid))
    assert customer is not None and customer.first_channel == "partner"
    assert list(Event.objects.filter(workspace=workspace).values_list("type", flat=True)) == ["qr_scan"]
    code.refresh_from_db()
    assert (code.scans, code.subscribes) == (1, 0)
    assert Follower.objects.get(app=app, openid=openid).subscribed


def test_entity_expansion_in_plain_mode_is_refused(wechat_sim, wechat_app_factory, workspace):
    app = official_account(wechat_app_factory, wechat_sim, mode="plain")
    hostile = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
               '<xml><ToUserName>gh</ToUserName><FromUserName>oEvil</FromUserName><CreateTime>1</CreateTime>'
               '<MsgType>text</MsgType><Content>&b;</Content><MsgId>1</MsgId></xml>')
    query = crypto.plain_query(app.secrets()["token"])
    url = f"/wx/official/{app.appid}/callback?" + "&".join(f"{key}={value}" for key, value in query.items())
    answer = Client().post(url, data=hostile, content_type="text/xml")
    assert answer.status_code == 400 and b"xml_forbidden" in answer.content
    assert not Event.objects.exists() and not Follower.objects.exists()
