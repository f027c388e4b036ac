"""公众号 H5 网页授权 end to end: Siyu → simulator's authorize page → Siyu callback → H5 session cookie.

Also: the state is bound to the browser and single-use, codes cannot be replayed, ``next`` never leads
off-site, and the same person through 公众号 OAuth and the mini-program ends as one customer.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client

from siyu.customers.models import Customer, CustomerStatus, Event, Identity
from siyu.wechat.consumer.models import ConsumerSession
from siyu.wechat.consumer.sessions import H5_COOKIE, consumer_session_for
from siyu.wechat_sim import miniapp as sim_miniapp
from siyu.wechat_sim.oauth import authorize_url_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.0,)
    settings.SIYU_PUBLIC_URL = "https://shop.example.com"


@pytest.fixture
def official(wechat_app_factory):
    return wechat_app_factory("official", extra={"open_platform": "brand"})


def start(client, app, **params):
    params.setdefault("next", "/shop/items/7?from=menu")
    return client.get(f"/wx/consumer/oauth/{app.appid}/start", params)


def through_wechat(sim, authorize_url, *, user="alice", **extra):
    """The consumer's WeChat browser follows Siyu's redirect to the (simulated) authorize page."""
    url = authorize_url_for(sim, user=user, url=authorize_url)
    response = requests.get(url, params=extra or None, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith("https://shop.example.com/wx/consumer/oauth/")
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def counts():
    return (Customer.objects.count(), Identity.objects.count(), Event.objects.count(),
            ConsumerSession.objects.count())


def test_userinfo_flow_opens_an_h5_session(client, wechat_sim, official):
    wechat_sim.state.user("alice", nickname="爱丽丝")
    response = start(client, official, scope="snsapi_userinfo")
    assert response.status_code == 302
    authorize = response["Location"]
    # Simulator mode: the browser is sent to the simulator, never to open.weixin.qq.com.
    assert authorize.startswith(f"{wechat_sim.base_url}/open.weixin.qq.com/connect/oauth2/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["scope"] == ["snsapi_userinfo"] and query["appid"] == [official.appid]
    assert query["redirect_uri"] == [f"https://shop.example.com/wx/consumer/oauth/{official.appid}/callback"]

    landing = client.get(through_wechat(wechat_sim, authorize))
    assert landing.status_code == 302 and landing["Location"] == "/shop/items/7?from=menu"
    cookie = landing.cookies[H5_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["secure"]  # SIYU_PUBLIC_URL is https

    user = wechat_sim.state.user("alice")
    customer = Customer.objects.get()
    assert set(customer.identities.values_list("kind", "value")) == {
        ("openid", wechat_sim.state.openid(user, official.appid)), ("unionid", wechat_sim.state.unionid(user, official.appid)),
        ("device", client.cookies["siyu_did"].value)}  # the browser's device id, set by the start redirect
    assert customer.name == "爱丽丝"
    event = Event.objects.get()
    assert event.type == "wechat_oauth" and event.properties["scope"] == "snsapi_userinfo"
    me = client.get("/wx/consumer/session").json()
    assert me["kind"] == "h5" and me["customer"]["id"] == customer.pk


def test_base_scope_identifies_by_openid_only(client, wechat_sim, official):
    landing = client.get(through_wechat(wechat_sim, start(client, official)["Location"], user="bob"))
    assert landing.status_code == 302
    assert sorted(Identity.objects.values_list("kind", flat=True)) == ["device", "openid"]
    assert ConsumerSession.objects.get().scope == "snsapi_base"


def test_consumer_session_for_reads_the_signed_cookie(rf, client, wechat_sim, official):
    landing = client.get(through_wechat(wechat_sim, start(client, official)["Location"]))
    token = landing.cookies[H5_COOKIE].value
    request = rf.get("/shop/")
    request.COOKIES[H5_COOKIE] = token
    session = consumer_session_for(request)
    assert session is not None and session.kind == "h5" and session.workspace == official.workspace
    forged = rf.get("/shop/")
    forged.COOKIES[H5_COOKIE] = token.split(":")[0] + ":forgedsignature"
    assert consumer_session_for(forged) is None
    bearer = rf.get("/shop/", HTTP_AUTHORIZATION=f"Bearer {token}")  # a cookie value is not a Bearer token
    assert consumer_session_for(bearer) is None


def test_state_from_another_browser_is_refused(client, wechat_sim, official):
    callback = through_wechat(wechat_sim, start(client, official)["Location"])
    attacker = Client()  # the victim's callback URL replayed in another browser (login CSRF)
    response = attacker.get(callback)
    assert response.status_code == 400 and b"oauth_state_invalid" in response.content
    assert H5_COOKIE not in response.cookies
    assert counts() == (0, 0, 0, 0)


@pytest.mark.parametrize("query", ["", "?code=abc", "?code=abc&state=", "?code=abc&state=made-up"])
def test_missing_or_unknown_state_is_refused(client, wechat_sim, official, query):
    start(client, official)
    response = client.get(f"/wx/consumer/oauth/{official.appid}/callback{query}")
    assert response.status_code == 400 and "授权请求已失效".encode() in response.content
    assert counts() == (0, 0, 0, 0)


def test_replayed_callback_and_replayed_code_are_refused(client, wechat_sim, official):
    callback = through_wechat(wechat_sim, start(client, official)["Location"])
    assert client.get(callback).status_code == 302
    before = counts()
    assert client.get(callback).status_code == 400  # the state was consumed
    # A fresh state in the same browser with the old code: WeChat refuses the used code.
    fresh = parse_qs(urlsplit(through_wechat(wechat_sim, start(client, official)["Location"])).query)["state"][0]
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    response = client.get(f"/wx/consumer/oauth/{official.appid}/callback?code={old_code}&state={fresh}")
    assert response.status_code == 400 and b"wx_code_used" in response.content
    assert counts() == before


def test_forged_code_is_refused(client, wechat_sim, official):
    callback = through_wechat(wechat_sim, start(client, official)["Location"])
    state = parse_qs(urlsplit(callback).query)["state"][0]
    response = client.get(f"/wx/consumer/oauth/{official.appid}/callback?code=forged&state={state}")
    assert response.status_code == 400 and b"wx_code_invalid" in response.content
    assert counts() == (0, 0, 0, 0)


def test_declined_consent(client, wechat_sim, official):
    callback = through_wechat(wechat_sim, start(client, official, scope="snsapi_userinfo")["Location"],
                              sim_consent="deny")
    response = client.get(callback)
    assert response.status_code == 403 and b"oauth_declined" in response.content
    assert counts() == (0, 0, 0, 0)


@pytest.mark.parametrize("next_path", [
    "https://evil.example.net/", "//evil.example.net/x", "/\\evil.example.net", "javascript:alert(1)",
    "http:/evil.example.net", "shop/items", "/shop\nLocation: https://evil.example.net", "\\\\evil.example.net",
])
def test_open_redirects_are_refused(client, wechat_sim, official, next_path):
    response = start(client, official, next=next_path)
    assert response.status_code == 400 and b"oauth_next_invalid" in response.content
    assert "siyu_wx_oauth" not in client.session


@pytest.mark.parametrize(("appid", "scope", "status", "code"), [
    (None, "snsapi_login", 400, b"oauth_scope_invalid"),
    ("wxunknownofficial01", "snsapi_base", 404, b"wechat_app_unknown"),
])
def test_bad_start_requests(client, wechat_sim, official, appid, scope, status, code):
    response = client.get(f"/wx/consumer/oauth/{appid or official.appid}/start", {"scope": scope})
    assert response.status_code == status and code in response.content


def test_state_is_bound_to_its_app(client, wechat_sim, official, wechat_app_factory):
    other = wechat_app_factory("official")
    callback = through_wechat(wechat_sim, start(client, official)["Location"])
    response = client.get(callback.replace(official.appid, other.appid))
    assert response.status_code == 400 and counts() == (0, 0, 0, 0)


def test_one_person_through_oauth_and_mini_program_is_one_customer(client, wechat_sim, official,
                                                                   wechat_app_factory):
    mini = wechat_app_factory("miniapp", extra={"open_platform": "brand"})
    client.get(through_wechat(wechat_sim, start(client, official, scope="snsapi_userinfo")["Location"],
                              user="zoe"))
    h5_customer = Customer.objects.get()
    code = sim_miniapp.wx_login(wechat_sim, "zoe", mini.appid)
    body = Client().post(f"/wx/consumer/miniapp/{mini.appid}/login", {"code": code},
                         content_type="application/json").json()
    assert body["customer"] == {"id": h5_customer.pk, "is_new": False}
    assert Customer.objects.filter(status=CustomerStatus.ACTIVE).count() == 1
    assert sorted(h5_customer.identities.values_list("kind", "namespace")) == [
        ("device", "h5"), ("openid", mini.appid), ("openid", official.appid), ("unionid", "")]


def test_mini_program_first_then_base_oauth_links_when_unionid_arrives(client, wechat_sim, official,
                                                                       wechat_app_factory):
    """snsapi_base carries no unionid: a separate profile until snsapi_userinfo links them (merge)."""
    mini = wechat_app_factory("miniapp", extra={"open_platform": "brand"})
    Client().post(f"/wx/consumer/miniapp/{mini.appid}/login", {"code": sim_miniapp.wx_login(wechat_sim, "yan",
                                                                                            mini.appid)},
                  content_type="application/json")
    client.get(through_wechat(wechat_sim, start(client, official)["Location"], user="yan"))
    assert Customer.objects.filter(status=CustomerStatus.ACTIVE).count() == 2
    client.get(through_wechat(wechat_sim, start(client, official, scope="snsapi_userinfo")["Location"], user="yan"))
    assert Customer.objects.filter(status=CustomerStatus.ACTIVE).count() == 1
    # Both H5 sessions now name the surviving customer.
    survivor = Customer.objects.get(status=CustomerStatus.ACTIVE)
    assert client.get("/wx/consumer/session").json()["customer"]["id"] == survivor.pk
