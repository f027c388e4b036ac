"""wechatpayv3 is pointed at the simulator in one place, builds offline, and nothing leaves for WeChat Pay."""

from __future__ import annotations

import socket

import pytest
import wechatpayv3

from siyu.core.errors import SiyuError
from siyu.wechat.pay import client
from siyu.wechat.pay.models import PaymentIntent
from siyu.wechat.pay.provider import WeChatPayProvider
from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim import paycrypto
from tests.wechat.test_pay_support import shop_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(wechat_sim, workspace, settings):
    return shop_open(wechat_sim, workspace, settings)


@pytest.fixture
def network(monkeypatch):
    """Record every host a socket is opened to; refuse WeChat Pay's real host outright."""
    hosts: list[str] = []
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection

    def getaddrinfo(host, *args, **kwargs):
        hosts.append(str(host))
        if "weixin.qq.com" in str(host):
            raise AssertionError(f"escaped to {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        hosts.append(str(address[0]))
        if "weixin.qq.com" in str(address[0]):
            raise AssertionError(f"escaped to {address[0]}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return hosts


def test_no_request_leaves_for_wechat_pay_in_simulator_mode(shop, network, django_capture_on_commit_callbacks):
    client._client.cache_clear()  # build under the recording sockets too: public key mode is offline
    user, openid = shop.payer()
    provider = WeChatPayProvider()
    prepay = provider.prepay(workspace=shop.workspace, out_trade_no="ESCAPE-0001", amount_fen=100,
                             description="x", payer_openid=openid)
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.pay(shop.sim, user, prepay.prepay_id)
    provider.query(workspace=shop.workspace, out_trade_no="ESCAPE-0001")
    refund = provider.refund(workspace=shop.workspace, out_trade_no="ESCAPE-0001", amount_fen=100)
    provider.refund_query(workspace=shop.workspace, out_refund_no=refund.out_refund_no)
    provider.prepay(workspace=shop.workspace, out_trade_no="ESCAPE-0002", amount_fen=100, description="y",
                    payer_openid=openid)
    provider.close(workspace=shop.workspace, out_trade_no="ESCAPE-0002")
    # A notification with an unknown serial would make the SDK download certificates; we refuse it first.
    body, headers = sim_pay.notification_build(shop.sim, mchid=shop.config.mchid, event_type="TRANSACTION.SUCCESS",
                                               summary="x", original_type="transaction", resource={})
    headers["Wechatpay-Serial"] = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    with pytest.raises(client.NotificationRejected):
        client.notification_open(shop.config, headers=headers, body=body)
    assert network, "the calls above went through sockets"
    assert set(network) <= {"127.0.0.1"}
    orders = sim_pay.pay_state(shop.sim).orders
    assert orders[(shop.config.mchid, "ESCAPE-0001")].trade_state == "REFUND" or \
        sim_pay.pay_state(shop.sim).refunds[(shop.config.mchid, refund.out_refund_no)].refund == 100
    assert orders[(shop.config.mchid, "ESCAPE-0002")].trade_state == "CLOSED"  # the simulator got every call


def test_the_gateway_is_the_real_host_outside_simulator_mode(shop, settings, network):
    settings.SIYU_WECHAT_BASE_URL = ""
    built = client.pay_client(shop.config)
    assert built._core._gate_way == "https://api.mch.weixin.qq.com"
    assert network == []  # building never touches the network


def test_the_adapter_fails_loudly_if_the_library_moves_its_gateway(shop, monkeypatch):
    client._client.cache_clear()
    original = wechatpayv3.WeChatPay.__init__

    def moved(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._core._base_url = self._core.__dict__.pop("_gate_way")

    monkeypatch.setattr(wechatpayv3.WeChatPay, "__init__", moved)
    with pytest.raises(RuntimeError, match="gateway"):
        client.pay_client(shop.config)
    client._client.cache_clear()


def test_without_the_platform_public_key_the_client_is_not_built(shop):
    incomplete = client.MerchantConfig(**{**shop.config.__dict__, "platform_public_key_id": ""})
    with pytest.raises(ValueError, match="public key"):
        client.pay_client(incomplete)


def test_answers_not_signed_by_the_configured_platform_key_are_refused(shop):
    """Someone answering in WeChat Pay's place (right key id, wrong key) is not believed."""
    real = sim_pay.platform_public(shop.sim)["public_key_id"]
    sim_pay.platform_key_set(shop.sim, paycrypto.key_cached("impostor"), key_id=real)
    _, openid = shop.payer()
    with pytest.raises(SiyuError) as refused:
        WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="IMPOSTOR-1", amount_fen=100,
                                   description="x", payer_openid=openid)
    assert refused.value.code == "wechat_pay_unavailable"
    assert PaymentIntent.objects.get().prepay_id == ""
