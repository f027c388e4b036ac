"""The simulator's 公众号 endpoints and consumer actions, over HTTP, without Siyu."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from siyu.wechat_sim import crypto, mp
from siyu.wechat_sim.server import Simulator
from siyu.wechat_sim.state import SimApp

APPID = "wx0000000000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
API = "api.weixin.qq.com"


@pytest.fixture
def sim():
    simulator = Simulator(seed=3)
    simulator.start()
    simulator.state.app_register(SimApp("official", APPID, secret="s3cret", token="tok", encoding_aes_key=AES_KEY,
                                        callback_url="http://siyu.test/wx/official/" + APPID + "/callback",
                                        extra={"message_mode": "safe", "account_type": "service"}))
    simulator.received = []

    def transport(method, url, body, headers):
        simulator.received.append((url, body))
        return 200, b"success"

    simulator.transport = transport
    yield simulator
    simulator.stop()


def call(sim, method, path, token=True, **kwargs):
    params = kwargs.pop("params", {})
    if token:
        answer = requests.get(f"{sim.base_url}/{API}/cgi-bin/token", timeout=5,
                              params={"grant_type": "client_credential", "appid": APPID, "secret": "s3cret"}).json()
        params["access_token"] = answer["access_token"]
    host = kwargs.pop("host", API)
    return requests.request(method, f"{sim.base_url}/{host}{path}", params=params, timeout=5, **kwargs)


def test_qrcode_temporary_and_permanent_and_showqrcode(sim):
    temp = call(sim, "POST", "/cgi-bin/qrcode/create", json={
        "expire_seconds": 9_999_999, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x1"}}})
    body = temp.json()
    assert body["expire_seconds"] == mp.MAX_TEMP_EXPIRE and body["ticket"] and body["url"].startswith("http")
    permanent = call(sim, "POST", "/cgi-bin/qrcode/create", json={
        "action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "xhs-spring"}}}).json()
    assert "expire_seconds" not in permanent
    image = call(sim, "GET", "/cgi-bin/showqrcode", token=False, host="mp.weixin.qq.com",
                 params={"ticket": permanent["ticket"]})
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert call(sim, "GET", "/cgi-bin/showqrcode", token=False, host="mp.weixin.qq.com",
                params={"ticket": "nope"}).status_code == 404


@pytest.mark.parametrize("payload, errcode", [
    ({"action_name": "QR_BOGUS"}, 40052),
    ({"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100_001}}}, 40053),
    ({"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}, 40053),
    ({"action_name": "QR_SCENE", "expire_seconds": 0, "action_info": {"scene": {"scene_id": 5}}}, 40009),
])
def test_qrcode_bad_requests(sim, payload, errcode):
    assert call(sim, "POST", "/cgi-bin/qrcode/create", json=payload).json()["errcode"] == errcode


def test_menu_round_trip_and_validation(sim):
    assert call(sim, "GET", "/cgi-bin/menu/get").json()["errcode"] == 46003
    menu = {"button": [{"type": "click", "name": "今日推荐", "key": "TODAY"},
                       {"name": "商城", "sub_button": [{"type": "view", "name": "首页", "url": "https://shop.example/"}]}]}
    assert call(sim, "POST", "/cgi-bin/menu/create", data=json.dumps(menu, ensure_ascii=False)
                .encode()).json() == {"errcode": 0, "errmsg": "ok"}
    assert call(sim, "GET", "/cgi-bin/menu/get").json() == {"menu": menu}
    assert call(sim, "POST", "/cgi-bin/menu/create", json={"button": [{"type": "click", "name": "a"}] * 4}
                ).json()["errcode"] == 40016
    assert call(sim, "POST", "/cgi-bin/menu/create", json={"button": [{"type": "click", "name": "a"}]}
                ).json()["errcode"] == 40019
    assert call(sim, "GET", "/cgi-bin/menu/delete").json()["errcode"] == 0
    assert call(sim, "GET", "/cgi-bin/menu/get").json()["errcode"] == 46003


def test_api_needs_a_valid_token(sim):
    assert call(sim, "GET", "/cgi-bin/menu/get", token=False).json()["errcode"] == 41001
    assert call(sim, "GET", "/cgi-bin/menu/get", token=False, params={"access_token": "x"}).json()["errcode"] == 40001


def test_scan_delivers_safe_mode_subscribe_then_scan(sim):
    ticket = call(sim, "POST", "/cgi-bin/qrcode/create", json={
        "action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "xhs"}}}).json()["ticket"]
    user = sim.state.user("u1")
    first = mp.scan(sim, user, ticket)
    assert first.status == 200 and first.reply == ""
    url, body = sim.received[-1]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["encrypt_type"] == "aes" and query["openid"] == sim.state.openid(user, APPID)
    cipher = body.decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    assert crypto.signature("tok", query["timestamp"], query["nonce"], cipher) == query["msg_signature"]
    assert crypto.signature("tok", query["timestamp"], query["nonce"]) == query["signature"]
    plain, receive_id = crypto.decrypt(AES_KEY, cipher)
    assert receive_id == APPID
    assert b"<Event><![CDATA[subscribe]]></Event>" in plain and b"qrscene_xhs" in plain
    mp.scan(sim, user, ticket)
    plain, _ = crypto.decrypt(AES_KEY, sim.received[-1][1].decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0])
    assert b"<Event><![CDATA[SCAN]]></Event>" in plain and b"<EventKey><![CDATA[xhs]]></EventKey>" in plain

    info = call(sim, "GET", "/cgi-bin/user/info", params={"openid": sim.state.openid(user, APPID)}).json()
    assert info["subscribe"] == 1 and info["qr_scene_str"] == "xhs"
    assert info["unionid"] == sim.state.unionid(user, APPID)
    assert call(sim, "GET", "/cgi-bin/user/info", params={"openid": "o-unknown"}).json()["errcode"] == 40003


def test_plain_and_compat_modes_and_duplicate_fault(sim):
    app = sim.state.apps[APPID]
    app.extra["message_mode"] = "plain"
    user = sim.state.user("u2")
    sim.faults.add("duplicate_notify", host=API, path="/callback")
    delayed = sim.faults.add("delay_callback", host=API, path="/callback", seconds=0.01)
    delivery = mp.send_text(sim, user, APPID, "你好")
    assert delivery.attempts == 2 and sim.received[-1][1] == sim.received[-2][1] and delayed.hits == 1
    first, second = (dict(parse_qsl(urlsplit(url).query)) for url, _ in sim.received[-2:])
    assert first["nonce"] != second["nonce"]  # a retry is a new request
    query = second
    assert "encrypt_type" not in query
    assert crypto.signature("tok", query["timestamp"], query["nonce"]) == query["signature"]
    assert b"<Content><![CDATA[\xe4\xbd\xa0\xe5\xa5\xbd]]></Content>" in sim.received[-1][1]
    app.extra["message_mode"] = "compat"
    mp.click_menu(sim, user, APPID, "TODAY")
    body = sim.received[-1][1].decode()
    assert "<EventKey><![CDATA[TODAY]]></EventKey>" in body and "<Encrypt>" in body


def test_safe_mode_reply_is_decrypted_and_checked(sim):
    def replying(method, url, body, headers):
        reply = "<xml><Content><![CDATA[欢迎]]></Content></xml>"
        envelope, _ = crypto.safe_envelope("tok", AES_KEY, APPID, reply)
        return 200, envelope.encode()

    sim.transport = replying
    assert "欢迎" in mp.subscribe(sim, sim.state.user("u3"), APPID).reply


def test_custom_message_window_and_count(sim):
    user = sim.state.user("u4")
    openid = sim.state.openid(user, APPID)
    mp.subscribe(sim, user, APPID)
    text = {"touser": openid, "msgtype": "text", "text": {"content": "hi"}}
    for _ in range(mp.CUSTOM_MESSAGES_PER_WINDOW):
        assert call(sim, "POST", "/cgi-bin/message/custom/send", json=text).json()["errcode"] == 0
    assert call(sim, "POST", "/cgi-bin/message/custom/send", json=text).json()["errcode"] == 45047
    mp.mp(sim).followers[(APPID, openid)].last_interaction -= mp.CUSTOM_WINDOW + 1
    assert call(sim, "POST", "/cgi-bin/message/custom/send", json=text).json()["errcode"] == 45015


def test_template_needs_follower_and_respects_quota(sim):
    follower, stranger = sim.state.user("u5"), sim.state.user("u6")
    mp.subscribe(sim, follower, APPID)
    mp.send_text(sim, stranger, APPID, "hi")  # talked, never followed
    message = {"template_id": "TPL1", "data": {"first": {"value": "x"}}}
    ok = call(sim, "POST", "/cgi-bin/message/template/send",
              json={**message, "touser": sim.state.openid(follower, APPID)}).json()
    assert ok["errcode"] == 0 and ok["msgid"]
    assert call(sim, "POST", "/cgi-bin/message/template/send",
                json={**message, "touser": sim.state.openid(stranger, APPID)}).json()["errcode"] == 43004
    sim.state.apps[APPID].extra["template_daily_quota"] = 1
    assert call(sim, "POST", "/cgi-bin/message/template/send",
                json={**message, "touser": sim.state.openid(follower, APPID)}).json()["errcode"] == 45009
    assert [item["api"] for item in mp.sent_messages(sim, APPID)] == ["template"]


def test_mass_send_quota_list_size_and_clientmsgid(sim):
    users = [sim.state.user(f"m{i}") for i in range(3)]
    for user in users:
        mp.subscribe(sim, user, APPID)
    openids = [sim.state.openid(user, APPID) for user in users]
    text = {"msgtype": "text", "text": {"content": "上新"}}
    assert call(sim, "POST", "/cgi-bin/message/mass/send", json={**text, "touser": openids[:1]}
                ).json()["errcode"] == 40130
    first = call(sim, "POST", "/cgi-bin/message/mass/send", json={**text, "touser": openids, "clientmsgid": "a"})
    assert first.json()["errcode"] == 0 and first.json()["msg_id"]
    assert call(sim, "POST", "/cgi-bin/message/mass/send", json={**text, "touser": openids, "clientmsgid": "a"}
                ).json()["errcode"] == 45065
    mp.tag_user(sim, users[0], APPID, 100)
    tagged = call(sim, "POST", "/cgi-bin/message/mass/sendall", json={**text, "filter": {"tag_id": 100}}).json()
    assert tagged["errcode"] == 0
    assert [item["touser"] for item in mp.sent_messages(sim, APPID) if item["msgid"] == tagged["msg_id"]] == \
        openids[:1]
    for _ in range(2):  # a 服务号 has four mass sends a month
        assert call(sim, "POST", "/cgi-bin/message/mass/sendall",
                    json={**text, "filter": {"is_to_all": True}}).json()["errcode"] == 0
    assert call(sim, "POST", "/cgi-bin/message/mass/sendall", json={**text, "filter": {"is_to_all": True}}
                ).json()["errcode"] == 45028


def test_subscription_account_mass_sends_once_a_day(sim):
    sim.state.apps[APPID].extra["account_type"] = "subscription"
    text = {"msgtype": "text", "text": {"content": "x"}, "filter": {"is_to_all": True}}
    assert call(sim, "POST", "/cgi-bin/message/mass/sendall", json=text).json()["errcode"] == 0
    assert call(sim, "POST", "/cgi-bin/message/mass/sendall", json=text).json()["errcode"] == 45028


def test_rate_limit_fault(sim):
    sim.faults.add("errcode", host=API, path="/cgi-bin/message/template/send", code=45009)
    answer = call(sim, "POST", "/cgi-bin/message/template/send", json={"touser": "x", "template_id": "t", "data": {}})
    assert answer.json()["errcode"] == 45009


def test_control_endpoints(sim):
    ticket = call(sim, "POST", "/cgi-bin/qrcode/create", json={
        "action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 7}}}).json()["ticket"]
    answer = requests.post(f"{sim.base_url}/_sim/mp/scan", json={"user": "c1", "ticket": ticket}, timeout=5).json()
    assert answer["status"] == 200
    assert requests.post(f"{sim.base_url}/_sim/mp/text", json={"user": "c1", "appid": APPID, "text": "1"},
                         timeout=5).json()["status"] == 200
    assert requests.post(f"{sim.base_url}/_sim/mp/scan", json={"user": "c1"}, timeout=5).status_code == 400
    assert requests.post(f"{sim.base_url}/_sim/mp/unsubscribe", json={"user": "c1", "appid": "wxnope"},
                         timeout=5).status_code == 404
    codes = requests.get(f"{sim.base_url}/_sim/mp/qrcodes", params={"appid": APPID}, timeout=5).json()
    assert [code["scene"] for code in codes] == ["7"]
    assert len(sim.received) == 2
