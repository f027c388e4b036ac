"""How the commerce layer takes payments: the :class:`PaymentProvider` interface and its WeChat Pay implementation.

Commerce calls a provider with its own order number as ``out_trade_no`` and learns the outcome from the
domain events below, delivered on commit (``siyu.core.domain_events.subscribe``). A payment notification
is applied exactly once, so each event is published once per fact:

- ``PAYMENT_SUCCEEDED``: workspace_id, mchid, appid, out_trade_no, transaction_id, amount_fen,
  payer_openid, paid_at (ISO).
- ``PAYMENT_PAID_AFTER_CLOSE``: the same plus out_refund_no — the intent had been closed; the money is
  being refunded automatically (commerce must not fulfil the order).
- ``REFUND_SUCCEEDED``: workspace_id, mchid, out_trade_no, transaction_id, out_refund_no, refund_id,
  amount_fen, payer_openid, automatic, intent_status.
- ``REFUND_FAILED``: workspace_id, mchid, out_trade_no, out_refund_no, amount_fen, status (closed|failed),
  automatic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.wechat.pay import services
from siyu.wechat.pay.events import (  # noqa: F401 - re-exported: the provider's contract
    PAYMENT_PAID_AFTER_CLOSE,
    PAYMENT_SUCCEEDED,
    REFUND_FAILED,
    REFUND_SUCCEEDED,
)
from siyu.wechat.pay.models import PaymentIntent, Refund


@dataclass(frozen=True)
class Prepay:
    out_trade_no: str
    prepay_id: str
    client_params: dict[str, str]  # appId, timeStamp, nonceStr, package, signType, paySign


@dataclass(frozen=True)
class PaymentState:
    out_trade_no: str
    status: str  # created | paid | closed | refunded_partially | refunded
    amount_fen: int
    refunded_fen: int
    transaction_id: str
    payer_openid: str
    paid_at: datetime | None
    paid_after_close: bool


@dataclass(frozen=True)
class RefundState:
    out_trade_no: str
    out_refund_no: str
    status: str  # pending | processing | succeeded | abnormal | closed | failed
    amount_fen: int
    refund_id: str


class PaymentProvider(Protocol):
    """What a payment provider offers the commerce layer. Errors are ``SiyuError`` with stable codes."""

    def prepay(self, *, workspace: Workspace, out_trade_no: str, amount_fen: int, description: str,
               payer_openid: str, appid: str | None = None, expires_at: datetime | None = None) -> Prepay:
        """Start a JSAPI / mini-program payment; the client hands ``client_params`` to WeChat."""

    def query(self, *, workspace: Workspace, out_trade_no: str) -> PaymentState:
        """The payment as WeChat Pay knows it now (reconciled locally)."""

    def close(self, *, workspace: Workspace, out_trade_no: str) -> PaymentState:
        """Stop an unpaid payment; a payment arriving afterwards is refunded automatically."""

    def refund(self, *, workspace: Workspace, out_trade_no: str, amount_fen: int, reason: str = "",
               out_refund_no: str | None = None, actor: Any = None) -> RefundState:
        """Refund part or all of a paid payment (never more than what remains)."""

    def refund_query(self, *, workspace: Workspace, out_refund_no: str) -> RefundState:
        """The refund as WeChat Pay knows it now (reconciled locally)."""


class WeChatPayProvider:
    """微信支付 v3 through :mod:`siyu.wechat.pay.services` (wechatpayv3 underneath)."""

    def __init__(self, *, mchid: str | None = None):
        self.mchid = mchid  # a workspace with several merchants picks one; default: its first

    def prepay(self, *, workspace: Workspace, out_trade_no: str, amount_fen: int, description: str,
               payer_openid: str, appid: str | None = None, expires_at: datetime | None = None) -> Prepay:
        intent, params = services.payment_prepay(
            workspace=workspace, out_trade_no=out_trade_no, amount_fen=amount_fen, description=description,
            payer_openid=payer_openid, appid=appid, mchid=self.mchid, expires_at=expires_at)
        return Prepay(intent.out_trade_no, intent.prepay_id, params)

    def query(self, *, workspace: Workspace, out_trade_no: str) -> PaymentState:
        intent = services.intent_for(workspace=workspace, out_trade_no=out_trade_no, mchid=self.mchid)
        return payment_state(services.payment_reconcile(intent_id=intent.pk))

    def close(self, *, workspace: Workspace, out_trade_no: str) -> PaymentState:
        intent = services.intent_for(workspace=workspace, out_trade_no=out_trade_no, mchid=self.mchid)
        return payment_state(services.payment_close(intent_id=intent.pk))

    def refund(self, *, workspace: Workspace, out_trade_no: str, amount_fen: int, reason: str = "",
               out_refund_no: str | None = None, actor: Any = None) -> RefundState:
        intent = services.intent_for(workspace=workspace, out_trade_no=out_trade_no, mchid=self.mchid)
        refund = services.refund_request(intent_id=intent.pk, amount_fen=amount_fen, reason=reason, actor=actor,
                                         out_refund_no=out_refund_no)
        return refund_state(refund)

    def refund_query(self, *, workspace: Workspace, out_refund_no: str) -> RefundState:
        refund = Refund.objects.filter(workspace=workspace, out_refund_no=out_refund_no).first()
        if refund is None:
            raise SiyuError("not_found", "退款单不存在", "Refund not found", status=404)
        return refund_state(services.refund_reconcile(refund_pk=refund.pk))


def payment_state(intent: PaymentIntent) -> PaymentState:
    return PaymentState(intent.out_trade_no, intent.status, intent.amount_fen, intent.refunded_fen,
                        intent.transaction_id, intent.payer_openid, intent.paid_at, intent.paid_after_close)


def refund_state(refund: Refund) -> RefundState:
    return RefundState(refund.intent.out_trade_no, refund.out_refund_no, refund.status, refund.amount_fen,
                       refund.refund_id)
