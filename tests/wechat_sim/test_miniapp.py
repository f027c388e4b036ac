"""The simulated 小程序 APIs over HTTP: code2session, phone codes and subscribe messages, with WeChat's errors."""

from __future__ import annotations

import time

import pytest
import requests

from siyu.wechat_sim import miniapp
from siyu.wechat_sim.server import Simulator
from siyu.wechat_sim.state import SimApp

APPID, SECRET = "wxmini0000000001", "s3cret-mini"


@pytest.fixture
def sim():
    simulator = Simulator(seed=3)
    simulator.start()
    simulator.state.app_register(SimApp("miniapp", APPID, SECRET, extra={"open_platform": "brand"}))
    simulator.state.app_register(SimApp("miniapp", "wxmini_noplatform", "other"))
    yield simulator
    simulator.stop()


def code2session(sim, code, *, appid=APPID, secret=SECRET, grant_type="authorization_code"):
    return requests.get(f"{sim.base_url}/api.weixin.qq.com/sns/jscode2session", timeout=5, params={
        "appid": appid, "secret": secret, "js_code": code, "grant_type": grant_type}).json()


def token(sim, appid=APPID, secret=SECRET):
    return requests.get(f"{sim.base_url}/api.weixin.qq.com/cgi-bin/token", timeout=5, params={
        "grant_type": "client_credential", "appid": appid, "secret": secret}).json()["access_token"]


def test_login_code_gives_openid_session_key_and_unionid_once(sim):
    code = miniapp.wx_login(sim, "alice", APPID)
    body = code2session(sim, code)
    user = sim.state.user("alice")
    assert body["openid"] == sim.state.openid(user, APPID)
    assert body["unionid"] == sim.state.unionid(user, APPID)
    assert len(body["session_key"]) == 24
    assert code2session(sim, code) == {"errcode": 40163, "errmsg": "code been used"}


def test_unionid_only_for_apps_on_an_open_platform(sim):
    body = code2session(sim, miniapp.wx_login(sim, "alice", "wxmini_noplatform"), appid="wxmini_noplatform",
                        secret="other")
    assert "unionid" not in body and body["openid"]


def test_code2session_checks_every_parameter(sim):
    code = miniapp.wx_login(sim, "bob", APPID)
    assert code2session(sim, code, appid="wxnope")["errcode"] == 40013
    assert code2session(sim, code, secret="wrong")["errcode"] == 40125
    assert code2session(sim, code, grant_type="client_credential")["errcode"] == 40002
    assert code2session(sim, "")["errcode"] == 41008
    assert code2session(sim, "not-a-code")["errcode"] == 40029
    # A code belongs to one app; and the failures above did not use it up.
    assert code2session(sim, code, appid="wxmini_noplatform", secret="other")["errcode"] == 40029
    assert "openid" in code2session(sim, code)


def test_login_code_expires_after_five_minutes(sim):
    code = miniapp.wx_login(sim, "carol", APPID)
    miniapp.area(sim).login_codes[code].expires_at = time.time() - 1
    assert code2session(sim, code)["errcode"] == 40029


def test_rate_limit_fault_answers_45011(sim):
    sim.faults.add("errcode", host="api.weixin.qq.com", path="/sns/jscode2session", code=45011,
                   message="api minute-quota reach limit")
    code = miniapp.wx_login(sim, "dave", APPID)
    assert code2session(sim, code)["errcode"] == 45011
    assert "openid" in code2session(sim, code)  # the fault did not consume the code


def test_phone_number_needs_token_and_a_single_use_code(sim):
    url = f"{sim.base_url}/api.weixin.qq.com/wxa/business/getuserphonenumber"
    code = miniapp.phone_code(sim, sim.state.user("erin", phone="13800138000"), APPID)
    assert requests.post(url, json={"code": code}, timeout=5).json()["errcode"] == 41001
    access = token(sim)
    body = requests.post(url, params={"access_token": access}, json={"code": code}, timeout=5).json()
    assert body["errcode"] == 0
    assert body["phone_info"]["purePhoneNumber"] == "13800138000"
    assert body["phone_info"]["watermark"]["appid"] == APPID
    again = requests.post(url, params={"access_token": access}, json={"code": code}, timeout=5).json()
    assert again["errcode"] == 40163
    assert requests.post(url, params={"access_token": access}, json={"code": "x"}, timeout=5).json()["errcode"] == 40029


def test_subscribe_send_consumes_one_authorisation_per_accept(sim):
    url = f"{sim.base_url}/api.weixin.qq.com/cgi-bin/message/subscribe/send"
    user = sim.state.user("fay")
    openid = sim.state.openid(user, APPID)
    access = token(sim)
    message = {"touser": openid, "template_id": "TPL_ORDER", "data": {"thing1": {"value": "已发货"}}}
    assert requests.post(url, params={"access_token": access}, json=message, timeout=5).json()["errcode"] == 43101
    assert miniapp.subscribe_accept(sim, user, APPID, ["TPL_ORDER", "TPL_X"], reject=("TPL_X",)) == {
        "TPL_ORDER": "accept", "TPL_X": "reject"}
    sent = requests.post(url, params={"access_token": access}, json=message, timeout=5).json()
    assert sent["errcode"] == 0 and sent["msgid"]
    assert requests.post(url, params={"access_token": access}, json=message, timeout=5).json()["errcode"] == 43101
    assert [(send.touser, send.template_id) for send in miniapp.area(sim).sends] == [(openid, "TPL_ORDER")]
    bad = requests.post(url, params={"access_token": access}, json={**message, "touser": "nobody"}, timeout=5).json()
    assert bad["errcode"] == 40003


def test_control_endpoints_drive_a_consumer(sim):
    base = f"{sim.base_url}/_sim/miniapp"
    code = requests.post(f"{base}/login", json={"user": "gus", "appid": APPID}, timeout=5).json()["code"]
    assert "openid" in code2session(sim, code)
    assert requests.post(f"{base}/login", json={"user": "gus"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/subscribe", json={"user": "gus", "appid": APPID, "template_ids": ["T1"]},
                         timeout=5).json() == {"T1": "accept"}
    phone = requests.post(f"{base}/phone_code", json={"user": "gus", "appid": APPID}, timeout=5).json()["code"]
    assert phone in miniapp.area(sim).phone_codes
    assert requests.get(f"{base}/sends", timeout=5).json() == []
