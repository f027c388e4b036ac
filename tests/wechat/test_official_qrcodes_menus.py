"""Channel QR codes and menus through the real wechatpy client against the simulator."""

from __future__ import annotations

import pytest
import requests

from siyu.core.errors import SiyuError
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.models import ApiIssue
from siyu.wechat.official import services
from siyu.wechat.official.models import ChannelQrCode, OfficialSettings
from siyu.wechat.official.rules import KeywordRule, rule_matching
from siyu.wechat_sim import mp
from tests.wechat.official_support import official_account

pytestmark = pytest.mark.django_db
MENU = {"button": [{"type": "click", "name": "今日推荐", "key": "TODAY"},
                   {"name": "商城", "sub_button": [{"type": "view", "name": "首页", "url": "https://shop.example/"},
                                                  {"type": "click", "name": "领券", "key": "COUPON"}]}]}


def test_temporary_and_permanent_codes(wechat_sim, wechat_app_factory):
    app = official_account(wechat_app_factory, wechat_sim)
    temp = services.qrcode_create(app=app, actor=None, name="地推快闪", channel="event", kind="temporary",
                                  expire_seconds=2_592_000)
    permanent = services.qrcode_create(app=app, actor=None, name="包裹卡", channel="淘宝", kind="permanent")
    assert temp.expire_seconds == 2_592_000 and temp.expires_at is not None
    assert permanent.channel == "ecommerce" and permanent.expires_at is None and permanent.expire_seconds is None
    codes = {code.ticket: code for code in mp.mp(wechat_sim).qrcodes.values()}
    assert codes[temp.ticket].action_name == "QR_STR_SCENE" and codes[temp.ticket].scene == temp.scene_str
    assert codes[permanent.ticket].action_name == "QR_LIMIT_STR_SCENE"
    image = requests.get(services.qrcode_image_url(permanent), timeout=5)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("kwargs, code", [
    ({"name": "", "channel": "store", "kind": "permanent"}, "qrcode_name_invalid"),
    ({"name": "x", "channel": "nowhere", "kind": "permanent"}, "qrcode_channel_invalid"),
    ({"name": "x", "channel": "store", "kind": "forever"}, "qrcode_kind_invalid"),
    ({"name": "x", "channel": "store", "kind": "temporary", "expire_seconds": 2_592_001}, "qrcode_expiry_invalid"),
    ({"name": "x", "channel": "store", "kind": "temporary", "expire_seconds": "abc"}, "qrcode_expiry_invalid"),
])
def test_bad_qrcode_requests_change_nothing(wechat_sim, wechat_app_factory, kwargs, code):
    app = official_account(wechat_app_factory, wechat_sim)
    with pytest.raises(SiyuError) as refused:
        services.qrcode_create(app=app, actor=None, **kwargs)
    assert refused.value.code == code
    assert not ChannelQrCode.objects.exists() and not mp.mp(wechat_sim).qrcodes


def test_wechat_refusal_is_surfaced(wechat_sim, wechat_app_factory):
    app = official_account(wechat_app_factory, wechat_sim)
    wechat_sim.faults.add("errcode", host="api.weixin.qq.com", path="/cgi-bin/qrcode/create", code=45009)
    with pytest.raises(WeChatApiError) as refused:
        services.qrcode_create(app=app, actor=None, name="x", channel="store", kind="permanent")
    assert refused.value.code == "wechat_quota_daily"
    assert ApiIssue.objects.filter(app=app, api="qrcode.create", errcode=45009).exists()
    assert not ChannelQrCode.objects.exists()


def test_menu_publish_round_trip(wechat_sim, wechat_app_factory):
    app = official_account(wechat_app_factory, wechat_sim)
    assert services.menu_fetch(app=app) is None
    services.menu_save(app=app, actor=None, menu=MENU)
    published = services.menu_publish(app=app, actor=None)
    assert published["button"][0] == {"type": "click", "name": "今日推荐", "key": "TODAY"}
    assert mp.mp(wechat_sim).menus[app.appid] == MENU
    assert services.menu_fetch(app=app) == published
    assert OfficialSettings.objects.get(app=app).menu_published_at is not None


@pytest.mark.parametrize("menu, path", [
    ({"button": []}, "button"),
    ({"button": [{"type": "click", "name": "一二三四五六", "key": "K"}]}, "button[0].name"),  # 18 bytes
    ({"button": [{"type": "click", "name": "a"}]}, "button[0].key"),
    ({"button": [{"type": "view", "name": "a", "url": "javascript:x"}]}, "button[0].url"),
    ({"button": [{"name": "a", "sub_button": [{"type": "click", "name": "b", "key": "k"}] * 6}]},
     "button[0].sub_button"),
    ({"button": [{"type": "miniprogram", "name": "a"}]}, "button[0].type"),
    ("not a menu", "button"),
])
def test_bad_menus_are_refused_before_wechat(wechat_sim, wechat_app_factory, menu, path):
    app = official_account(wechat_app_factory, wechat_sim)
    with pytest.raises(SiyuError) as refused:
        services.menu_save(app=app, actor=None, menu=menu)
    assert refused.value.code == "menu_invalid" and refused.value.details["path"] == path
    assert not OfficialSettings.objects.filter(app=app).exclude(menu={}).exists()


def test_keyword_matching_rules():
    rules = [KeywordRule("优惠", "contains", "A", 0, 1), KeywordRule("优惠券", "exact", "B", 5, 2),
             KeywordRule("hello", "exact", "C", 0, 3), KeywordRule("优惠", "contains", "D", 0, 4)]
    assert rule_matching(rules, "优惠券").reply == "B"
    assert rule_matching(rules, "有优惠吗").reply == "A"  # same priority: the earlier rule
    assert rule_matching(rules, "  HELLO ").reply == "C"
    assert rule_matching(rules, "hello there") is None
    assert rule_matching(rules, "") is None
