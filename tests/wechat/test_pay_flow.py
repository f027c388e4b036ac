"""微信支付 v3 end to end through the real wechatpayv3 client and the simulator: prepay, paySign, pay,
notification, query, close, refunds."""

from __future__ import annotations

from datetime import datetime

import pytest

from siyu.core import domain_events
from siyu.customers.models import Event
from siyu.wechat.models import ApiIssue
from siyu.wechat.pay import events, services
from siyu.wechat.pay.models import PaymentIntent, PaymentNotification, Refund
from siyu.wechat.pay.provider import WeChatPayProvider
from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim import paycrypto
from tests.wechat.test_pay_support import APPID, merchant_key, shop_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(wechat_sim, workspace, settings):
    return shop_open(wechat_sim, workspace, settings)


@pytest.fixture
def captured():
    seen: list[tuple[str, dict]] = []
    handlers = {name: (lambda name=name, **payload: seen.append((name, payload)))
                for name in (events.PAYMENT_SUCCEEDED, events.PAYMENT_PAID_AFTER_CLOSE, events.REFUND_SUCCEEDED,
                             events.REFUND_FAILED)}
    for name, handler in handlers.items():
        domain_events.subscribe(name, handler)
    yield seen
    for name, handler in handlers.items():
        domain_events.unsubscribe(name, handler)


def test_prepay_returns_client_params_signed_with_the_merchant_key(shop):
    _, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="ORDER20261123001", amount_fen=12900,
                                        description="私域商城-面霜", payer_openid=openid)
    params = prepay.client_params
    assert prepay.prepay_id.startswith("wx") and params["package"] == f"prepay_id={prepay.prepay_id}"
    assert params["appId"] == APPID and params["signType"] == "RSA"
    message = paycrypto.paysign_message(params["appId"], params["timeStamp"], params["nonceStr"], params["package"])
    assert paycrypto.rsa_verify(merchant_key().public_key(), message, params["paySign"])
    assert not paycrypto.rsa_verify(merchant_key().public_key(), message + "x", params["paySign"])
    intent = PaymentIntent.objects.get(out_trade_no="ORDER20261123001")
    assert (intent.status, intent.amount_fen, intent.prepay_id) == ("created", 12900, prepay.prepay_id)
    # The simulator holds the order as WeChat Pay would.
    order = sim_pay.pay_state(shop.sim).orders[(shop.config.mchid, "ORDER20261123001")]
    assert (order.total, order.payer_openid, order.trade_state) == (12900, openid, "NOTPAY")


def test_retrying_prepay_finds_the_same_intent_and_prepay_id(shop):
    _, openid = shop.payer()
    args = {"workspace": shop.workspace, "out_trade_no": "ORDER-RETRY-1", "amount_fen": 500, "description": "商品",
            "payer_openid": openid}
    first, second = WeChatPayProvider().prepay(**args), WeChatPayProvider().prepay(**args)
    assert first.prepay_id == second.prepay_id
    assert PaymentIntent.objects.count() == 1
    with pytest.raises(services.SiyuError) as refused:
        WeChatPayProvider().prepay(**{**args, "amount_fen": 501})
    assert refused.value.code == "out_trade_no_reused"


def test_paying_delivers_a_verified_notification_and_marks_the_intent_paid(shop, captured,
                                                                           django_capture_on_commit_callbacks):
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="ORDER-PAY-1", amount_fen=9900,
                                        description="会员年卡", payer_openid=openid)
    with django_capture_on_commit_callbacks(execute=True):
        result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    assert result.notifications == [204]
    intent = PaymentIntent.objects.get(out_trade_no="ORDER-PAY-1")
    assert (intent.status, intent.transaction_id) == ("paid", result.transaction_id)
    assert intent.paid_at is not None
    assert PaymentNotification.objects.get().outcome == "accepted"
    assert captured == [(events.PAYMENT_SUCCEEDED, {
        "workspace_id": shop.workspace.pk, "mchid": shop.config.mchid, "appid": APPID,
        "out_trade_no": "ORDER-PAY-1", "transaction_id": result.transaction_id, "amount_fen": 9900,
        "payer_openid": openid, "paid_at": intent.paid_at.isoformat()})]
    assert intent.paid_at == datetime.fromisoformat(sim_pay.pay_state(shop.sim).orders[
        (shop.config.mchid, "ORDER-PAY-1")].success_time)
    state = WeChatPayProvider().query(workspace=shop.workspace, out_trade_no="ORDER-PAY-1")
    assert (state.status, state.transaction_id) == ("paid", result.transaction_id)
    # On the customer's timeline, by the payer's openid (event id from the transaction: retries are duplicates).
    event = Event.objects.get(type="payment_succeeded")
    assert event.event_id == f"wxpay:{shop.config.mchid}:{result.transaction_id}"
    assert event.properties == {"out_trade_no": "ORDER-PAY-1", "amount_fen": 9900}
    assert (event.identity.kind, event.identity.namespace, event.identity.value) == ("openid", APPID, openid)


def test_query_reconciles_a_payment_whose_notification_was_delayed(shop, django_capture_on_commit_callbacks):
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="ORDER-LATE-1", amount_fen=100,
                                        description="样品", payer_openid=openid)
    shop.sim.faults.add("delay_callback", host="api.mch.weixin.qq.com")
    result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    assert result.notifications == []
    assert PaymentIntent.objects.get().status == "created"
    state = WeChatPayProvider().query(workspace=shop.workspace, out_trade_no="ORDER-LATE-1")
    assert (state.status, state.transaction_id) == ("paid", result.transaction_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert sim_pay.notifications_flush(shop.sim) == [204]  # the late notification changes nothing
    assert PaymentNotification.objects.get().outcome == "stale"
    assert PaymentIntent.objects.get().transaction_id == result.transaction_id


def test_close_then_refund_flow(shop, captured, django_capture_on_commit_callbacks):
    user, openid = shop.payer()
    provider = WeChatPayProvider()
    provider.prepay(workspace=shop.workspace, out_trade_no="ORDER-CLOSE-1", amount_fen=300, description="A",
                    payer_openid=openid)
    closed = provider.close(workspace=shop.workspace, out_trade_no="ORDER-CLOSE-1")
    assert closed.status == "closed"
    assert sim_pay.pay_state(shop.sim).orders[(shop.config.mchid, "ORDER-CLOSE-1")].trade_state == "CLOSED"
    prepay = provider.prepay(workspace=shop.workspace, out_trade_no="ORDER-REFUND-1", amount_fen=1000,
                             description="B", payer_openid=openid)
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.pay(shop.sim, user, prepay.prepay_id)
    refund = provider.refund(workspace=shop.workspace, out_trade_no="ORDER-REFUND-1", amount_fen=400, reason="尺码不合")
    assert refund.status == "processing" and refund.refund_id
    with pytest.raises(services.SiyuError) as refused:
        provider.refund(workspace=shop.workspace, out_trade_no="ORDER-REFUND-1", amount_fen=601)
    assert refused.value.code == "refund_exceeds_paid"
    with django_capture_on_commit_callbacks(execute=True):
        settled = sim_pay.refunds_settle(shop.sim)
    assert [item["notifications"] for item in settled] == [[204]]
    intent = PaymentIntent.objects.get(out_trade_no="ORDER-REFUND-1")
    assert (intent.status, intent.refunded_fen) == ("refunded_partially", 400)
    assert Refund.objects.get().status == "succeeded"
    assert [name for name, _ in captured] == [events.PAYMENT_SUCCEEDED, events.REFUND_SUCCEEDED]
    assert provider.refund_query(workspace=shop.workspace, out_refund_no=refund.out_refund_no).status == "succeeded"


def test_periodic_reconcile_resubmits_lost_refunds_and_finds_lost_payments(shop, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    user, openid = shop.payer()
    provider = WeChatPayProvider()
    prepay = provider.prepay(workspace=shop.workspace, out_trade_no="ORDER-RECON-1", amount_fen=700,
                             description="C", payer_openid=openid)
    shop.sim.faults.add("delay_callback", host="api.mch.weixin.qq.com")
    sim_pay.pay(shop.sim, user, prepay.prepay_id)  # the notification never comes
    later = timezone.now() + timedelta(minutes=11)
    assert services.pay_reconcile_due(now=later) == {"refunds": 0, "intents": 1, "errors": 0}
    intent = PaymentIntent.objects.get()
    assert intent.status == "paid"
    # WeChat Pay is unreachable when the refund is submitted: it stays reserved (pending), then is resubmitted.
    shop.sim.faults.add("http_503", host="api.mch.weixin.qq.com", path="/v3/refund/domestic/refunds", times=3)
    refund = services.refund_request(intent_id=intent.pk, amount_fen=700)  # first try and two retries fail
    assert refund.status == "pending" and "HTTP_503" in refund.failure
    with pytest.raises(services.SiyuError):
        services.refund_request(intent_id=intent.pk, amount_fen=1)  # the reservation holds the money
    assert services.pay_reconcile_due(now=later + timedelta(minutes=2)) == {"refunds": 1, "intents": 0, "errors": 0}
    refund.refresh_from_db()
    assert refund.status == "processing" and refund.refund_id
    assert len(sim_pay.pay_state(shop.sim).refunds) == 1


def test_rate_limits_are_retried_then_surfaced(shop):
    _, openid = shop.payer()
    args = {"workspace": shop.workspace, "amount_fen": 100, "description": "限流", "payer_openid": openid}
    limit = {"host": "api.mch.weixin.qq.com", "path": "/v3/pay/transactions/jsapi", "code": "RATELIMIT_EXCEED",
             "message": "商户发起请求频率过高", "status": 429}
    shop.sim.faults.add("errcode", times=1, **limit)
    assert WeChatPayProvider().prepay(out_trade_no="LIMIT-0001", **args).prepay_id  # one retry was enough
    assert not ApiIssue.objects.exists()
    shop.sim.faults.add("errcode", times=-1, **limit)
    with pytest.raises(services.SiyuError) as refused:
        WeChatPayProvider().prepay(out_trade_no="LIMIT-0002", **args)
    assert (refused.value.code, refused.value.status) == ("wechat_pay_rate_limited", 429)
    issue = ApiIssue.objects.get()
    assert (issue.api, issue.errcode) == ("pay:jsapi", 429) and "RATELIMIT_EXCEED" in issue.errmsg
    assert PaymentIntent.objects.get(out_trade_no="LIMIT-0002").prepay_id == ""


def test_a_failing_timeline_never_undoes_a_payment(shop, monkeypatch, django_capture_on_commit_callbacks):
    """The timeline is a background subscriber of PAYMENT_SUCCEEDED: off the notification, retried alone."""
    def broken(*args, **kwargs):
        raise RuntimeError("ingestion is down")

    monkeypatch.setattr(services, "events_ingest", broken)
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="ORDER-TL-1", amount_fen=100,
                                        description="D", payer_openid=openid)
    with django_capture_on_commit_callbacks(execute=True):
        assert sim_pay.pay(shop.sim, user, prepay.prepay_id).notifications == [204]
    assert PaymentIntent.objects.get().status == "paid"
    assert not Event.objects.exists()
    monkeypatch.undo()  # the delivery's retry records it once; a replay is a duplicate
    intent = PaymentIntent.objects.get()
    payload = {"workspace_id": intent.workspace_id, "mchid": intent.mchid, "appid": intent.appid,
               "out_trade_no": intent.out_trade_no, "transaction_id": intent.transaction_id,
               "amount_fen": intent.amount_fen, "payer_openid": openid, "paid_at": intent.paid_at.isoformat()}
    for _ in range(2):
        services.payment_customer_event(**payload)
    event = Event.objects.get(type="payment_succeeded")
    assert event.event_id == f"wxpay:{intent.mchid}:{intent.transaction_id}"
