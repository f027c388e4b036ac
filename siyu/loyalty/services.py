"""Loyalty's reactions to orders (it never imports commerce: it learns about orders from domain events).

OrderPaid → points (the workspace's rate per yuan paid, default 1) + growth value + an immediate upgrade check.
OrderRefunded → the order's earned points and growth taken back in proportion to what has been refunded so far
(cumulative, so partial refunds never drift by rounding and a full refund takes back everything), never making
a balance negative (see ``points_reverse_earn``). Each step is idempotent by a ref built from the order, so a
replayed or duplicated event changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.loyalty.models import GrowthEntry, PointsTransaction, PointsWriteOff, Reason, TransactionKind
from siyu.loyalty.points import (
    customer_live,
    points_earn,
    points_follow_merge,
    points_for_paid_fen,
    points_reverse_earn,
)
from siyu.loyalty.tiers import growth_follow_merge, growth_for_paid_fen, growth_record, tier_evaluate

logger = logging.getLogger(__name__)

# The names commerce.orders publishes (siyu/commerce/orders/events.py); repeated here because loyalty sits below
# commerce and must not import it.
ORDER_PAID = "orders.order_paid"
ORDER_REFUNDED = "orders.order_refunded"


def order_earn_ref(order_id: int | str) -> str:
    return f"order:{order_id}"


def _live_customer(workspace: Workspace, customer_id: int) -> Customer | None:
    """The customer, or the one they were merged into (points follow the person)."""
    customer = Customer.objects.filter(pk=customer_id, workspace=workspace).first()
    return customer_live(customer) if customer is not None else None


def order_paid_apply(*, workspace_id: int, order_id: int, customer_id: int | None, paid_fen: int,
                     paid_at: datetime | None = None) -> dict:
    """Earn points and growth for a paid order (idempotent by order id)."""
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None or not customer_id or int(paid_fen) <= 0:
        return {"points": 0, "growth": 0}
    customer = _live_customer(workspace, int(customer_id))
    if customer is None:
        return {"points": 0, "growth": 0}
    at = paid_at or timezone.now()
    ref = order_earn_ref(order_id)
    points = points_for_paid_fen(workspace=workspace, paid_fen=int(paid_fen))
    growth = growth_for_paid_fen(workspace=workspace, paid_fen=int(paid_fen))
    with transaction.atomic():
        if points > 0:
            points_earn(workspace=workspace, customer=customer, amount=points, reason=Reason.PURCHASE, ref=ref,
                        at=at, details={"order_id": order_id, "paid_fen": int(paid_fen)})
        growth_record(workspace=workspace, customer=customer, source="order_paid", ref=ref, spend_fen=int(paid_fen),
                      growth=growth, at=at)
    tier_evaluate(customer=customer, allow_downgrade=False, reason="order_paid")
    return {"points": points, "growth": growth}


def order_refunded_apply(*, workspace_id: int, order_id: int, customer_id: int | None, amount_fen: int,
                         refunded_fen: int | None = None, out_refund_no: str = "") -> dict:
    """Take back the refunded share of an order's points and growth (idempotent by refund number)."""
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None or not customer_id:
        return {"points": 0, "growth": 0}
    earn_ref = order_earn_ref(order_id)
    refund_ref = f"refund:{order_id}:{out_refund_no or amount_fen}"
    paid = GrowthEntry.objects.filter(workspace=workspace, source="order_paid", ref=earn_ref).first()
    if paid is None or paid.spend_fen <= 0:
        return {"points": 0, "growth": 0}  # no growth or points were given for this order
    refunded_total = min(int(refunded_fen if refunded_fen is not None else amount_fen), paid.spend_fen)

    # Growth: cumulative share of the order's growth, minus what earlier refunds already took.
    growth_target = paid.growth * refunded_total // paid.spend_fen
    growth_taken = -(GrowthEntry.objects.filter(workspace=workspace, source="order_refunded",
                                                ref__startswith=f"refund:{order_id}:")
                     .aggregate(total=Sum("growth"))["total"] or 0)
    growth_now = max(0, growth_target - growth_taken)
    growth_record(workspace=workspace, customer=paid.customer, source="order_refunded", ref=refund_ref,
                  spend_fen=-min(int(amount_fen), paid.spend_fen), growth=-growth_now)

    points_now = 0
    earn = PointsTransaction.objects.filter(workspace=workspace, kind=TransactionKind.EARN, ref=earn_ref).first()
    if earn is not None:
        target = earn.amount * refunded_total // paid.spend_fen
        done = -(PointsTransaction.objects.filter(reverses=earn).aggregate(total=Sum("amount"))["total"] or 0)
        forgiven = PointsWriteOff.objects.filter(earn=earn).aggregate(total=Sum("points"))["total"] or 0
        wanted = target - done - forgiven
        if wanted > 0:
            tx = points_reverse_earn(workspace=workspace, earn_ref=earn_ref, ref=refund_ref, amount=wanted)
            points_now = -tx.amount if tx is not None else 0
    return {"points": points_now, "growth": growth_now}


def customers_merged_apply(*, workspace_id: int, customer_ids: list[int]) -> dict:
    """After a merge, the merged-away profiles' points and growth move to the surviving profile (idempotent:
    an emptied profile has nothing left to move). Un-merges leave both where they are."""
    moved = {"points": 0, "growth_entries": 0}
    merged = Customer.objects.filter(workspace_id=workspace_id, pk__in=customer_ids, status="merged")
    for customer in merged.order_by("pk"):
        target = customer_live(customer)
        if target is None or target.pk == customer.pk:
            continue
        moved["points"] += points_follow_merge(customer=customer)
        entries = growth_follow_merge(customer=customer, target=target)
        moved["growth_entries"] += entries
        if entries:
            tier_evaluate(customer=target, allow_downgrade=False, reason="merge")
    return moved
