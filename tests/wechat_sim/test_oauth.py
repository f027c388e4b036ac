"""The simulated 网页授权: authorize redirects, sns/oauth2 tokens, userinfo, refresh and auth, with WeChat's errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from siyu.wechat_sim import oauth
from siyu.wechat_sim.server import Simulator
from siyu.wechat_sim.state import SimApp

APPID, SECRET = "wxofficial000001", "s3cret-mp"
REDIRECT = "https://shop.example.com/wx/consumer/oauth/cb?x=1"


@pytest.fixture
def sim():
    simulator = Simulator(seed=5)
    simulator.start()
    simulator.state.app_register(SimApp("official", APPID, SECRET, extra={"open_platform": "brand",
                                                                           "oauth_domain": "shop.example.com"}))
    yield simulator
    simulator.stop()


def authorize(sim, *, scope="snsapi_base", user="alice", session=None, **extra):
    params = {"appid": APPID, "redirect_uri": REDIRECT, "response_type": "code", "scope": scope, "state": "st1",
              **extra}
    if user:
        params["sim_user"] = user
    return (session or requests).get(f"{sim.base_url}/open.weixin.qq.com/connect/oauth2/authorize", params=params,
                                     allow_redirects=False, timeout=5)


def code_from(response):
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith("https://shop.example.com/wx/consumer/oauth/cb?x=1&")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st1"]
    return query.get("code", [None])[0]


def exchange(sim, code, **params):
    return requests.get(f"{sim.base_url}/api.weixin.qq.com/sns/oauth2/access_token", timeout=5, params={
        "appid": APPID, "secret": SECRET, "code": code, "grant_type": "authorization_code", **params}).json()


def api(sim, path, **params):
    return requests.get(f"{sim.base_url}/api.weixin.qq.com/sns/{path}", params=params, timeout=5).json()


def test_base_scope_gives_openid_without_unionid_or_userinfo(sim):
    body = exchange(sim, code_from(authorize(sim)))
    user = sim.state.user("alice")
    assert body["openid"] == sim.state.openid(user, APPID) and body["scope"] == "snsapi_base"
    assert "unionid" not in body
    assert api(sim, "userinfo", access_token=body["access_token"], openid=body["openid"])["errcode"] == 48001
    assert api(sim, "auth", access_token=body["access_token"], openid=body["openid"]) == {"errcode": 0, "errmsg": "ok"}


def test_userinfo_scope_gives_unionid_and_profile(sim):
    sim.state.user("bob", nickname="小波")
    body = exchange(sim, code_from(authorize(sim, scope="snsapi_userinfo", user="bob")))
    assert body["unionid"] == sim.state.unionid(sim.state.user("bob"), APPID)
    info = api(sim, "userinfo", access_token=body["access_token"], openid=body["openid"], lang="zh_CN")
    assert info["nickname"] == "小波" and info["unionid"] == body["unionid"]
    assert api(sim, "userinfo", access_token=body["access_token"], openid="someone-else")["errcode"] == 40003
    assert api(sim, "userinfo", access_token="nope", openid=body["openid"])["errcode"] == 40001


def test_codes_are_single_use_and_bound_to_the_app(sim):
    code = code_from(authorize(sim))
    assert exchange(sim, code, secret="wrong")["errcode"] == 40125
    assert exchange(sim, code, appid="wxother")["errcode"] == 40013
    assert exchange(sim, code, grant_type="refresh_token")["errcode"] == 40002
    assert exchange(sim, "")["errcode"] == 41008
    assert exchange(sim, "forged")["errcode"] == 40029
    assert "openid" in exchange(sim, code)
    assert exchange(sim, code) == {"errcode": 40163, "errmsg": "code been used"}


def test_refresh_token(sim):
    body = exchange(sim, code_from(authorize(sim, scope="snsapi_userinfo")))
    fresh = api(sim, "oauth2/refresh_token", appid=APPID, grant_type="refresh_token",
                refresh_token=body["refresh_token"])
    assert fresh["access_token"] != body["access_token"] and fresh["openid"] == body["openid"]
    assert api(sim, "oauth2/refresh_token", appid=APPID, grant_type="refresh_token",
               refresh_token="nope")["errcode"] == 40030


def test_authorize_refuses_bad_requests_with_an_error_page(sim):
    assert "10005" in authorize(sim, scope="snsapi_login").text
    assert "10010" in authorize(sim, scope="").text
    assert "10009" in authorize(sim, user="").text
    response = requests.get(f"{sim.base_url}/open.weixin.qq.com/connect/oauth2/authorize", allow_redirects=False,
                            timeout=5, params={"appid": APPID, "redirect_uri": "https://evil.example.net/cb",
                                               "response_type": "code", "scope": "snsapi_base", "sim_user": "a"})
    assert response.status_code == 400 and "10003" in response.text
    response = requests.get(f"{sim.base_url}/open.weixin.qq.com/connect/oauth2/authorize", allow_redirects=False,
                            timeout=5, params={"appid": "wxunknown", "redirect_uri": REDIRECT,
                                               "response_type": "code", "scope": "snsapi_base", "sim_user": "a"})
    assert "10016" in response.text


def test_browser_remembers_the_user_in_a_cookie(sim):
    browser = requests.Session()
    first = code_from(authorize(sim, user="carol", session=browser))
    second = code_from(authorize(sim, user="", session=browser))
    assert exchange(sim, first)["openid"] == exchange(sim, second)["openid"]


def test_refused_consent_redirects_with_state_and_no_code(sim):
    assert code_from(authorize(sim, scope="snsapi_userinfo", sim_consent="deny")) is None


def test_authorize_url_helper(sim):
    url = "http://x/open.weixin.qq.com/connect/oauth2/authorize?appid=a"
    assert oauth.authorize_url_for(sim, user="dan", url=url) == url + "&sim_user=dan"
    assert oauth.authorize_url_for(sim, user="dan", url=url + "#wechat_redirect") == url + "&sim_user=dan#wechat_redirect"
