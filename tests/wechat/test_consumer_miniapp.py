"""小程序 login, sessions, phone binding and subscribe messages, through the real wechatpy client and the simulator."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from siyu.core.crypto import decrypt_text
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Customer, CustomerStatus, Event, Identity
from siyu.wechat.consumer.miniapp import subscribe_message_send
from siyu.wechat.consumer.models import ConsumerSession, SendStatus, SubscribeAuthorisation, SubscribeSend
from siyu.wechat.consumer.sessions import consumer_session_for, consumer_sessions_revoke
from siyu.wechat_sim import miniapp as sim_miniapp

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.0,)


@pytest.fixture
def mini(wechat_app_factory):
    return wechat_app_factory("miniapp", extra={"open_platform": "brand"})


def login(client, sim, app, user="alice", code=None):
    code = code or sim_miniapp.wx_login(sim, user, app.appid)
    return client.post(f"/wx/consumer/miniapp/{app.appid}/login", {"code": code}, content_type="application/json")


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def counts():
    return (Customer.objects.count(), Identity.objects.count(), Event.objects.count(),
            ConsumerSession.objects.count())


def test_login_creates_customer_identities_event_and_session(client, wechat_sim, mini):
    response = login(client, wechat_sim, mini)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"].startswith("wxs_") and body["customer"]["is_new"] is True
    user = wechat_sim.state.user("alice")
    customer = Customer.objects.get(pk=body["customer"]["id"])
    keys = set(customer.identities.values_list("kind", "namespace", "value"))
    assert keys == {("openid", mini.appid, wechat_sim.state.openid(user, mini.appid)),
                    ("unionid", "", wechat_sim.state.unionid(user, mini.appid))}
    assert Event.objects.filter(type="mini_program_login").count() == 1
    session = ConsumerSession.objects.get()
    assert session.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in str(vars(session))  # only the hash is stored
    assert session.kind == "miniapp" and session.customer_id == customer.pk

    again = login(client, wechat_sim, mini).json()
    assert again["customer"] == {"id": customer.pk, "is_new": False}
    assert again["token"] != body["token"]
    assert Customer.objects.count() == 1 and Event.objects.filter(type="mini_program_login").count() == 2


def test_session_key_never_leaves_siyu(client, wechat_sim, mini, caplog):
    caplog.set_level(logging.DEBUG)
    responses = [login(client, wechat_sim, mini, user="bob")]
    session_key = wechat_sim.state.area("miniapp", dict).session_keys[(mini.appid, "bob")]
    token = responses[0].json()["token"]
    responses.append(client.get("/wx/consumer/session", **bearer(token)))
    responses.append(client.post("/wx/consumer/miniapp/phone", {"code": sim_miniapp.phone_code(wechat_sim, "bob",
                                                                                                  mini.appid)},
                                 content_type="application/json", **bearer(token)))
    responses.append(client.post("/wx/consumer/miniapp/subscribe", {"results": {"TPL1": "accept"}},
                                 content_type="application/json", **bearer(token)))
    responses.append(login(client, wechat_sim, mini, code="used-or-forged"))
    assert [response.status_code for response in responses] == [200, 200, 200, 200, 400]
    for response in responses:
        assert session_key.encode() not in response.content
        assert all(session_key not in value for value in response.headers.values())
    assert session_key not in caplog.text
    stored = ConsumerSession.objects.get(pk=ConsumerSession.objects.order_by("pk").first().pk)
    assert session_key.encode() not in bytes(stored.session_key_enc)
    assert decrypt_text(stored.session_key_enc) == session_key  # kept, encrypted, for data decryption


@pytest.mark.parametrize(("fault", "status", "code"), [
    (None, 400, "wx_code_invalid"),
    ({"code": 45011, "message": "api minute-quota reach limit"}, 429, "wechat_rate_limited"),
])
def test_refused_logins_create_nothing(client, wechat_sim, mini, fault, status, code):
    if fault:
        wechat_sim.faults.add("errcode", host="api.weixin.qq.com", path="/sns/jscode2session", **fault)
        response = login(client, wechat_sim, mini)
    else:
        response = login(client, wechat_sim, mini, code="forged-code")
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["message"] and response.json()["message_en"]
    assert counts() == (0, 0, 0, 0)


def test_used_code_is_refused_and_creates_nothing_more(client, wechat_sim, mini):
    code = sim_miniapp.wx_login(wechat_sim, "carol", mini.appid)
    assert login(client, wechat_sim, mini, code=code).status_code == 200
    before = counts()
    response = login(client, wechat_sim, mini, code=code)
    assert response.status_code == 409 and response.json()["code"] == "wx_code_used"
    assert counts() == before


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/wx/consumer/miniapp/wxunknown000000000/login", {"code": "x"}, 404, "wechat_app_unknown"),
    (None, {}, 400, "wx_code_missing"),
    (None, {"code": 12}, 400, "wx_code_missing"),
    (None, ["code"], 400, "invalid_json"),
])
def test_malformed_login_requests(client, wechat_sim, mini, path, body, status, code):
    response = client.post(path or f"/wx/consumer/miniapp/{mini.appid}/login", body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert counts() == (0, 0, 0, 0)


def test_bearer_sessions_expire_and_can_be_revoked(client, wechat_sim, mini):
    token = login(client, wechat_sim, mini).json()["token"]
    assert client.get("/wx/consumer/session", **bearer(token)).json()["kind"] == "miniapp"
    for header in ({}, bearer("wxs_forged"), bearer("not-a-token"), {"HTTP_AUTHORIZATION": token}):
        response = client.get("/wx/consumer/session", **header)
        assert response.status_code == 401 and response.json()["code"] == "consumer_unauthenticated"
    session = ConsumerSession.objects.get()
    ConsumerSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/wx/consumer/session", **bearer(token)).status_code == 401
    ConsumerSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert client.get("/wx/consumer/session", **bearer(token)).status_code == 200
    assert consumer_sessions_revoke(workspace=mini.workspace, customer=session.customer) == 1
    assert client.get("/wx/consumer/session", **bearer(token)).status_code == 401


def test_disabling_the_app_ends_its_sessions(client, wechat_sim, mini):
    token = login(client, wechat_sim, mini).json()["token"]
    type(mini).objects.filter(pk=mini.pk).update(is_active=False)
    assert client.get("/wx/consumer/session", **bearer(token)).status_code == 401


def test_logout_ends_only_that_session(client, wechat_sim, mini):
    first = login(client, wechat_sim, mini).json()["token"]
    second = login(client, wechat_sim, mini).json()["token"]
    assert client.post("/wx/consumer/logout", content_type="application/json", **bearer(first)).status_code == 200
    assert client.get("/wx/consumer/session", **bearer(first)).status_code == 401
    assert client.get("/wx/consumer/session", **bearer(second)).status_code == 200


def test_phone_binding_merges_with_the_customer_who_has_that_phone(client, wechat_sim, mini, workspace):
    phone = "13800138000"
    wechat_sim.state.user("dora", phone=phone)
    # Dora once left her number on a lead form: a customer known only by that phone.
    events_ingest(workspace=workspace, events=[{
        "event_id": "lead-1", "type": "lead_submit", "occurred_at": (timezone.now() - timedelta(days=3)).isoformat(),
        "identities": [{"kind": "phone", "value": phone}, {"kind": "lead", "namespace": "xiaohongshu",
                                                           "value": "L1"}]}])
    lead_customer = Customer.objects.get()
    body = login(client, wechat_sim, mini, user="dora").json()
    assert body["customer"]["is_new"] is True and body["customer"]["id"] != lead_customer.pk
    token = body["token"]

    code = sim_miniapp.phone_code(wechat_sim, "dora", mini.appid)
    response = client.post("/wx/consumer/miniapp/phone", {"code": code}, content_type="application/json",
                           **bearer(token))
    assert response.status_code == 200, response.content
    assert response.json()["phone"] == "138****8000"
    assert phone.encode() not in response.content
    live = Customer.objects.filter(status=CustomerStatus.ACTIVE)
    assert live.count() == 1
    survivor = live.get()
    assert survivor.pk == lead_customer.pk  # the older profile wins the merge
    assert set(survivor.identities.values_list("kind", flat=True)) == {"openid", "unionid", "phone", "lead"}
    assert Event.objects.filter(type="phone_bound").count() == 1
    assert survivor.phone == phone
    # The session follows the merge.
    assert client.get("/wx/consumer/session", **bearer(token)).json()["customer"]["id"] == survivor.pk

    again = client.post("/wx/consumer/miniapp/phone", {"code": code}, content_type="application/json",
                        **bearer(token))
    assert again.status_code == 409 and again.json()["code"] == "wx_code_used"
    assert client.post("/wx/consumer/miniapp/phone", {"code": "x"}, content_type="application/json").status_code == 401


def test_consumer_session_for_follows_merges(rf, client, wechat_sim, mini):
    token = login(client, wechat_sim, mini, user="erin").json()["token"]
    request = rf.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    session = consumer_session_for(request)
    assert session.workspace == mini.workspace and session.identity.namespace == mini.appid
    assert session.customer.pk == Customer.objects.get().pk


def subscribe(client, token, results):
    return client.post("/wx/consumer/miniapp/subscribe", {"results": results}, content_type="application/json",
                       **bearer(token))


def test_subscribe_message_quota(client, wechat_sim, mini):
    token = login(client, wechat_sim, mini, user="fay").json()["token"]
    session = ConsumerSession.objects.get()
    # The user allows TPL_SHIP twice (two taps) and rejects TPL_AD; WeChat counts the same.
    for _ in range(2):
        sim_miniapp.subscribe_accept(wechat_sim, "fay", mini.appid, ["TPL_SHIP", "TPL_AD"], reject=("TPL_AD",))
        response = subscribe(client, token, {"TPL_SHIP": "accept", "TPL_AD": "reject"})
    assert response.json() == {"remaining": {"TPL_AD": 0, "TPL_SHIP": 2}}

    data = {"thing1": {"value": "您的订单已发货"}}
    first = subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP", data=data)
    second = subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP", data=data,
                                    page="pages/order/detail")
    assert (first.remaining, second.remaining) == (1, 0) and first.msgid != second.msgid
    with pytest.raises(Exception) as refused:
        subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP", data=data)
    assert refused.value.code == "subscribe_not_authorised" and refused.value.status == 409
    with pytest.raises(Exception) as rejected:
        subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_AD", data=data)
    assert rejected.value.code == "subscribe_not_authorised"
    assert len(sim_miniapp.area(wechat_sim).sends) == 2  # the refusals never reached WeChat
    assert list(SubscribeSend.objects.values_list("status", flat=True)) == [SendStatus.SENT, SendStatus.SENT]
    row = SubscribeAuthorisation.objects.get(template_id="TPL_SHIP")
    assert (row.remaining, row.accepted_total, row.sent_total) == (0, 2, 2)


def test_wechat_43101_zeroes_the_count(client, wechat_sim, mini):
    token = login(client, wechat_sim, mini, user="gil").json()["token"]
    session = ConsumerSession.objects.get()
    subscribe(client, token, {"TPL_SHIP": "accept"})  # the client says yes, WeChat never recorded it
    with pytest.raises(Exception) as refused:
        subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP",
                               data={"thing1": {"value": "x"}})
    assert refused.value.code == "subscribe_refused_by_wechat" and refused.value.details["errcode"] == 43101
    assert SubscribeAuthorisation.objects.get().remaining == 0
    assert SubscribeSend.objects.get().status == SendStatus.REFUSED


def test_failed_send_gives_the_authorisation_back(client, wechat_sim, mini):
    token = login(client, wechat_sim, mini, user="hal").json()["token"]
    session = ConsumerSession.objects.get()
    sim_miniapp.subscribe_accept(wechat_sim, "hal", mini.appid, ["TPL_SHIP"])
    subscribe(client, token, {"TPL_SHIP": "accept"})
    wechat_sim.faults.add("errcode", host="api.weixin.qq.com", path="/cgi-bin/message/subscribe/send", code=45009)
    with pytest.raises(Exception) as limited:
        subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP",
                               data={"thing1": {"value": "x"}})
    assert limited.value.status == 429
    assert SubscribeAuthorisation.objects.get().remaining == 1
    assert subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP",
                                  data={"thing1": {"value": "x"}}).remaining == 0


@pytest.mark.parametrize("results", [None, {}, {"a": "accept", "b": "accept", "c": "accept", "d": "accept"},
                                     {"": "accept"}, {"T": 1}, {"T": "maybe"}, {"T<script>": "accept"},
                                     {"errMsg": "requestSubscribeMessage:ok"}])
def test_subscribe_results_are_validated(client, wechat_sim, mini, results):
    token = login(client, wechat_sim, mini).json()["token"]
    response = subscribe(client, token, results)
    assert response.status_code == 400 and response.json()["code"] == "subscribe_results_invalid"
    assert not SubscribeAuthorisation.objects.exists()


def test_subscribe_results_accept_the_callback_object_as_is(client, wechat_sim, mini):
    token = login(client, wechat_sim, mini).json()["token"]
    response = subscribe(client, token, {"errMsg": "requestSubscribeMessage:ok", "TPL_A": "accept", "TPL_B": "ban"})
    assert response.json() == {"remaining": {"TPL_A": 1, "TPL_B": 0}}


def test_phone_binding_needs_a_mini_program_session(client, wechat_sim, mini):
    login(client, wechat_sim, mini)
    session = ConsumerSession.objects.get()
    ConsumerSession.objects.filter(pk=session.pk).update(kind="h5")
    session.refresh_from_db()
    from siyu.wechat.consumer.miniapp import miniapp_phone_bind

    with pytest.raises(Exception) as refused:
        miniapp_phone_bind(session=session, code="x")
    assert refused.value.code == "consumer_wrong_session"


def test_unauthenticated_client_cannot_record_subscriptions(wechat_sim, mini):
    response = Client().post("/wx/consumer/miniapp/subscribe", {"results": {"T": "accept"}},
                             content_type="application/json")
    assert response.status_code == 401 and not SubscribeAuthorisation.objects.exists()


def test_simulated_mini_program_drives_siyu(wechat_sim, mini):
    """The simulator's whole-phone helpers (used by the demo) reach Siyu's real endpoints."""
    status, answer = sim_miniapp.miniapp_open(wechat_sim, "ivy", mini.appid)
    assert status == 200 and answer["token"].startswith("wxs_")
    status, bound = sim_miniapp.miniapp_bind_phone(wechat_sim, "ivy", mini.appid, answer["token"])
    assert status == 200 and "****" in bound["phone"]
    status, subscribed = sim_miniapp.miniapp_subscribe(wechat_sim, "ivy", mini.appid, answer["token"], ["TPL_SHIP"])
    assert (status, subscribed) == (200, {"remaining": {"TPL_SHIP": 1}})
    session = ConsumerSession.objects.get()
    assert subscribe_message_send(app=mini, identity=session.identity, template_id="TPL_SHIP",
                                  data={"thing1": {"value": "x"}}).remaining == 0
    assert sim_miniapp.area(wechat_sim).sends[0].touser == session.identity.value


def test_wrong_app_secret_is_an_operator_issue_not_a_consumer_error(client, wechat_sim, mini):
    from siyu.wechat.models import ApiIssue

    wechat_sim.state.apps[mini.appid].secret = "rotated-on-the-wechat-side"
    response = login(client, wechat_sim, mini)
    assert response.status_code == 502 and response.json()["code"] == "wechat_api_error"
    assert counts() == (0, 0, 0, 0)
    assert ApiIssue.objects.filter(app=mini).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_logins_make_one_customer_and_one_new(wechat_sim, wechat_app_factory):
    """Four taps at once on a first launch: one customer, four sessions, exactly one "is_new"."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from siyu.wechat.consumer.miniapp import miniapp_login

    app = wechat_app_factory("miniapp", extra={"open_platform": "brand"})
    codes = [sim_miniapp.wx_login(wechat_sim, "rush", app.appid) for _ in range(4)]

    def one(code):
        try:
            return miniapp_login(app=app, code=code)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, codes))
    assert len({result.customer_id for result in results}) == 1
    assert sum(result.is_new for result in results) == 1
    assert Customer.objects.count() == 1 and ConsumerSession.objects.count() == 4
    assert Identity.objects.count() == 2
