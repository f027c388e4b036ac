"""Writes of 微信支付: prepay, reconcile by query, close, refunds. Each state change runs in a transaction
under a row lock on the intent (then the refund), and publishes its domain event on commit.

Calls to WeChat Pay never run inside a transaction that holds a lock: a refund is first reserved
(``pending``, counted against what may still be refunded), committed, then submitted; an answer that
never came leaves it ``pending`` and a later submit (same ``out_refund_no``, idempotent at WeChat Pay)
or query settles it.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.customers.ingestion import events_ingest
from siyu.wechat.pay import client, domain
from siyu.wechat.pay.client import MerchantConfig, PayApiError
from siyu.wechat.pay.events import (
    PAYMENT_PAID_AFTER_CLOSE,
    PAYMENT_SUCCEEDED,
    REFUND_FAILED,
    REFUND_SUCCEEDED,
)
from siyu.wechat.pay.merchants import merchant_config, workspace_merchant
from siyu.wechat.pay.models import PaymentIntent, Refund

logger = logging.getLogger(__name__)
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
AUTOMATIC_REFUND_REASON = "订单关闭后支付，自动退款"
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "RATELIMIT_EXCEED", "NETWORK",
                             "SDK_ERROR", "BAD_RESPONSE"})


def _invalid(field: str, zh: str, en: str) -> SiyuError:
    return SiyuError("wechat_pay_invalid", f"{field}：{zh}", f"{field}: {en}", status=400, details={"field": field})


def _upstream(error: PayApiError, action_zh: str, action_en: str) -> SiyuError:
    if error.status == 429:
        return SiyuError("wechat_pay_rate_limited", "微信支付请求过于频繁，请稍后重试",
                         "WeChat Pay rate limit reached; please retry shortly", status=429,
                         details={"wechat_code": error.code})
    return SiyuError("wechat_pay_refused" if not error.outcome_unknown else "wechat_pay_unavailable",
                     f"微信支付{action_zh}失败：{error.code} {error.message}",
                     f"WeChat Pay {action_en} failed: {error.code} {error.message}",
                     status=502 if error.outcome_unknown else 409, details={"wechat_code": error.code})


def _retryable(error: PayApiError) -> bool:
    return error.outcome_unknown or error.status == 429 or error.code in RETRYABLE_CODES


def wechat_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


# --- prepay -----------------------------------------------------------------------------------------
def payment_prepay(*, workspace: Workspace, out_trade_no: str, amount_fen: int, description: str,
                   payer_openid: str, appid: str | None = None, mchid: str | None = None,
                   expires_at: datetime | None = None) -> tuple[PaymentIntent, dict[str, str]]:
    """Create (or find again) the intent ``out_trade_no`` and get the client-side payment parameters.

    Retrying with the same arguments is safe: the same intent and, at WeChat Pay, the same prepay_id.
    """
    config = workspace_merchant(workspace=workspace, mchid=mchid)
    appid = (appid or config.appid or "").strip()
    if not appid:
        raise _invalid("appid", "必须指定支付使用的 AppID", "an AppID is required")
    if not isinstance(out_trade_no, str) or not OUT_TRADE_NO.fullmatch(out_trade_no):
        raise _invalid("out_trade_no", "须为 6–32 位数字、字母或 _-|*", "must be 6-32 of letters, digits, _-|*")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise _invalid("amount_fen", "须为正整数（分）", "must be a positive integer (fen)")
    description = (description or "").strip()
    if not description or len(description) > 127:
        raise _invalid("description", "必填且不超过 127 字", "is required (at most 127 characters)")
    if not payer_openid:
        raise _invalid("payer_openid", "必填", "is required")
    fields = {"workspace": workspace, "appid": appid, "amount_fen": amount_fen, "payer_openid": payer_openid,
              "description": description}
    try:
        with transaction.atomic():
            intent = PaymentIntent.objects.create(mchid=config.mchid, out_trade_no=out_trade_no, **fields)
    except IntegrityError:
        intent = PaymentIntent.objects.get(mchid=config.mchid, out_trade_no=out_trade_no)
        if (intent.workspace_id, intent.appid, intent.amount_fen, intent.payer_openid) != \
                (workspace.pk, appid, amount_fen, payer_openid):
            raise SiyuError("out_trade_no_reused", "商户订单号已用于另一笔不同的支付",
                            "This out_trade_no was already used for a different payment", status=409) from None
    if intent.status != domain.CREATED:
        raise SiyuError("payment_not_payable", "该支付已完成或已关闭，不能再次支付",
                        "This payment is already paid or closed", status=409, details={"status": intent.status})
    expires = timezone.localtime(expires_at).isoformat(timespec="seconds") if expires_at else None
    try:
        prepay_id = client.jsapi_prepay(config, appid=appid, out_trade_no=out_trade_no, amount_fen=amount_fen,
                                        description=description, payer_openid=payer_openid, expires_at=expires)
    except PayApiError as error:
        if error.code in {"ORDERPAID", "ORDER_CLOSED"}:
            payment_reconcile(intent_id=intent.pk)
            raise SiyuError("payment_not_payable", "该支付已完成或已关闭，不能再次支付",
                            "This payment is already paid or closed", status=409) from error
        raise _upstream(error, "下单", "prepay") from error
    PaymentIntent.objects.filter(pk=intent.pk).update(prepay_id=prepay_id, updated_at=timezone.now())
    intent.prepay_id = prepay_id
    return intent, client.client_pay_params(config, appid=appid, prepay_id=prepay_id)


# --- applying what WeChat Pay tells us (notifications and queries) ---------------------------------------
def intent_apply_paid(intent: PaymentIntent, *, transaction_id: str, paid_at: datetime | None,
                      payer_openid: str = "") -> str:
    """Record a successful payment on a LOCKED intent. Returns "accepted" or "stale" (already known).

    A payment for a closed intent is recorded and a full refund reserved (submitted after commit).
    Raises ValueError when the intent is already paid by another transaction (recorded as a mismatch).
    """
    if intent.status in domain.PAID_STATUSES:
        if intent.transaction_id and intent.transaction_id != transaction_id:
            raise ValueError("already paid by another transaction")
        return "stale"
    after_close = intent.status == domain.CLOSED
    domain.transition_check(intent.status, domain.PAID)
    intent.status = domain.PAID
    intent.transaction_id = transaction_id
    intent.paid_at = (paid_at or timezone.now()).astimezone(UTC)
    intent.paid_after_close = after_close
    intent.save(update_fields=["status", "transaction_id", "paid_at", "paid_after_close", "updated_at"])
    payload = {"workspace_id": intent.workspace_id, "mchid": intent.mchid, "appid": intent.appid,
               "out_trade_no": intent.out_trade_no, "transaction_id": transaction_id,
               "amount_fen": intent.amount_fen, "payer_openid": payer_openid or intent.payer_openid,
               "paid_at": intent.paid_at.isoformat()}
    if after_close:
        refund = Refund.objects.create(
            workspace_id=intent.workspace_id, intent=intent, mchid=intent.mchid,
            out_refund_no=f"AUTO{intent.out_trade_no}"[:64], amount_fen=intent.amount_fen,
            reason=AUTOMATIC_REFUND_REASON, automatic=True)
        domain_events.publish(PAYMENT_PAID_AFTER_CLOSE, **payload, out_refund_no=refund.out_refund_no)
        transaction.on_commit(lambda: refund_submit(refund_pk=refund.pk))
        return "accepted"
    domain_events.publish(PAYMENT_SUCCEEDED, **payload)  # the customer's timeline too: payment_customer_event
    return "accepted"


def payment_customer_event(*, workspace_id: int, mchid: str, appid: str, out_trade_no: str, transaction_id: str,
                           amount_fen: int, payer_openid: str, paid_at: str, **_: Any) -> None:
    """The payment on the customer's timeline (deterministic id: a replay or WeChat's retry is a duplicate).

    A background subscriber of ``PAYMENT_SUCCEEDED`` (``pay.tasks``): off the notification request, retried
    by the domain-event delivery when it fails; the payment itself never depends on it."""
    if not payer_openid:
        return
    workspace = Workspace.objects.get(pk=workspace_id)
    events_ingest(workspace=workspace, events=[{
        "event_id": f"wxpay:{mchid}:{transaction_id}", "type": "payment_succeeded", "occurred_at": paid_at,
        "identities": [{"kind": "openid", "namespace": appid, "value": payer_openid}],
        "properties": {"out_trade_no": out_trade_no, "amount_fen": amount_fen},
    }])


def intent_apply_closed(intent: PaymentIntent) -> str:
    if intent.status == domain.CLOSED:
        return "stale"
    if intent.status != domain.CREATED:
        return "stale"  # paid already: a close can no longer apply
    intent.status = domain.CLOSED
    intent.closed_at = timezone.now()
    intent.save(update_fields=["status", "closed_at", "updated_at"])
    return "accepted"


def refund_apply_status(intent: PaymentIntent, refund: Refund, *, status: str, refund_id: str = "",
                        succeeded_at: datetime | None = None) -> str:
    """Move a LOCKED refund (of its LOCKED intent) to WeChat's status. Returns "accepted" or "stale"."""
    if refund.status == status or refund.status in domain.REFUND_FINAL:
        if refund_id and not refund.refund_id:
            Refund.objects.filter(pk=refund.pk).update(refund_id=refund_id)
        return "stale"
    refund.status = status
    refund.refund_id = refund_id or refund.refund_id
    fields = ["status", "refund_id", "updated_at"]
    if status == domain.REFUND_SUCCEEDED:
        refund.succeeded_at = succeeded_at or timezone.now()
        fields.append("succeeded_at")
        intent.refunded_fen += refund.amount_fen
        intent.status = domain.status_after_refunds(amount_fen=intent.amount_fen, refunded_fen=intent.refunded_fen)
        intent.save(update_fields=["refunded_fen", "status", "updated_at"])
        domain_events.publish(REFUND_SUCCEEDED, workspace_id=intent.workspace_id, mchid=intent.mchid,
                              out_trade_no=intent.out_trade_no, transaction_id=intent.transaction_id,
                              out_refund_no=refund.out_refund_no, refund_id=refund.refund_id,
                              amount_fen=refund.amount_fen, payer_openid=intent.payer_openid,
                              automatic=refund.automatic, intent_status=intent.status)
    elif status in {domain.REFUND_CLOSED, domain.REFUND_FAILED}:
        domain_events.publish(REFUND_FAILED, workspace_id=intent.workspace_id, mchid=intent.mchid,
                              out_trade_no=intent.out_trade_no, out_refund_no=refund.out_refund_no,
                              amount_fen=refund.amount_fen, status=status, automatic=refund.automatic)
    refund.save(update_fields=fields)
    return "accepted"


def payment_reconcile(*, intent_id: int) -> PaymentIntent:
    """Ask WeChat Pay for the order and apply what it says (late, lost or out-of-order notifications)."""
    intent = PaymentIntent.objects.get(pk=intent_id)
    config = merchant_config(mchid=intent.mchid)
    try:
        answer = client.order_query(config, out_trade_no=intent.out_trade_no)
    except PayApiError as error:
        if error.code == "ORDER_NOT_EXIST":
            return intent
        raise _upstream(error, "查单", "query") from error
    with transaction.atomic():
        intent = PaymentIntent.objects.select_for_update().get(pk=intent_id)
        state = answer.get("trade_state")
        total = (answer.get("amount") or {}).get("total")
        if total != intent.amount_fen or answer.get("mchid") != intent.mchid:
            raise SiyuError("wechat_pay_mismatch", "微信支付返回的订单金额或商户号与本地不一致",
                            "WeChat Pay's order does not match ours (amount or merchant)", status=409)
        if state in {"SUCCESS", "REFUND"} and answer.get("transaction_id"):
            try:
                intent_apply_paid(intent, transaction_id=str(answer["transaction_id"]),
                                  paid_at=wechat_time(answer.get("success_time")),
                                  payer_openid=str((answer.get("payer") or {}).get("openid") or ""))
            except ValueError as error:
                raise SiyuError("wechat_pay_mismatch", "该订单已由另一笔微信支付交易支付",
                                "This order was paid by another transaction", status=409) from error
        elif state == "CLOSED":
            intent_apply_closed(intent)
    return intent


def payment_close(*, intent_id: int) -> PaymentIntent:
    """Close an unpaid intent at WeChat Pay and here. Already paid → it is marked paid instead (409).

    If WeChat Pay cannot be reached the intent is closed here all the same: the shop has given up on it,
    and a payment that still arrives is refunded automatically.
    """
    intent = PaymentIntent.objects.get(pk=intent_id)
    if intent.status != domain.CREATED:
        if intent.status == domain.CLOSED:
            return intent
        raise SiyuError("payment_not_closable", "该支付已完成，不能关闭", "This payment is paid and cannot be closed",
                        status=409)
    config = merchant_config(mchid=intent.mchid)
    try:
        client.order_close(config, out_trade_no=intent.out_trade_no)
    except PayApiError as error:
        if error.code == "ORDERPAID":
            intent = payment_reconcile(intent_id=intent_id)
            raise SiyuError("payment_not_closable", "该支付已完成，不能关闭",
                            "This payment is paid and cannot be closed", status=409) from error
        if not (_retryable(error) or error.code == "ORDER_NOT_EXIST"):
            raise _upstream(error, "关单", "close") from error
    with transaction.atomic():
        intent = PaymentIntent.objects.select_for_update().get(pk=intent_id)
        intent_apply_closed(intent)
    return intent


# --- refunds ----------------------------------------------------------------------------------------
def refundable(intent: PaymentIntent) -> domain.Refundable:
    held = (Refund.objects.filter(intent=intent, status__in=domain.REFUND_HOLDS_MONEY)
            .aggregate(total=Sum("amount_fen"))["total"]) or 0
    paid = intent.amount_fen if intent.status in domain.PAID_STATUSES else 0
    return domain.Refundable(paid_fen=paid, held_fen=held)


def refund_request(*, intent_id: int, amount_fen: int, reason: str = "", actor: Any = None,
                   out_refund_no: str | None = None, submit: bool = True) -> Refund:
    """Reserve a refund of ``amount_fen`` (never more than what was paid and not yet refunded), then submit.

    The intent row lock makes concurrent requests queue, so together they never exceed the payment.
    Repeating a request with the same ``out_refund_no`` and amount returns the same refund.
    """
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise _invalid("amount_fen", "退款金额须为正整数（分）", "must be a positive integer (fen)")
    reason = (reason or "").strip()[:80]
    if out_refund_no is not None and not OUT_REFUND_NO.fullmatch(out_refund_no):
        raise _invalid("out_refund_no", "须为 1–64 位数字、字母或 _-|*@", "must be 1-64 of letters, digits, _-|*@")
    with transaction.atomic():
        intent = PaymentIntent.objects.select_for_update().get(pk=intent_id)
        if out_refund_no:
            existing = Refund.objects.filter(mchid=intent.mchid, out_refund_no=out_refund_no).first()
            if existing is not None:
                if (existing.intent_id, existing.amount_fen) != (intent.pk, amount_fen):
                    raise SiyuError("out_refund_no_reused", "退款单号已用于另一笔退款",
                                    "This out_refund_no was already used for another refund", status=409)
                return existing
        if intent.status not in domain.PAID_STATUSES:
            raise SiyuError("payment_not_paid", "该订单尚未支付，不能退款", "This payment is not paid", status=409)
        room = refundable(intent)
        if not room.allows(amount_fen):
            raise SiyuError("refund_exceeds_paid", f"退款金额超过可退金额（可退 {domain.yuan(room.remaining_fen)} 元）",
                            f"The refund exceeds what may still be refunded ({domain.yuan(room.remaining_fen)} yuan)",
                            status=409, details={"remaining_fen": room.remaining_fen})
        refund = Refund.objects.create(
            workspace_id=intent.workspace_id, intent=intent, mchid=intent.mchid,
            out_refund_no=out_refund_no or f"R{timezone.now():%y%m%d%H%M%S}{secrets.token_hex(6).upper()}",
            amount_fen=amount_fen, reason=reason, created_by=actor if getattr(actor, "is_authenticated", False)
            else None)
        if actor is not None:
            audit_record(workspace=intent.workspace, actor=actor, action="wechat_pay_refund", target_type="refund",
                         target_id=refund.pk, out_trade_no=intent.out_trade_no, out_refund_no=refund.out_refund_no,
                         amount_fen=amount_fen, reason=reason)
    if submit:
        return refund_submit(refund_pk=refund.pk)
    return refund


def refund_submit(*, refund_pk: int) -> Refund:
    """Send a reserved refund to WeChat Pay (again, if an earlier answer was lost)."""
    refund = Refund.objects.select_related("intent").get(pk=refund_pk)
    if refund.status != domain.REFUND_PENDING:
        return refund
    config = merchant_config(mchid=refund.mchid)
    try:
        answer = client.refund_create(config, out_trade_no=refund.intent.out_trade_no,
                                      out_refund_no=refund.out_refund_no, amount_fen=refund.amount_fen,
                                      total_fen=refund.intent.amount_fen, reason=refund.reason)
    except PayApiError as error:
        if _retryable(error):
            Refund.objects.filter(pk=refund.pk).update(failure=f"{error.code} {error.message}"[:200],
                                                       updated_at=timezone.now())
            refund.refresh_from_db()
            return refund
        with transaction.atomic():
            intent = PaymentIntent.objects.select_for_update().get(pk=refund.intent_id)
            refund = Refund.objects.select_for_update().get(pk=refund_pk)
            if refund.status == domain.REFUND_PENDING:
                refund.failure = f"{error.code} {error.message}"[:200]
                refund.save(update_fields=["failure", "updated_at"])
                refund_apply_status(intent, refund, status=domain.REFUND_FAILED)
        return refund
    return _refund_apply_answer(refund_pk, answer)


def _refund_apply_answer(refund_pk: int, answer: dict[str, Any]) -> Refund:
    status = domain.WECHAT_REFUND_STATUS.get(str(answer.get("status")), domain.REFUND_PROCESSING)
    with transaction.atomic():
        refund = Refund.objects.get(pk=refund_pk)
        intent = PaymentIntent.objects.select_for_update().get(pk=refund.intent_id)
        refund = Refund.objects.select_for_update().get(pk=refund_pk)
        if refund.status == domain.REFUND_PENDING and status != domain.REFUND_PROCESSING:
            refund_apply_status(intent, refund, status=domain.REFUND_PROCESSING, refund_id=str(answer.get("refund_id") or ""))
        refund_apply_status(intent, refund, status=status, refund_id=str(answer.get("refund_id") or ""),
                            succeeded_at=wechat_time(answer.get("success_time")))
    return refund


def refund_reconcile(*, refund_pk: int) -> Refund:
    """Ask WeChat Pay for a refund's status and apply it; a pending one never received is submitted again."""
    refund = Refund.objects.get(pk=refund_pk)
    if refund.status in domain.REFUND_FINAL:
        return refund
    config = merchant_config(mchid=refund.mchid)
    try:
        answer = client.refund_query(config, out_refund_no=refund.out_refund_no)
    except PayApiError as error:
        if error.code == "RESOURCE_NOT_EXISTS" and refund.status == domain.REFUND_PENDING:
            return refund_submit(refund_pk=refund_pk)
        raise _upstream(error, "查询退款", "refund query") from error
    return _refund_apply_answer(refund_pk, answer)


def intent_for(*, workspace: Workspace, out_trade_no: str, mchid: str | None = None) -> PaymentIntent:
    config: MerchantConfig = workspace_merchant(workspace=workspace, mchid=mchid)
    intent = PaymentIntent.objects.filter(workspace=workspace, mchid=config.mchid, out_trade_no=out_trade_no).first()
    if intent is None:
        raise SiyuError("not_found", "支付单不存在", "Payment not found", status=404)
    return intent


def pay_reconcile_due(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Settle what notifications have not: refunds never accepted (resubmitted) or still processing
    (queried), and unpaid intents whose payment notification may have been lost (queried). Run periodically."""
    now = now or timezone.now()
    counts = {"refunds": 0, "intents": 0, "errors": 0}
    due_refunds = list(Refund.objects.filter(
        Q(status=domain.REFUND_PENDING, updated_at__lte=now - timedelta(minutes=1))
        | Q(status=domain.REFUND_PROCESSING, updated_at__lte=now - timedelta(minutes=10))
    ).order_by("updated_at").values_list("pk", flat=True)[:limit])
    for pk in due_refunds:
        try:
            refund_reconcile(refund_pk=pk)
            counts["refunds"] += 1
        except SiyuError:
            counts["errors"] += 1
    due_intents = list(PaymentIntent.objects.filter(
        status=domain.CREATED, created_at__lte=now - timedelta(minutes=10), created_at__gte=now - timedelta(days=2),
    ).exclude(prepay_id="").order_by("created_at").values_list("pk", flat=True)[:limit])
    for pk in due_intents:
        try:
            payment_reconcile(intent_id=pk)
            counts["intents"] += 1
        except SiyuError:
            counts["errors"] += 1
    return counts
