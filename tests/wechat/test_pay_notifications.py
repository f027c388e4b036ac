"""Notifications from WeChat Pay: signature, AES-GCM, exactly once, out of order, late, forged, after close."""

from __future__ import annotations

import base64
import json
import time

import pytest

from siyu.core import domain_events
from siyu.wechat.models import ApiIssue
from siyu.wechat.pay import client, events
from siyu.wechat.pay.models import PaymentIntent, PaymentNotification, Refund
from siyu.wechat.pay.provider import WeChatPayProvider
from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim import paycrypto
from tests.wechat.test_pay_support import APPID, MCHID, notify, shop_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(wechat_sim, workspace, settings):
    return shop_open(wechat_sim, workspace, settings)
HOST = "api.mch.weixin.qq.com"


@pytest.fixture
def captured():
    seen: list[tuple[str, dict]] = []
    names = (events.PAYMENT_SUCCEEDED, events.PAYMENT_PAID_AFTER_CLOSE, events.REFUND_SUCCEEDED, events.REFUND_FAILED)
    handlers = {name: (lambda name=name, **payload: seen.append((name, payload))) for name in names}
    for name, handler in handlers.items():
        domain_events.subscribe(name, handler)
    yield seen
    for name, handler in handlers.items():
        domain_events.unsubscribe(name, handler)


@pytest.fixture
def ordered(shop):
    """An unpaid intent of 88.00 yuan and the payer who will pay it."""
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="ORDER-N-0001", amount_fen=8800,
                                        description="礼盒", payer_openid=openid)
    return user, openid, prepay


def _snapshot():
    return (list(PaymentIntent.objects.values_list("status", "transaction_id", "refunded_fen", "paid_at")),
            list(Refund.objects.values_list("status", "amount_fen")))


def _transaction_resource(*, openid: str, total: int = 8800, mchid: str = MCHID, appid: str = APPID,
                          transaction_id: str = "4200000000202611230000000001") -> dict:
    return {"appid": appid, "mchid": mchid, "out_trade_no": "ORDER-N-0001", "transaction_id": transaction_id,
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2026-11-23T20:00:00+08:00", "payer": {"openid": openid},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}}


def _build(shop, resource: dict, **options) -> tuple[bytes, dict[str, str]]:
    return sim_pay.notification_build(shop.sim, mchid=shop.config.mchid, event_type="TRANSACTION.SUCCESS",
                                      summary="支付成功", original_type="transaction", resource=resource, **options)


def test_notification_is_signed_by_the_platform_and_decrypts_with_the_api_v3_key(shop, ordered):
    _, openid, _ = ordered
    body, headers = _build(shop, _transaction_resource(openid=openid))
    envelope = json.loads(body)
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert "ORDER-N-0001" not in body.decode()  # the resource travels encrypted
    opened = client.notification_open(shop.config, headers=headers, body=body)
    assert opened["resource"]["out_trade_no"] == "ORDER-N-0001"
    assert opened["event_type"] == "TRANSACTION.SUCCESS"


def test_duplicate_notifications_are_applied_once(shop, ordered, captured, django_capture_on_commit_callbacks):
    user, _, prepay = ordered
    shop.sim.faults.add("duplicate_notify", host=HOST)
    with django_capture_on_commit_callbacks(execute=True):
        result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    assert result.notifications == [204, 204]  # both answered success: WeChat Pay stops retrying
    assert sorted(PaymentNotification.objects.values_list("outcome", flat=True)) == ["accepted", "duplicate"]
    assert [name for name, _ in captured] == [events.PAYMENT_SUCCEEDED]
    assert PaymentIntent.objects.get().status == "paid"


def test_a_resent_notification_with_a_new_id_is_still_a_duplicate(shop, ordered, django_capture_on_commit_callbacks):
    user, openid, prepay = ordered
    with django_capture_on_commit_callbacks(execute=True):
        result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    body, headers = _build(shop, _transaction_resource(openid=openid, transaction_id=result.transaction_id))
    before = _snapshot()
    assert notify(shop, body, headers)[0] == 204
    assert _snapshot() == before
    assert list(PaymentNotification.objects.order_by("pk").values_list("outcome", flat=True)) == \
        ["accepted", "duplicate"]


@pytest.mark.parametrize("forgery", ["bad_signature", "wrong_serial", "stale_timestamp", "tampered_ciphertext",
                                     "missing_headers", "wrong_key"])
def test_forged_notifications_change_nothing(shop, ordered, forgery):
    _, openid, _ = ordered
    options = {"timestamp": str(int(time.time()) - 301)} if forgery == "stale_timestamp" else {}
    body, headers = _build(shop, _transaction_resource(openid=openid), **options)
    if forgery == "bad_signature":
        body = body.replace(b'"summary": "', b'"summary": "x')
    elif forgery == "wrong_serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_0000000000000000000000000000AAAA"
    elif forgery == "missing_headers":
        del headers["Wechatpay-Signature"]
    elif forgery == "tampered_ciphertext":
        envelope = json.loads(body)
        raw = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
        raw[5] ^= 0x01
        envelope["resource"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        text = json.dumps(envelope, ensure_ascii=False)  # re-signed with the platform key: only AES-GCM catches it
        body = text.encode()
        headers.update(paycrypto.signed_headers(key=sim_pay.pay_state(shop.sim).platform_key,
                                                serial=headers["Wechatpay-Serial"], body=text))
    elif forgery == "wrong_key":  # signed by someone else's key, claiming the platform's serial
        text = body.decode()
        headers.update(paycrypto.signed_headers(key=paycrypto.key_cached("test-merchant"),
                                                serial=headers["Wechatpay-Serial"], body=text))
    before = _snapshot()
    status, answer = notify(shop, body, headers)
    assert status in {400, 401}
    assert json.loads(answer)["code"] == "FAIL"
    assert _snapshot() == before
    row = PaymentNotification.objects.get()
    expected = {"tampered_ciphertext": "decrypt_failed", "wrong_key": "bad_signature"}.get(forgery, forgery)
    assert (row.outcome, row.reason) == ("rejected", expected)


@pytest.mark.parametrize(("change", "reason"), [({"total": 1}, "amount_mismatch"),
                                                ({"mchid": "1900000001"}, "mchid_mismatch"),
                                                ({"appid": "wx0000000000000001"}, "appid_mismatch")])
def test_authentic_notifications_that_do_not_match_the_intent_are_rejected(shop, ordered, change, reason):
    _, openid, _ = ordered
    body, headers = _build(shop, _transaction_resource(openid=openid, **change))
    before = _snapshot()
    status, answer = notify(shop, body, headers)
    assert (status, json.loads(answer)["code"]) == (400, "FAIL")
    assert _snapshot() == before
    row = PaymentNotification.objects.get()
    assert (row.outcome, row.reason, row.notification_key, row.resource_key) == ("rejected", reason, None, None)
    # Once the genuine notification arrives it is applied.
    genuine, genuine_headers = _build(shop, _transaction_resource(openid=openid))
    assert notify(shop, genuine, genuine_headers)[0] == 204
    assert PaymentIntent.objects.get().status == "paid"


def test_unknown_order_and_unknown_merchant_are_rejected(shop, ordered):
    _, openid, _ = ordered
    resource = {**_transaction_resource(openid=openid), "out_trade_no": "NO-SUCH-ORDER"}
    body, headers = _build(shop, resource)
    status, _ = notify(shop, body, headers)
    assert status == 400
    assert PaymentNotification.objects.get().reason == "unknown_order"
    status, answer = shop.sim.deliver(f"{shop.sim.siyu_url}/wx/pay/1234567/notify", body, headers)
    assert (status, json.loads(answer)["code"]) == (404, "FAIL")
    assert PaymentIntent.objects.get().status == "created"


def test_oversized_notification_is_refused(shop, ordered):
    status, answer = notify(shop, b"{" + b" " * (70 * 1024) + b"}", {"Content-Type": "application/json"})
    assert (status, json.loads(answer)["code"]) == (413, "FAIL")
    assert PaymentNotification.objects.count() == 0


def test_refund_notification_before_the_payment_notification_is_reconciled(shop, ordered, captured,
                                                                          django_capture_on_commit_callbacks):
    """The SUCCESS notification is held back; a refund made on the merchant platform notifies first."""
    user, _, prepay = ordered
    shop.sim.faults.add("out_of_order", host=HOST, path="/v3/pay/transactions")
    result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    assert result.notifications == []
    assert PaymentIntent.objects.get().status == "created"
    # A refund Siyu did not make (merchant platform), straight through the adapter.
    client.refund_create(shop.config, out_trade_no="ORDER-N-0001", out_refund_no="MP-REFUND-1", amount_fen=800,
                         total_fen=8800)
    with django_capture_on_commit_callbacks(execute=True):
        settled = sim_pay.refunds_settle(shop.sim)
    # REFUND.SUCCESS first (reconciled by querying the order), then the held TRANSACTION.SUCCESS (stale).
    assert settled[0]["notifications"] == [204, 204]
    intent = PaymentIntent.objects.get()
    assert (intent.status, intent.refunded_fen, intent.transaction_id) == ("refunded_partially", 800,
                                                                          result.transaction_id)
    refund = Refund.objects.get()
    assert (refund.out_refund_no, refund.status, refund.amount_fen) == ("MP-REFUND-1", "succeeded", 800)
    assert list(PaymentNotification.objects.order_by("pk").values_list("kind", "outcome")) == \
        [("refund", "accepted"), ("transaction", "stale")]
    assert [name for name, _ in captured] == [events.PAYMENT_SUCCEEDED, events.REFUND_SUCCEEDED]


def test_a_late_success_after_close_is_refunded_automatically(shop, ordered, captured,
                                                              django_capture_on_commit_callbacks):
    """The shop closed the intent while WeChat Pay could not be reached; the consumer paid anyway."""
    user, _, prepay = ordered
    shop.sim.faults.add("http_503", host=HOST, path="/v3/pay/transactions/out-trade-no/ORDER-N-0001/close", times=-1)
    assert WeChatPayProvider().close(workspace=shop.workspace, out_trade_no="ORDER-N-0001").status == "closed"
    issue = ApiIssue.objects.get()  # the outage is surfaced in the console, after the retries
    assert (issue.api, issue.errcode, issue.count) == ("pay:close", 503, 1)
    shop.sim.faults.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    assert result.notifications == [204]
    intent = PaymentIntent.objects.get()
    assert (intent.status, intent.paid_after_close, intent.transaction_id) == ("paid", True, result.transaction_id)
    refund = Refund.objects.get()
    assert (refund.automatic, refund.amount_fen, refund.status) == (True, 8800, "processing")
    assert sim_pay.pay_state(shop.sim).refunds[(MCHID, refund.out_refund_no)].refund == 8800
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.refunds_settle(shop.sim)
    intent.refresh_from_db()
    assert (intent.status, intent.refunded_fen) == ("refunded", 8800)
    names = [name for name, _ in captured]
    assert names == [events.PAYMENT_PAID_AFTER_CLOSE, events.REFUND_SUCCEEDED]
    assert captured[1][1]["automatic"] is True
    # The same late notification again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert sim_pay.notifications_flush(shop.sim) == []
    assert Refund.objects.count() == 1


def test_refund_notifications_that_exceed_the_payment_are_rejected(shop, ordered, django_capture_on_commit_callbacks):
    user, _, prepay = ordered
    with django_capture_on_commit_callbacks(execute=True):
        result = sim_pay.pay(shop.sim, user, prepay.prepay_id)
    resource = {"mchid": MCHID, "out_trade_no": "ORDER-N-0001", "transaction_id": result.transaction_id,
                "out_refund_no": "FORGED-1", "refund_id": "50300000000000000000000001", "refund_status": "SUCCESS",
                "amount": {"total": 8800, "refund": 8801, "payer_total": 8800, "payer_refund": 8801}}
    body, headers = sim_pay.notification_build(shop.sim, mchid=MCHID, event_type="REFUND.SUCCESS", summary="退款成功",
                                               original_type="refund", resource=resource)
    before = _snapshot()
    status, _ = notify(shop, body, headers, refund=True)
    assert status == 400
    assert _snapshot() == before
    assert PaymentNotification.objects.filter(kind="refund").get().reason == "refund_exceeds_paid"
