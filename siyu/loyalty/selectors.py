"""Reads for the console: customers per tier, points issued/redeemed/expired per month, a customer's ledger."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from siyu.core.models import Workspace
from siyu.core.timeutil import SHANGHAI
from siyu.customers.models import Customer, CustomerStatus
from siyu.loyalty.models import (
    AccountKind,
    CustomerTier,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsTransaction,
    PointsWriteOff,
    TransactionKind,
)
from siyu.loyalty.tier_rules import TIER_CODES


def tier_distribution(*, workspace: Workspace) -> dict[str, int]:
    """Live customers per tier code (customers never evaluated count as 普通)."""
    counts = dict(CustomerTier.objects.filter(workspace=workspace, customer__status=CustomerStatus.ACTIVE)
                  .values("code").annotate(n=Count("pk")).values_list("code", "n"))
    live = Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE).count()
    ranked = sum(counts.get(code, 0) for code in TIER_CODES if code != "normal")
    result = {code: counts.get(code, 0) for code in TIER_CODES}
    result["normal"] = max(0, live - ranked)
    return result


def points_monthly(*, workspace: Workspace, months: int = 12, now: datetime | None = None) -> dict:
    """Points issued (earned + positive adjustments), redeemed (spent, net of returns) and expired per
    Shanghai month, the last ``months`` months, oldest first."""
    now = (now or timezone.now()).astimezone(SHANGHAI)
    labels = []
    year, month = now.year, now.month
    for _ in range(months):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    labels.reverse()
    start = datetime(int(labels[0][:4]), int(labels[0][5:]), 1, tzinfo=SHANGHAI)
    rows = (PointsTransaction.objects.filter(workspace=workspace, created_at__gte=start)
            .annotate(month=TruncMonth("created_at", tzinfo=SHANGHAI))
            .values("month", "kind", "reason").annotate(total=Sum("amount")))
    series: dict[str, dict[str, int]] = {"issued": defaultdict(int), "redeemed": defaultdict(int),
                                          "expired": defaultdict(int)}
    for row in rows:
        month = row["month"]
        label = (month.astimezone(SHANGHAI) if month.tzinfo else month).strftime("%Y-%m")
        total = int(row["total"] or 0)
        if row["kind"] == TransactionKind.EARN or (row["kind"] == TransactionKind.ADJUST and total > 0):
            series["issued"][label] += total
        elif row["kind"] == TransactionKind.BURN:
            series["redeemed"][label] += -total
        elif row["kind"] == TransactionKind.REVERSE and row["reason"] == "spend_returned":
            series["redeemed"][label] -= total
        elif row["kind"] == TransactionKind.EXPIRE:
            series["expired"][label] += -total
    return {"months": labels, **{name: [values.get(label, 0) for label in labels] for name, values in series.items()}}


def points_totals(*, workspace: Workspace) -> dict[str, int]:
    """Ledger totals by account: outstanding (sum of customer balances) and each system account's movement."""
    by_kind = dict(PointsEntry.objects.filter(account__workspace=workspace).values("account__kind")
                   .annotate(total=Sum("amount")).values_list("account__kind", "total"))
    # A system account holds the other side of customers' movements: issued is negative as points go out,
    # redeemed/expired positive as they come back. Shown from the customers' side, all positive.
    totals = {kind: int(by_kind.get(kind) or 0) for kind in AccountKind.values}
    totals["issued"] = -totals["issued"]
    totals["outstanding"] = int(PointsAccount.objects.filter(workspace=workspace, kind=AccountKind.CUSTOMER)
                                .aggregate(total=Sum("balance"))["total"] or 0)
    totals["written_off"] = int(PointsWriteOff.objects.filter(workspace=workspace)
                                .aggregate(total=Sum("points"))["total"] or 0)
    return totals


def customer_ledger(*, workspace: Workspace, customer: Customer, limit: int = 200) -> dict:
    """A customer's transactions newest first (with a running balance), open lots and write-offs."""
    account = PointsAccount.objects.filter(customer=customer, workspace=workspace).first()
    transactions = list(PointsTransaction.objects.filter(workspace=workspace, customer=customer)
                        .select_related("actor").order_by("-pk")[:limit])
    balance = account.balance if account else 0
    running = balance
    for tx in transactions:
        tx.balance_after = running
        running -= tx.amount
    lots = list(PointsLot.objects.filter(customer=customer, remaining__gt=0).order_by("expires_at", "pk"))
    write_offs = list(PointsWriteOff.objects.filter(workspace=workspace, customer=customer).order_by("-pk")[:50])
    return {"balance": balance, "transactions": transactions, "lots": lots, "write_offs": write_offs}
