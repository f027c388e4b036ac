"""The 微信支付 console page: amounts in yuan, the inbox, refunds by admins only (audited)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from siyu.core.models import AuditLog
from siyu.core.services import membership_grant
from siyu.wechat.pay.models import PaymentIntent, Refund
from siyu.wechat.pay.provider import WeChatPayProvider
from siyu.wechat_sim import pay as sim_pay
from tests.wechat.test_pay_support import shop_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(wechat_sim, workspace, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return shop_open(wechat_sim, workspace, settings)


@pytest.fixture
def clients(shop):
    result = {}
    for role in ("admin", "operator", "service", "analyst"):
        membership = membership_grant(workspace=shop.workspace, username=f"pay-{role}", password="pass-12345",
                                      role=role)
        client = Client()
        client.force_login(membership.user)
        result[role] = client
    return result


@pytest.fixture
def paid(shop, django_capture_on_commit_callbacks):
    user, openid = shop.payer()
    prepay = WeChatPayProvider().prepay(workspace=shop.workspace, out_trade_no="CONSOLE-0001", amount_fen=12345,
                                        description="精华液 30ml", payer_openid=openid)
    with django_capture_on_commit_callbacks(execute=True):
        sim_pay.pay(shop.sim, user, prepay.prepay_id)
    return PaymentIntent.objects.get()


def test_payments_notifications_and_amounts_in_yuan(clients, paid):
    page = clients["analyst"].get(reverse("console:wechat_pay"))
    text = page.content.decode()
    assert page.status_code == 200
    assert "CONSOLE-0001" in text and "¥123.45" in text and "精华液 30ml" in text
    assert "TRANSACTION.SUCCESS" in text and "已处理" in text
    assert 'name="amount_yuan"' not in text  # analysts are read-only: no refund form
    assert 'name="amount_yuan"' in clients["admin"].get(reverse("console:wechat_pay")).content.decode()


def test_service_staff_cannot_see_payments(clients, paid):
    assert clients["service"].get(reverse("console:wechat_pay")).status_code == 403


def test_admin_refund_is_submitted_and_audited(clients, paid):
    response = clients["admin"].post(reverse("console:wechat_pay_refund"),
                                     {"intent_id": paid.pk, "amount_yuan": "23.45", "reason": "破损"})
    assert response.status_code == 302
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.status, refund.reason) == (2345, "processing", "破损")
    audit = AuditLog.objects.get(action="wechat_pay_refund")
    assert audit.detail["amount_fen"] == 2345
    page = clients["admin"].get(reverse("console:wechat_pay")).content.decode()
    assert "¥23.45" in page and refund.out_refund_no in page


@pytest.mark.parametrize(("role", "amount", "status"), [("analyst", "1.00", 403), ("operator", "1.00", 403),
                                                        ("service", "1.00", 403), ("admin", "123.46", 409),
                                                        ("admin", "1.001", 400), ("admin", "-1", 400),
                                                        ("admin", "abc", 400), ("admin", "1e3000", 400)])
def test_refusals_change_nothing(clients, paid, role, amount, status):
    response = clients[role].post(reverse("console:wechat_pay_refund"),
                                  {"intent_id": paid.pk, "amount_yuan": amount, "reason": "x"})
    assert response.status_code == status
    assert Refund.objects.count() == 0
    assert not AuditLog.objects.filter(action="wechat_pay_refund").exists()
    paid.refresh_from_db()
    assert (paid.status, paid.refunded_fen) == ("paid", 0)
