"""Exactly once under concurrency (real PostgreSQL, real transactions, threads): the same notification
delivered many times at once is applied once; concurrent refunds never exceed what was paid."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.wechat.pay import events, services
from siyu.wechat.pay.models import PaymentIntent, PaymentNotification, Refund
from siyu.wechat.pay.provider import WeChatPayProvider
from siyu.wechat_sim import pay as sim_pay
from tests.wechat.test_pay_support import shop_open

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(wechat_sim, workspace, settings):
    return shop_open(wechat_sim, workspace, settings)


@pytest.fixture
def paid_events():
    seen: list[dict] = []

    def handler(**payload):
        seen.append(payload)

    domain_events.subscribe(events.PAYMENT_SUCCEEDED, handler)
    domain_events.subscribe(events.REFUND_SUCCEEDED, handler)
    yield seen
    domain_events.unsubscribe(events.PAYMENT_SUCCEEDED, handler)
    domain_events.unsubscribe(events.REFUND_SUCCEEDED, handler)


def _concurrently(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(number):
        try:
            barrier.wait(timeout=30)
            results[number] = work(number)
        except Exception as error:  # reported in the results, asserted by the test
            results[number] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _captured(sim, action):
    """Run ``action`` with the simulator's deliveries captured instead of sent."""
    captured: list[tuple[str, bytes, dict]] = []
    original = sim.transport
    sim.transport = lambda method, url, body, headers: (captured.append((url, body, headers)), (204, b""))[1]
    try:
        action()
    finally:
        sim.transport = original
    return captured


def _deliver(sim, url: str, body: bytes, headers: dict[str, str]) -> int:
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
             if name.lower() != "content-type"}
    return Client().generic("POST", url.removeprefix(sim.siyu_url), data=body, content_type="application/json",
                            **extra).status_code


def test_concurrent_duplicate_payment_notifications_apply_once(shop, paid_events):
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="CONC-PAY-1", amount_fen=2500,
                                        description="并发", payer_openid=openid)
    [(url, body, headers)] = _captured(shop.sim, lambda: sim_pay.pay(shop.sim, user, prepay.prepay_id))
    statuses = _concurrently(8, lambda _: _deliver(shop.sim, url, body, headers))
    assert statuses == [204] * 8
    outcomes = sorted(PaymentNotification.objects.values_list("outcome", flat=True))
    assert outcomes == ["accepted"] + ["duplicate"] * 7
    assert PaymentIntent.objects.get().status == "paid"
    assert len(paid_events) == 1 and paid_events[0]["out_trade_no"] == "CONC-PAY-1"


def test_concurrent_refunds_never_exceed_the_payment(shop, paid_events):
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="CONC-REFUND-1", amount_fen=1000,
                                        description="并发退款", payer_openid=openid)
    sim_pay.pay(shop.sim, user, prepay.prepay_id)
    intent = PaymentIntent.objects.get()
    assert intent.status == "paid"

    def refund(number):
        try:
            return services.refund_request(intent_id=intent.pk, amount_fen=300, reason=f"#{number}").status
        except SiyuError as error:
            return error.code

    results = _concurrently(6, refund)
    assert sorted(results) == ["processing"] * 3 + ["refund_exceeds_paid"] * 3
    assert sum(Refund.objects.values_list("amount_fen", flat=True)) == 900
    # Settling them all, with duplicate refund notifications delivered at once, refunds exactly 900.
    notices = _captured(shop.sim, lambda: sim_pay.refunds_settle(shop.sim))
    assert len(notices) == 3
    statuses = _concurrently(9, lambda n: _deliver(shop.sim, *notices[n % 3]))
    assert statuses == [204] * 9
    intent.refresh_from_db()
    assert (intent.status, intent.refunded_fen) == ("refunded_partially", 900)
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}
    assert len([payload for payload in paid_events if "out_refund_no" in payload]) == 3
