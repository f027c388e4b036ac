"""Payment and refund notifications from WeChat Pay, applied exactly once.

Order of work: verify and decrypt (no database), then — in one transaction — insert the inbox row under
its unique keys (the notification id, and the resource's transaction_id/refund_id + state), and only
then lock the intent and apply. A second copy, however concurrent, fails the unique insert and is
recorded as a duplicate. Anything that does not match the intent (merchant, AppID, amount) is recorded
as rejected and answered FAIL, changing nothing. Late notifications change nothing ("stale"); a refund
notification that arrives before its payment's is reconciled by querying the order first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from siyu.core.errors import SiyuError
from siyu.wechat.pay import domain, services
from siyu.wechat.pay.client import MerchantConfig, NotificationRejected, notification_open
from siyu.wechat.pay.merchants import merchant_config
from siyu.wechat.pay.models import NotificationOutcome, PaymentIntent, PaymentNotification, Refund

TRANSACTION, REFUND = "transaction", "refund"
REJECTION_STATUS = {"missing_headers": 400, "wrong_serial": 401, "stale_timestamp": 401, "bad_signature": 401,
                    "decrypt_failed": 400, "malformed": 400, "unknown_merchant": 404}


@dataclass(frozen=True)
class Answer:
    """What we tell WeChat Pay: 204 when handled (also for duplicates), else a status and {"code":"FAIL"}."""

    status: int
    outcome: str
    reason: str = ""
    message: str = ""

    @property
    def body(self) -> dict[str, str] | None:
        return None if self.status < 300 else {"code": "FAIL", "message": self.message or self.reason}


class _Mismatch(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def notification_receive(*, mchid: str, kind: str, headers: dict[str, str], body: bytes) -> Answer:
    try:
        config = merchant_config(mchid=mchid)
    except SiyuError as error:
        _record(None, mchid, kind, {}, NotificationOutcome.REJECTED, "unknown_merchant", error.message_en)
        return Answer(404, "rejected", "unknown_merchant", "商户号未接入")
    try:
        envelope = notification_open(config, headers=headers, body=body)
    except NotificationRejected as rejected:
        _record(config.workspace_id, mchid, kind, {}, NotificationOutcome.REJECTED, rejected.reason, rejected.detail)
        return Answer(REJECTION_STATUS.get(rejected.reason, 400), "rejected", rejected.reason,
                      "验签或解密失败" if rejected.reason != "stale_timestamp" else "通知时间戳超出允许范围")
    resource = envelope["resource"]
    if kind == TRANSACTION:
        return _transaction(config, envelope, resource)
    return _refund(config, envelope, resource)


def _facts(kind: str, envelope: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    return {
        "notification_id": str(envelope.get("id") or "")[:64], "event_type": str(envelope.get("event_type") or "")[:32],
        "out_trade_no": str(resource.get("out_trade_no") or "")[:32],
        "transaction_id": str(resource.get("transaction_id") or "")[:32],
        "out_refund_no": str(resource.get("out_refund_no") or "")[:64],
        "state": str(resource.get("trade_state") if kind == TRANSACTION else resource.get("refund_status") or "")[:24],
        "amount_fen": amount.get("total") if kind == TRANSACTION else amount.get("refund"),
    }


def _record(workspace_id: int | None, mchid: str, kind: str, facts: dict[str, Any], outcome: str, reason: str = "",
            detail: str = "", **keys: str) -> PaymentNotification:
    amount = facts.get("amount_fen")
    return PaymentNotification.objects.create(
        workspace_id=workspace_id, mchid=mchid[:32], kind=kind, outcome=outcome, reason=reason, detail=detail[:300],
        **{**{name: value for name, value in facts.items() if name != "amount_fen"},
           "amount_fen": amount if isinstance(amount, int) and not isinstance(amount, bool) else None}, **keys)


def _check(condition: bool, reason: str, detail: str = "") -> None:
    if not condition:
        raise _Mismatch(reason, detail)


def _inbox_first(config: MerchantConfig, kind: str, facts: dict[str, Any], resource_key: str) -> PaymentNotification | None:
    """Insert the inbox row under both unique keys; None when either key was seen (a duplicate)."""
    try:
        with transaction.atomic():
            return _record(config.workspace_id, config.mchid, kind, facts, NotificationOutcome.ACCEPTED,
                           notification_key=f"{config.mchid}:{facts['notification_id']}",
                           resource_key=f"{config.mchid}:{resource_key}")
    except IntegrityError:
        return None


def _process(config: MerchantConfig, kind: str, facts: dict[str, Any], resource_key: str, apply) -> Answer:
    """The common frame: inbox row first, then ``apply(inbox)`` → outcome; a mismatch rolls back to a
    rejection row (keys cleared) so WeChat's retry is judged afresh."""
    try:
        with transaction.atomic():
            inbox = _inbox_first(config, kind, facts, resource_key)
            if inbox is None:
                _record(config.workspace_id, config.mchid, kind, facts, NotificationOutcome.DUPLICATE, "duplicate")
                return Answer(204, "duplicate")
            outcome = apply(inbox)
            if outcome != NotificationOutcome.ACCEPTED:
                inbox.outcome = outcome
                inbox.save(update_fields=["outcome"])
            return Answer(204, outcome)
    except _Mismatch as mismatch:
        _record(config.workspace_id, config.mchid, kind, facts, NotificationOutcome.REJECTED, mismatch.reason,
                mismatch.detail)
        return Answer(400, "rejected", mismatch.reason, "通知与订单不一致")


def _transaction(config: MerchantConfig, envelope: dict[str, Any], resource: dict[str, Any]) -> Answer:
    facts = _facts(TRANSACTION, envelope, resource)
    try:
        _check(resource.get("mchid") == config.mchid, "mchid_mismatch", str(resource.get("mchid"))[:40])
        _check(bool(facts["out_trade_no"] and facts["transaction_id"] and facts["state"]), "malformed",
               "out_trade_no, transaction_id and trade_state are required")
    except _Mismatch as mismatch:
        _record(config.workspace_id, config.mchid, TRANSACTION, facts, NotificationOutcome.REJECTED, mismatch.reason,
                mismatch.detail)
        return Answer(400, "rejected", mismatch.reason, "通知与订单不一致")
    payer = resource.get("payer") if isinstance(resource.get("payer"), dict) else {}

    def apply(inbox: PaymentNotification) -> str:
        intent = PaymentIntent.objects.select_for_update().filter(mchid=config.mchid,
                                                                  out_trade_no=facts["out_trade_no"]).first()
        _check(intent is not None, "unknown_order", facts["out_trade_no"])
        _check(resource.get("appid") == intent.appid, "appid_mismatch", str(resource.get("appid"))[:40])
        _check(facts["amount_fen"] == intent.amount_fen, "amount_mismatch",
               f"notified {facts['amount_fen']!r}, expected {intent.amount_fen}")
        _check((resource.get("amount") or {}).get("currency", "CNY") == intent.currency, "currency_mismatch")
        if inbox.workspace_id != intent.workspace_id:
            inbox.workspace_id = intent.workspace_id
            inbox.save(update_fields=["workspace"])
        if facts["state"] != "SUCCESS":
            return NotificationOutcome.STALE
        try:
            outcome = services.intent_apply_paid(intent, transaction_id=facts["transaction_id"],
                                                 paid_at=services.wechat_time(resource.get("success_time")),
                                                 payer_openid=str(payer.get("openid") or ""))
        except ValueError as error:
            raise _Mismatch("transaction_mismatch", str(error)) from error
        return NotificationOutcome.ACCEPTED if outcome == "accepted" else NotificationOutcome.STALE

    return _process(config, TRANSACTION, facts, f"txn:{facts['transaction_id']}:{facts['state']}", apply)


def _refund(config: MerchantConfig, envelope: dict[str, Any], resource: dict[str, Any]) -> Answer:
    facts = _facts(REFUND, envelope, resource)
    status = domain.WECHAT_REFUND_STATUS.get(facts["state"])
    refund_id = str(resource.get("refund_id") or "")[:32]
    try:
        _check(resource.get("mchid") == config.mchid, "mchid_mismatch", str(resource.get("mchid"))[:40])
        _check(bool(facts["out_trade_no"] and facts["out_refund_no"] and refund_id and status), "malformed",
               "out_trade_no, out_refund_no, refund_id and refund_status are required")
    except _Mismatch as mismatch:
        _record(config.workspace_id, config.mchid, REFUND, facts, NotificationOutcome.REJECTED, mismatch.reason,
                mismatch.detail)
        return Answer(400, "rejected", mismatch.reason, "通知与订单不一致")
    intent = PaymentIntent.objects.filter(mchid=config.mchid, out_trade_no=facts["out_trade_no"]).first()
    if intent is not None and intent.status not in domain.PAID_STATUSES:
        # Out of order: the refund came before the payment's notification — ask WeChat Pay. If that fails,
        # the unpaid intent rejects the notification below and WeChat Pay retries later.
        with contextlib.suppress(SiyuError):
            services.payment_reconcile(intent_id=intent.pk)

    def apply(inbox: PaymentNotification) -> str:
        intent = PaymentIntent.objects.select_for_update().filter(mchid=config.mchid,
                                                                  out_trade_no=facts["out_trade_no"]).first()
        _check(intent is not None, "unknown_order", facts["out_trade_no"])
        amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
        _check(amount.get("total") == intent.amount_fen, "amount_mismatch",
               f"order total {amount.get('total')!r}, expected {intent.amount_fen}")
        _check(intent.status in domain.PAID_STATUSES, "order_not_paid", intent.status)
        if inbox.workspace_id != intent.workspace_id:
            inbox.workspace_id = intent.workspace_id
            inbox.save(update_fields=["workspace"])
        refund = Refund.objects.select_for_update().filter(mchid=config.mchid,
                                                           out_refund_no=facts["out_refund_no"]).first()
        refund_fen = facts["amount_fen"]
        if refund is None:
            # A refund made outside Siyu (e.g. on the merchant platform): recorded if it fits what was paid.
            room = services.refundable(intent)
            _check(isinstance(refund_fen, int) and room.allows(refund_fen), "refund_exceeds_paid",
                   f"refund {refund_fen!r}, remaining {room.remaining_fen}")
            refund = Refund.objects.create(workspace_id=intent.workspace_id, intent=intent, mchid=intent.mchid,
                                           out_refund_no=facts["out_refund_no"], amount_fen=refund_fen,
                                           status=domain.REFUND_PROCESSING, refund_id=refund_id,
                                           reason="商户平台发起的退款")
        _check(refund.intent_id == intent.pk, "refund_mismatch", "refund belongs to another order")
        _check(refund_fen == refund.amount_fen, "amount_mismatch",
               f"refund {refund_fen!r}, expected {refund.amount_fen}")
        if refund.status == domain.REFUND_PENDING:
            services.refund_apply_status(intent, refund, status=domain.REFUND_PROCESSING, refund_id=refund_id)
        outcome = services.refund_apply_status(intent, refund, status=status, refund_id=refund_id,
                                               succeeded_at=services.wechat_time(resource.get("success_time")))
        return NotificationOutcome.ACCEPTED if outcome == "accepted" else NotificationOutcome.STALE

    return _process(config, REFUND, facts, f"refund:{refund_id}:{facts['state']}", apply)
