"""The console page 小程序与网页授权: chart data, counts, masked recent logins, revoking sessions by role."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from siyu.core.models import AuditLog
from siyu.core.services import membership_grant
from siyu.wechat.consumer.models import ConsumerSession
from siyu.wechat.consumer.selectors import logins_daily
from siyu.wechat_sim import miniapp as sim_miniapp

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.0,)


@pytest.fixture
def mini(wechat_app_factory):
    return wechat_app_factory("miniapp")


def staff(workspace, role):
    membership_grant(workspace=workspace, username=role, password="pass-12345", role=role)
    client = Client()
    assert client.login(username=role, password="pass-12345")
    return client


def login(sim, app, user, phone=None):
    if phone:
        sim.state.user(user, phone=phone)
    code = sim_miniapp.wx_login(sim, user, app.appid)
    response = Client().post(f"/wx/consumer/miniapp/{app.appid}/login", {"code": code},
                             content_type="application/json")
    return response.json()


def test_page_shows_logins_sessions_and_masked_recent_logins(wechat_sim, mini, workspace):
    alice = login(wechat_sim, mini, "alice", phone="13912345678")
    token = alice["token"]
    Client().post("/wx/consumer/miniapp/phone", {"code": sim_miniapp.phone_code(wechat_sim, "alice", mini.appid)},
                  content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    Client().post("/wx/consumer/miniapp/subscribe", {"results": {"TPL_SHIP": "accept", "TPL_AD": "reject"}},
                  content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    login(wechat_sim, mini, "bob")
    ConsumerSession.objects.filter(customer_id=alice["customer"]["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1))

    response = staff(workspace, "admin").get("/wechat/consumer/")
    assert response.status_code == 200
    html = response.content.decode()
    charts = json.loads(html.split('id="chart-data" type="application/json">')[1].split("</script>")[0])
    series = {item["name"]: item["y"] for item in charts["logins_daily"]["series"]}
    assert sum(series["小程序"]) == 2 and sum(series["H5 网页授权"]) == 0
    assert 'data-kpi="sessions_active">1<' in html  # alice's expired, bob's live
    assert "TPL_SHIP" in html and "TPL_AD" in html
    assert "139****5678" in html and "13912345678" not in html
    openid = wechat_sim.state.openid(wechat_sim.state.user("alice"), mini.appid)
    assert openid not in html and openid[:4] + "****" + openid[-4:] in html


def test_logins_are_counted_on_the_beijing_day(wechat_sim, mini, workspace):
    login(wechat_sim, mini, "carol")
    # 23:30 UTC is 07:30 the next morning in Beijing.
    session = ConsumerSession.objects.get()
    late = timezone.now().replace(hour=23, minute=30, second=0, microsecond=0) - timedelta(days=2)
    ConsumerSession.objects.filter(pk=session.pk).update(created_at=late)
    from siyu.core.timeutil import local_day

    daily = logins_daily(workspace=workspace, days=5)
    day = local_day(late).isoformat()
    assert daily["series"]["miniapp"][daily["days"].index(day)] == 1 and daily["total"] == 1


def test_staff_revokes_a_customers_sessions(wechat_sim, mini, workspace):
    body = login(wechat_sim, mini, "dan")
    login(wechat_sim, mini, "dan")
    other = login(wechat_sim, mini, "eve")
    admin = staff(workspace, "admin")
    response = admin.post("/wechat/consumer/revoke/", {"customer_id": body["customer"]["id"]})
    assert response.status_code == 302
    live = ConsumerSession.objects.filter(revoked_at=None)
    assert list(live.values_list("customer_id", flat=True)) == [other["customer"]["id"]]
    assert Client().get("/wx/consumer/session", HTTP_AUTHORIZATION=f"Bearer {body['token']}").status_code == 401
    assert AuditLog.objects.filter(action="consumer_sessions_revoke", detail__revoked=2).exists()


def test_analyst_cannot_revoke_and_nothing_changes(wechat_sim, mini, workspace):
    body = login(wechat_sim, mini, "fred")
    analyst = staff(workspace, "analyst")
    assert analyst.get("/wechat/consumer/").status_code == 200
    response = analyst.post("/wechat/consumer/revoke/", {"customer_id": body["customer"]["id"]})
    assert response.status_code == 403
    assert ConsumerSession.objects.filter(revoked_at=None).count() == 1


def test_revoking_another_workspaces_customer_is_not_found(wechat_sim, mini, workspace, other_workspace):
    body = login(wechat_sim, mini, "gina")
    outsider = staff(other_workspace, "admin")
    assert outsider.post("/wechat/consumer/revoke/", {"customer_id": body["customer"]["id"]}).status_code == 404
    assert outsider.post("/wechat/consumer/revoke/", {"customer_id": "x"}).status_code == 404
    assert ConsumerSession.objects.filter(revoked_at=None).count() == 1
