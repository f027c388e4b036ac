"""Reads of 微信支付 for the console: recent payments, refunds and the notification inbox of a workspace."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, Sum

from siyu.core.models import Workspace
from siyu.wechat.pay import domain
from siyu.wechat.pay.models import PaymentIntent, PaymentNotification, Refund


@dataclass(frozen=True)
class PaymentRow:
    intent: PaymentIntent
    amount_yuan: str
    refunded_yuan: str
    refundable_fen: int

    @property
    def refundable_yuan(self) -> str:
        return domain.yuan(self.refundable_fen)


def payments_recent(*, workspace: Workspace, status: str = "", limit: int = 50) -> list[PaymentRow]:
    queryset = PaymentIntent.objects.filter(workspace=workspace)
    if status in domain.TRANSITIONS:
        queryset = queryset.filter(status=status)
    intents = list(queryset.order_by("-created_at", "-pk")[:limit].annotate(
        held_fen=Sum("refunds__amount_fen", filter=Q(refunds__status__in=domain.REFUND_HOLDS_MONEY))))
    rows = []
    for intent in intents:
        paid = intent.amount_fen if intent.status in domain.PAID_STATUSES else 0
        room = domain.Refundable(paid_fen=paid, held_fen=intent.held_fen or 0)
        rows.append(PaymentRow(intent, domain.yuan(intent.amount_fen), domain.yuan(intent.refunded_fen),
                               room.remaining_fen))
    return rows


def refunds_recent(*, workspace: Workspace, limit: int = 50) -> list[Refund]:
    refunds = list(Refund.objects.filter(workspace=workspace).select_related("intent", "created_by")
                   .order_by("-created_at", "-pk")[:limit])
    for refund in refunds:
        refund.amount_yuan = domain.yuan(refund.amount_fen)
    return refunds


def notifications_recent(*, workspace: Workspace, outcome: str = "", limit: int = 50) -> list[PaymentNotification]:
    """The workspace's inbox, rejections included (a rejected one is filed under the merchant's workspace)."""
    queryset = PaymentNotification.objects.filter(workspace=workspace)
    if outcome:
        queryset = queryset.filter(outcome=outcome)
    rows = list(queryset.order_by("-received_at", "-pk")[:limit])
    for row in rows:
        row.amount_yuan = domain.yuan(row.amount_fen) if row.amount_fen is not None else ""
    return rows


def payment_totals(*, workspace: Workspace) -> dict[str, str]:
    paid = PaymentIntent.objects.filter(workspace=workspace, status__in=domain.PAID_STATUSES)
    totals = paid.aggregate(paid=Sum("amount_fen"), refunded=Sum("refunded_fen"))
    return {"paid_yuan": domain.yuan(totals["paid"] or 0), "refunded_yuan": domain.yuan(totals["refunded"] or 0),
            "paid_count": str(paid.count())}
