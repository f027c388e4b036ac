"""The simulated 微信支付 v3 on its own: request signatures, signed answers, error shapes and statuses,
refund limits, notifications (encryption, signature, delivery faults) and the /_sim/pay control API."""

from __future__ import annotations

import json
import time

import pytest
import requests

from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim import paycrypto
from siyu.wechat_sim.server import Simulator

MCHID = "1230000109"
APPID = "wxd678efh567hg6787"
API_V3_KEY = "0123456789abcdef0123456789abcdef"
HOST = "api.mch.weixin.qq.com"


@pytest.fixture
def sim():
    simulator = Simulator(siyu_url="http://merchant.test")
    simulator.start()
    sent: list[tuple[str, bytes, dict]] = []
    simulator.answers = []  # statuses the fake merchant answers with, in order (default 200)

    def transport(method, url, body, headers):
        sent.append((url, body, headers))
        return (simulator.answers.pop(0) if simulator.answers else 200), b""

    simulator.transport = transport
    simulator.sent = sent
    sim_pay.merchant_register(simulator, mchid=MCHID, api_v3_key=API_V3_KEY, merchant_serial_no=_serial(),
                              merchant_public_key=paycrypto.public_pem(_key()), appids=[APPID])
    yield simulator
    simulator.stop()


def _key():
    return paycrypto.key_cached("test-merchant")


def _serial():
    return paycrypto.key_fingerprint(_key())


def call(sim, method: str, path: str, payload=None, *, key=None, serial=None, mchid=MCHID, timestamp=None):
    body = json.dumps(payload) if payload is not None else ""
    authorization = paycrypto.authorization_build(key=key or _key(), mchid=mchid, serial_no=serial or _serial(),
                                                  method=method, path_and_query=path, body=body, timestamp=timestamp)
    response = requests.request(method, f"{sim.base_url}/{HOST}{path}", data=body.encode() or None, timeout=10,
                                headers={"Authorization": authorization, "Content-Type": "application/json",
                                         "Accept": "application/json"})
    return response


def _verified(sim, response) -> bool:
    platform = sim_pay.pay_state(sim).platform_key.public_key()
    message = paycrypto.response_message(response.headers["Wechatpay-Timestamp"], response.headers["Wechatpay-Nonce"],
                                         response.text)
    return (response.headers["Wechatpay-Serial"] == sim_pay.platform_public(sim)["public_key_id"]
            and paycrypto.rsa_verify(platform, message, response.headers["Wechatpay-Signature"]))


def _prepay(sim, out_trade_no="SIM-ORDER-1", total=500, openid=None):
    user = sim.state.user("buyer")
    payload = {"appid": APPID, "mchid": MCHID, "description": "测试", "out_trade_no": out_trade_no,
               "notify_url": "http://merchant.test/notify", "amount": {"total": total, "currency": "CNY"},
               "payer": {"openid": openid or sim.state.openid(user, APPID)}}
    return user, call(sim, "POST", "/v3/pay/transactions/jsapi", payload)


def test_prepay_answer_is_signed_by_the_platform(sim):
    _, response = _prepay(sim)
    assert response.status_code == 200 and response.json()["prepay_id"].startswith("wx")
    assert _verified(sim, response)


@pytest.mark.parametrize("forgery", ["other_key", "wrong_serial", "stale", "unknown_merchant", "no_header"])
def test_requests_without_a_valid_merchant_signature_are_refused(sim, forgery):
    path = f"/v3/pay/transactions/out-trade-no/X123456?mchid={MCHID}"
    if forgery == "no_header":
        response = requests.get(f"{sim.base_url}/{HOST}{path}", timeout=10)
    else:
        options = {"other_key": {"key": paycrypto.key_cached("someone-else")},
                   "wrong_serial": {"serial": "ABCDEF0123456789"},
                   "stale": {"timestamp": str(int(time.time()) - 600)},
                   "unknown_merchant": {"mchid": "1999999999"}}[forgery]
        response = call(sim, "GET", path, **options)
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"
    assert _verified(sim, response)


def test_a_signature_over_another_body_is_refused(sim):
    body = json.dumps({"mchid": MCHID})
    authorization = paycrypto.authorization_build(key=_key(), mchid=MCHID, serial_no=_serial(), method="POST",
                                                  path_and_query="/v3/pay/transactions/out-trade-no/X123456/close",
                                                  body=body)
    response = requests.post(f"{sim.base_url}/{HOST}/v3/pay/transactions/out-trade-no/X123456/close",
                             data=json.dumps({"mchid": MCHID, "x": 1}), headers={"Authorization": authorization},
                             timeout=10)
    assert (response.status_code, response.json()["code"]) == (401, "SIGN_ERROR")


def test_parameter_errors_and_order_states(sim):
    _, response = _prepay(sim, total=0)
    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")
    _, response = _prepay(sim, out_trade_no="bad no!")
    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")
    response = call(sim, "GET", f"/v3/pay/transactions/out-trade-no/NOPE0001?mchid={MCHID}")
    assert (response.status_code, response.json()["code"]) == (404, "ORDER_NOT_EXIST")
    user, response = _prepay(sim)
    result = sim_pay.pay(sim, user, response.json()["prepay_id"])
    _, again = _prepay(sim)
    assert (again.status_code, again.json()["code"]) == (400, "ORDERPAID")
    close = call(sim, "POST", "/v3/pay/transactions/out-trade-no/SIM-ORDER-1/close", {"mchid": MCHID})
    assert (close.status_code, close.json()["code"]) == (400, "ORDERPAID")
    query = call(sim, "GET", f"/v3/pay/transactions/out-trade-no/SIM-ORDER-1?mchid={MCHID}")
    assert query.json()["trade_state"] == "SUCCESS" and query.json()["transaction_id"] == result.transaction_id
    assert _verified(sim, query)
    _prepay(sim, out_trade_no="SIM-ORDER-2")
    closed = call(sim, "POST", "/v3/pay/transactions/out-trade-no/SIM-ORDER-2/close", {"mchid": MCHID})
    assert closed.status_code == 204 and closed.content == b"" and _verified(sim, closed)
    _, reopened = _prepay(sim, out_trade_no="SIM-ORDER-2")
    assert (reopened.status_code, reopened.json()["code"]) == (400, "ORDER_CLOSED")


def test_rate_limit_fault_answers_429(sim):
    sim.faults.add("errcode", host=HOST, path="/v3/pay/transactions/jsapi", code="RATELIMIT_EXCEED",
                   message="商户发起请求频率过高", status=429)
    _, response = _prepay(sim)
    assert (response.status_code, response.json()["code"]) == (429, "RATELIMIT_EXCEED")
    _, response = _prepay(sim)
    assert response.status_code == 200


def test_refunds_never_exceed_the_payment_and_repeat_idempotently(sim):
    user, response = _prepay(sim, total=1000)
    sim_pay.pay(sim, user, response.json()["prepay_id"])
    refund = {"out_trade_no": "SIM-ORDER-1", "out_refund_no": "RF-1", "notify_url": "http://merchant.test/refund",
              "amount": {"refund": 700, "total": 1000, "currency": "CNY"}}
    first = call(sim, "POST", "/v3/refund/domestic/refunds", refund)
    assert first.status_code == 200 and first.json()["status"] == "PROCESSING" and _verified(sim, first)
    assert call(sim, "POST", "/v3/refund/domestic/refunds", refund).json()["refund_id"] == first.json()["refund_id"]
    over = call(sim, "POST", "/v3/refund/domestic/refunds",
                {**refund, "out_refund_no": "RF-2", "amount": {"refund": 301, "total": 1000, "currency": "CNY"}})
    assert (over.status_code, over.json()["code"]) == (403, "NOT_ENOUGH")
    query = call(sim, "GET", "/v3/refund/domestic/refunds/RF-1")
    assert query.json()["status"] == "PROCESSING"
    assert call(sim, "GET", "/v3/refund/domestic/refunds/RF-404").json()["code"] == "RESOURCE_NOT_EXISTS"
    sim.sent.clear()
    settled = sim_pay.refunds_settle(sim)
    assert settled[0]["status"] == "SUCCESS" and settled[0]["notifications"] == [200]
    url, body, _ = sim.sent[0]
    envelope = json.loads(body)
    assert url == "http://merchant.test/refund" and envelope["event_type"] == "REFUND.SUCCESS"
    resource = json.loads(paycrypto.aes_gcm_decrypt(
        api_v3_key=API_V3_KEY, ciphertext=envelope["resource"]["ciphertext"],
        associated_data=envelope["resource"]["associated_data"], nonce_str=envelope["resource"]["nonce"]))
    assert (resource["out_refund_no"], resource["refund_status"], resource["amount"]["refund"]) == ("RF-1", "SUCCESS", 700)
    assert call(sim, "GET", f"/v3/pay/transactions/out-trade-no/SIM-ORDER-1?mchid={MCHID}").json()["trade_state"] \
        == "REFUND"


def test_payment_notification_is_encrypted_and_signed(sim):
    user, response = _prepay(sim)
    result = sim_pay.pay(sim, user, response.json()["prepay_id"])
    assert result.notifications == [200]
    url, body, headers = sim.sent[0]
    assert url == "http://merchant.test/notify"
    platform = sim_pay.pay_state(sim).platform_key.public_key()
    message = paycrypto.response_message(headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body.decode())
    assert paycrypto.rsa_verify(platform, message, headers["Wechatpay-Signature"])
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    resource = json.loads(body)["resource"]
    plain = paycrypto.aes_gcm_decrypt(api_v3_key=API_V3_KEY, ciphertext=resource["ciphertext"],
                                      associated_data=resource["associated_data"], nonce_str=resource["nonce"])
    assert json.loads(plain)["transaction_id"] == result.transaction_id
    assert paycrypto.aes_gcm_decrypt(api_v3_key="f" * 32, ciphertext=resource["ciphertext"],
                                     associated_data=resource["associated_data"], nonce_str=resource["nonce"]) is None
    with pytest.raises(Exception, match="订单已支付"):
        sim_pay.pay(sim, user, response.json()["prepay_id"])


def test_only_the_payer_can_pay(sim):
    _, response = _prepay(sim)
    with pytest.raises(Exception, match="openid"):
        sim_pay.pay(sim, sim.state.user("stranger"), response.json()["prepay_id"])


def test_delivery_faults_duplicate_delay_out_of_order_and_retries(sim):
    user, first = _prepay(sim, out_trade_no="SIM-ORDER-A")
    _, second = _prepay(sim, out_trade_no="SIM-ORDER-B")
    _, third = _prepay(sim, out_trade_no="SIM-ORDER-C")
    sim.faults.add("duplicate_notify", host=HOST)
    assert sim_pay.pay(sim, user, first.json()["prepay_id"]).notifications == [200, 200]
    assert sim.sent[0][1] == sim.sent[1][1]  # the very same notification twice
    sim.faults.add("out_of_order", host=HOST)
    assert sim_pay.pay(sim, user, second.json()["prepay_id"]).notifications == []
    sim.faults.add("delay_callback", host=HOST)
    assert sim_pay.pay(sim, user, third.json()["prepay_id"]).notifications == []
    assert len(sim.sent) == 2
    sim.answers = [500]  # the merchant fails the next delivery: it is kept and retried
    assert sim_pay.notifications_flush(sim) == [500, 200]
    assert sim_pay.notifications_flush(sim) == [200]
    assert sim_pay.notifications_flush(sim) == []
    trades = [json.loads(paycrypto.aes_gcm_decrypt(api_v3_key=API_V3_KEY, **{
        "ciphertext": json.loads(body)["resource"]["ciphertext"], "associated_data": "transaction",
        "nonce_str": json.loads(body)["resource"]["nonce"]}))["out_trade_no"] for _, body, _ in sim.sent]
    assert trades == ["SIM-ORDER-A", "SIM-ORDER-A", "SIM-ORDER-C", "SIM-ORDER-B", "SIM-ORDER-C"]


def test_control_api_registers_merchants_and_pays(sim):
    key = paycrypto.key_cached("control-merchant")
    answer = requests.post(f"{sim.base_url}/_sim/pay/merchants", timeout=10, json={
        "mchid": "1900000777", "api_v3_key": API_V3_KEY, "merchant_serial_no": "ABC123",
        "merchant_public_key": paycrypto.public_pem(key)}).json()
    assert answer["public_key_id"].startswith("PUB_KEY_ID_") and "BEGIN PUBLIC KEY" in answer["public_key"]
    bad = requests.post(f"{sim.base_url}/_sim/pay/merchants", timeout=10, json={"mchid": "1"})
    assert bad.status_code == 400
    _, response = _prepay(sim)
    paid = requests.post(f"{sim.base_url}/_sim/pay/pay", timeout=10,
                         json={"user": "buyer", "prepay_id": response.json()["prepay_id"]}).json()
    assert paid["out_trade_no"] == "SIM-ORDER-1" and paid["notifications"] == [200]
    listing = requests.get(f"{sim.base_url}/_sim/pay/orders", params={"mchid": MCHID}, timeout=10).json()
    assert listing["orders"][0]["trade_state"] == "SUCCESS"
    assert listing["notifications"][0]["event_type"] == "TRANSACTION.SUCCESS"
    assert requests.get(f"{sim.base_url}/_sim/pay/platform", timeout=10).json()["public_key_id"] == \
        answer["public_key_id"]
