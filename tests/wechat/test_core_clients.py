"""The wechatpy clients against the simulator: nothing escapes to real hosts, tokens cached and refreshed,
rate limits and quotas surfaced as ApiIssue rows, transient failures retried with back-off."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone

from siyu.wechat import clients as clients_module
from siyu.wechat.clients import (
    WeChatApiError,
    WeChatRateLimited,
    issue_resolve,
    miniapp_client,
    official_client,
    seconds_until_shanghai_midnight,
    wechat_call,
    work_client,
)
from siyu.wechat.models import AccessToken, ApiIssue
from siyu.wechat.tokens import token_invalidate, token_status
from siyu.wechat.transport import EscapedRequest, http_session, rewrite
from siyu.wechat_sim.miniapp import wx_login

pytestmark = pytest.mark.django_db
MP = "api.weixin.qq.com"


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.01, 0.02)
    settings.SIYU_WECHAT_TIMEOUT = 2


def issued(sim, app) -> int:
    with sim.lock:
        return sum(1 for token in sim.state.tokens.values() if token.appid == app.appid)


def menu_get(app):
    client = official_client(app)
    return wechat_call(app, "menu.get", client.menu.get)


# --- no request escapes -------------------------------------------------------------------------------

def test_no_request_escapes_to_real_hosts(wechat_sim, official_app, work_app, miniapp_app, monkeypatch):
    contacted: list[tuple[str, int]] = []
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection

    def spy_getaddrinfo(host, port, *args, **kwargs):
        contacted.append((host, int(port or 0)))
        return real_getaddrinfo(host, port, *args, **kwargs)

    def spy_create_connection(address, *args, **kwargs):
        contacted.append((address[0], int(address[1])))
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy_getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", spy_create_connection)

    client = official_client(official_app)
    wechat_call(official_app, "menu.create", client.menu.create,
                {"button": [{"type": "click", "name": "会员", "key": "member"}]})
    assert wechat_call(official_app, "menu.get", client.menu.get)["menu"]["button"][0]["key"] == "member"
    work = work_client(work_app)
    assert wechat_call(work_app, "user.simplelist", work.get, "user/simplelist", params={"department_id": 1})[
        "errcode"] == 0
    code = wx_login(wechat_sim, "u1", miniapp_app.appid)
    session = wechat_call(miniapp_app, "jscode2session", miniapp_client(miniapp_app).wxa.code_to_session, code)
    assert session["openid"] == wechat_sim.state.openid(wechat_sim.state.user("u1"), miniapp_app.appid)

    simulator = urlsplit(wechat_sim.base_url)
    assert contacted, "the spies saw no connection at all"
    assert {host for host, _ in contacted} == {simulator.hostname}
    assert {port for _, port in contacted} == {simulator.port}
    with wechat_sim.lock:
        hosts = {host for _, host, _ in wechat_sim.state.calls}
    assert hosts == {MP, "qyapi.weixin.qq.com"}


def test_transport_refuses_non_wechat_hosts(wechat_sim, monkeypatch):
    base = wechat_sim.base_url
    assert rewrite("https://api.weixin.qq.com/cgi-bin/token?a=1", base) == f"{base}/api.weixin.qq.com/cgi-bin/token?a=1"
    for url in ("https://example.com/steal", "https://api.weixin.qq.com.evil.cn/x", "http://169.254.169.254/"):
        with pytest.raises(EscapedRequest):
            rewrite(url, base)

    def no_dns(*args, **kwargs):
        raise AssertionError("a refused request must not even resolve its host")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(EscapedRequest):
        http_session().get("https://example.com/steal")


# --- token cache ------------------------------------------------------------------------------------

def test_token_fetched_once_and_stored_encrypted(wechat_sim, official_app):
    menu_get(official_app)
    menu_get(official_app)
    assert issued(wechat_sim, official_app) == 1
    row = AccessToken.objects.get(app=official_app, key="default")
    token = row.token()
    assert token and token.encode() not in bytes(row.token_enc)
    assert token_status(app=official_app)[0]["valid"] is True


def test_token_refreshed_when_wechat_expired_it(wechat_sim, official_app):
    menu_get(official_app)
    with wechat_sim.lock:
        wechat_sim.state.tokens_expire(official_app.appid)
    assert menu_get(official_app) is None  # no menu yet: answered, not an error
    assert issued(wechat_sim, official_app) == 2
    assert not ApiIssue.objects.exists()


def test_token_refreshed_five_minutes_before_expiry(wechat_sim, official_app):
    menu_get(official_app)
    AccessToken.objects.filter(app=official_app).update(expires_at=timezone.now() + timedelta(minutes=4))
    menu_get(official_app)
    assert issued(wechat_sim, official_app) == 2
    AccessToken.objects.filter(app=official_app).update(expires_at=timezone.now() + timedelta(minutes=6))
    menu_get(official_app)
    assert issued(wechat_sim, official_app) == 2


@pytest.mark.parametrize("code", [40001, 42001])
def test_token_error_refreshes_and_retries_once(wechat_sim, official_app, code):
    menu_get(official_app)
    wechat_sim.faults.add("errcode", host=MP, path="/cgi-bin/menu/get", code=code, message="invalid credential")
    assert menu_get(official_app) is None
    assert issued(wechat_sim, official_app) == 2
    # a token error that persists is not retried forever: one refresh, then the error
    wechat_sim.faults.add("errcode", host=MP, path="/cgi-bin/menu/get", times=-1, code=code, message="still bad")
    with pytest.raises(WeChatApiError) as error:
        menu_get(official_app)
    assert error.value.errcode == code
    assert issued(wechat_sim, official_app) == 3


def test_wecom_40014_refreshes_the_right_secret(wechat_sim, work_app):
    contact, app = work_client(work_app, secret="contact"), work_client(work_app, secret="app")
    wechat_call(work_app, "user.simplelist", contact.get, "user/simplelist", params={"department_id": 1})
    wechat_call(work_app, "user.simplelist", app.get, "user/simplelist", params={"department_id": 1})
    assert set(AccessToken.objects.filter(app=work_app).values_list("key", flat=True)) == {"contact", "app"}
    wechat_sim.faults.add("errcode", host="qyapi.weixin.qq.com", path="/cgi-bin/user/simplelist", code=40014)
    wechat_call(work_app, "user.simplelist", contact.get, "user/simplelist", params={"department_id": 1})
    assert issued(wechat_sim, work_app) == 3


def test_invalidate_keeps_a_token_someone_else_already_refreshed(wechat_sim, official_app):
    menu_get(official_app)
    current = AccessToken.objects.get(app=official_app).token()
    assert token_invalidate(app=official_app, key="default", failed_token="an-older-token") is False
    assert AccessToken.objects.get(app=official_app).token() == current
    assert token_invalidate(app=official_app, key="default", failed_token=current) is True
    assert AccessToken.objects.get(app=official_app).token() is None


def test_bad_secret_is_an_issue_not_a_crash(wechat_sim, official_app):
    with wechat_sim.lock:
        wechat_sim.state.apps[official_app.appid].secret = "rotated-elsewhere"
    with pytest.raises(WeChatApiError) as error:
        menu_get(official_app)
    assert error.value.errcode == 40125 and error.value.code == "wechat_api_error"
    assert ApiIssue.objects.get(app=official_app).errcode == 40125


# --- quotas and rate limits -------------------------------------------------------------------------

def test_daily_quota_waits_for_midnight_in_shanghai(wechat_sim, official_app):
    wechat_sim.faults.add("errcode", host=MP, path="/cgi-bin/menu/get", times=2, code=45009,
                          message="reach max api daily quota limit")
    for expected_count in (1, 2):
        with pytest.raises(WeChatRateLimited) as error:
            menu_get(official_app)
        assert error.value.code == "wechat_quota_daily" and error.value.status == 429
        assert 0 < error.value.retry_after <= 86400
        issue = ApiIssue.objects.get(app=official_app, api="menu.get", errcode=45009, resolved_at=None)
        assert issue.count == expected_count
    assert issue.workspace_id == official_app.workspace_id


def test_seconds_until_shanghai_midnight():
    shanghai = ZoneInfo("Asia/Shanghai")
    assert seconds_until_shanghai_midnight(datetime(2026, 3, 1, 23, 59, 0, tzinfo=shanghai)) == 60
    # 16:00 UTC is midnight in Shanghai
    assert seconds_until_shanghai_midnight(datetime(2026, 3, 1, 15, 0, tzinfo=ZoneInfo("UTC"))) == 3600


@pytest.mark.parametrize(("code", "kind", "retry_after"), [
    (45011, "wechat_rate_limited", 60.0),
    (45047, "wechat_customer_limit", None),
    (45015, "wechat_customer_limit", None),
])
def test_rate_limits(wechat_sim, official_app, code, kind, retry_after):
    fault = wechat_sim.faults.add("errcode", host=MP, path="/cgi-bin/menu/get", times=5, code=code, message="limit")
    with pytest.raises(WeChatRateLimited) as error:
        menu_get(official_app)
    assert (error.value.code, error.value.retry_after, error.value.errcode) == (kind, retry_after, code)
    assert ApiIssue.objects.filter(app=official_app, errcode=code).count() == 1
    assert fault.hits == 1  # not retried: WeChat saw exactly one call


def test_consumer_errors_are_not_operator_issues(wechat_sim, miniapp_app):
    with pytest.raises(WeChatApiError) as error:
        wechat_call(miniapp_app, "jscode2session", miniapp_client(miniapp_app).wxa.code_to_session, "bogus")
    assert error.value.errcode == 40029
    assert not ApiIssue.objects.exists()


def test_resolving_an_issue_opens_a_new_one_next_time(wechat_sim, official_app, admin_membership):
    wechat_sim.faults.add("errcode", host=MP, path="/cgi-bin/menu/get", times=2, code=45011)
    with pytest.raises(WeChatRateLimited):
        menu_get(official_app)
    first = ApiIssue.objects.get()
    issue_resolve(workspace=official_app.workspace, issue_id=first.pk, actor=admin_membership.user)
    with pytest.raises(WeChatRateLimited):
        menu_get(official_app)
    assert ApiIssue.objects.count() == 2
    assert ApiIssue.objects.filter(resolved_at=None).count() == 1


# --- back-off --------------------------------------------------------------------------------------

@pytest.fixture
def slept(monkeypatch):
    delays: list[float] = []
    monkeypatch.setattr(clients_module, "_sleep", delays.append)
    return delays


@pytest.mark.parametrize("kind", ["http_502", "http_500", "http_503"])
def test_server_errors_are_retried_with_backoff(wechat_sim, official_app, slept, kind):
    menu_get(official_app)
    wechat_sim.faults.add(kind, host=MP, path="/cgi-bin/menu/get", times=2)
    assert menu_get(official_app) is None
    assert slept == [0.01, 0.02]
    assert not ApiIssue.objects.exists()


def test_system_busy_is_retried(wechat_sim, official_app, slept):
    wechat_sim.faults.add("errcode", host=MP, path="/cgi-bin/menu/get", code=-1, message="system error")
    assert menu_get(official_app) is None
    assert slept == [0.01]


def test_timeouts_are_retried(wechat_sim, official_app, slept, settings):
    settings.SIYU_WECHAT_TIMEOUT = 0.2
    menu_get(official_app)
    wechat_sim.faults.add("timeout", host=MP, path="/cgi-bin/menu/get", seconds=0.6)
    assert menu_get(official_app) is None
    assert slept == [0.01]


def test_token_fetch_is_retried_too(wechat_sim, official_app, slept):
    wechat_sim.faults.add("http_503", host=MP, path="/cgi-bin/token")
    assert menu_get(official_app) is None
    assert slept == [0.01] and issued(wechat_sim, official_app) == 1


def test_persistent_outage_gives_up_and_is_an_issue(wechat_sim, official_app, slept):
    menu_get(official_app)
    wechat_sim.faults.add("http_503", host=MP, path="/cgi-bin/menu/get", times=-1)
    with pytest.raises(WeChatApiError) as error:
        menu_get(official_app)
    assert error.value.code == "wechat_unavailable" and error.value.status == 502
    assert slept == [0.01, 0.02]
    assert ApiIssue.objects.get().errcode == -1


def test_connection_refused_is_unavailable(wechat_sim, official_app, slept, settings):
    settings.SIYU_WECHAT_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(WeChatApiError) as error:
        menu_get(official_app)
    assert error.value.code == "wechat_unavailable"
    assert isinstance(error.value.__cause__, requests.ConnectionError)


def test_client_kind_is_checked(official_app, work_app):
    from siyu.core.errors import SiyuError

    with pytest.raises(SiyuError):
        work_client(official_app)
    with pytest.raises(SiyuError):
        official_client(work_app)


def test_post_timeouts_are_not_retried(wechat_sim, official_app, slept, settings):
    """WeChat may have done a POST that timed out (a message sent): no blind second attempt."""
    settings.SIYU_WECHAT_TIMEOUT = 0.2
    client = official_client(official_app)
    menu_get(official_app)
    fault = wechat_sim.faults.add("timeout", host=MP, path="/cgi-bin/menu/create", times=3, seconds=0.6)
    with pytest.raises(WeChatApiError) as error:
        wechat_call(official_app, "menu.create", client.menu.create, {"button": []})
    assert error.value.code == "wechat_unavailable"
    assert slept == [] and fault.hits == 1
    assert isinstance(error.value.__cause__, requests.ReadTimeout)


def test_code_to_session_needs_no_access_token(wechat_sim, miniapp_app):
    code = wx_login(wechat_sim, "u9", miniapp_app.appid)
    wechat_call(miniapp_app, "jscode2session", miniapp_client(miniapp_app).wxa.code_to_session, code)
    assert issued(wechat_sim, miniapp_app) == 0
    assert not AccessToken.objects.exists()


def test_a_new_secret_drops_the_cached_token(wechat_sim, official_app):
    from siyu.wechat.credentials import app_save

    menu_get(official_app)
    app_save(workspace=official_app.workspace, kind="official", appid=official_app.appid, name="renamed",
             secrets={})
    assert AccessToken.objects.filter(app=official_app).exists()  # nothing rotated: the token stays
    app = app_save(workspace=official_app.workspace, kind="official", appid=official_app.appid, name="renamed",
                   secrets={"app_secret": "f" * 32})
    assert not AccessToken.objects.filter(app=app).exists()
    with pytest.raises(WeChatApiError) as error:  # the simulator still knows the old secret
        menu_get(app)
    assert error.value.errcode == 40125
