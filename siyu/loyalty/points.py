"""The points ledger's services: earn, spend, return, reverse, expire, adjust — each one transaction.

Every movement locks the customer's account row (``SELECT … FOR UPDATE``), so movements of one customer are
serialised; the cached balance is then moved by a conditional ``UPDATE … WHERE balance >= n`` (and a CHECK
constraint) so that even without the lock it could never go below zero. Other customers never wait.

Idempotency: a transaction is unique by (workspace, kind, ref). Replaying a call with the same ref finds the
first one and changes nothing, so callers may retry freely.

Expiry: points earned in local (Asia/Shanghai) year Y expire at the end of year Y+1. Spending consumes the
lots that expire first (FIFO), so expiry only ever takes points that were earned and not spent. A customer's
due lots are also expired inline before any movement of theirs, so a spend can never use expired points even
when the periodic task has not run yet.

Refunds: ``points_refund(ref)`` returns a spend exactly once, into the lots it came from (points whose lot
expired meanwhile come back and expire at once: they would have expired unspent). When an order is refunded
the points it earned are taken back (``points_reverse_earn``): first from that earn's own lot, then from the
customer's other lots, never below zero. Whatever is left — the customer already spent or lost those points —
is forgiven and recorded as a ``PointsWriteOff`` (visible in the console), not a debt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import SHANGHAI
from siyu.customers.models import Customer, CustomerStatus
from siyu.loyalty.models import (
    BURN_REASONS,
    EARN_REASONS,
    AccountKind,
    LoyaltySettings,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsLotUse,
    PointsTransaction,
    PointsWriteOff,
    Reason,
    TransactionKind,
)

MAX_POINTS_PER_MOVEMENT = 10**12
REF_MAX_LENGTH = 128


# ---------------------------------------------------------------------------------------------------- reads


def points_balance(*, customer: Customer, now: datetime | None = None) -> int:
    """Points the customer can spend now: the ledger balance minus lots already past expiry (which the next
    movement or the periodic task will expire)."""
    account = PointsAccount.objects.filter(customer=customer).only("balance").first()
    if account is None or account.balance == 0:
        return 0
    now = now or timezone.now()
    due = (PointsLot.objects.filter(customer=customer, remaining__gt=0, expires_at__lte=now)
           .aggregate(total=Sum("remaining"))["total"] or 0)
    return account.balance - due


def points_expiry_for(earned_at: datetime) -> datetime:
    """End of the year after the (Shanghai) year the points were earned in."""
    year = earned_at.astimezone(SHANGHAI).year
    return datetime(year + 2, 1, 1, tzinfo=SHANGHAI)


def loyalty_settings(*, workspace: Workspace) -> LoyaltySettings:
    """The workspace's settings, or an unsaved row carrying the defaults."""
    return LoyaltySettings.objects.filter(workspace=workspace).first() or LoyaltySettings(workspace=workspace)


def points_for_paid_fen(*, workspace: Workspace, paid_fen: int) -> int:
    """Points a purchase earns: the workspace's rate (default 1) per whole yuan paid, rounded down."""
    rate = Decimal(loyalty_settings(workspace=workspace).earn_points_per_yuan)
    return int((Decimal(int(paid_fen)) / 100 * rate).to_integral_value(rounding=ROUND_FLOOR))


def points_value_fen(*, workspace: Workspace, points: int) -> int:
    """What ``points`` deduct at checkout, in fen (default 100 points = 1 yuan), rounded down."""
    per_yuan = loyalty_settings(workspace=workspace).redeem_points_per_yuan or 100
    return int(points) * 100 // per_yuan


def points_redeem_limit(*, workspace: Workspace, customer: Customer, payable_fen: int) -> int:
    """The most points an order of ``payable_fen`` may use: the balance, and at most the configured share
    of the order (default 50%), in whole deduction units so no fraction of a fen is bought."""
    settings = loyalty_settings(workspace=workspace)
    per_yuan = settings.redeem_points_per_yuan or 100
    cap_fen = max(0, int(payable_fen)) * settings.redeem_max_percent // 100
    cap_points = cap_fen * per_yuan // 100
    return max(0, min(points_balance(customer=customer), cap_points))


# ---------------------------------------------------------------------------------------------------- writes


def points_earn(*, workspace: Workspace, customer: Customer, amount: int, reason: str, ref: str,
                at: datetime | None = None, note: str = "", details: dict[str, Any] | None = None
                ) -> PointsTransaction:
    """Credit ``amount`` points (reason: purchase, checkin, share, review, task). Idempotent by ``ref``: a
    replay returns the first transaction unchanged."""
    amount = _positive_amount(amount)
    _check_ref(ref)
    if reason not in EARN_REASONS:
        raise SiyuError("points_reason_invalid", "积分获得原因无效", "Unknown reason for earning points",
                        details={"reason": reason, "allowed": sorted(EARN_REASONS)})
    _check_customer(workspace, customer)
    at = at or timezone.now()
    with transaction.atomic():
        account = _locked_account(workspace, customer)
        existing = _existing(workspace, TransactionKind.EARN, ref)
        if existing is not None:
            return existing
        _expire_due_lots(account, now=timezone.now())
        tx = _record(workspace, customer, account, kind=TransactionKind.EARN, reason=reason, ref=ref,
                     amount=amount, counter=AccountKind.ISSUED, at=at, note=note, details=details)
        PointsLot.objects.create(workspace=workspace, customer=customer, transaction=tx, amount=amount,
                                 remaining=amount, earned_at=at, expires_at=points_expiry_for(at))
        return tx


def points_spend(*, workspace: Workspace, customer: Customer, amount: int, ref: str,
                 reason: str = Reason.CHECKOUT, note: str = "") -> None:
    """Debit ``amount`` points (checkout deduction, exchange, lottery); never below zero.

    Raises ``points_insufficient`` (409) when the balance is short. Idempotent by ``ref``: a replay with the
    same customer and amount does nothing; the same ref with a different customer or amount is a conflict.
    """
    amount = _positive_amount(amount)
    _check_ref(ref)
    if reason not in BURN_REASONS:
        raise SiyuError("points_reason_invalid", "积分使用原因无效", "Unknown reason for spending points",
                        details={"reason": reason, "allowed": sorted(BURN_REASONS)})
    _check_customer(workspace, customer)
    with transaction.atomic():
        account = _locked_account(workspace, customer)
        existing = _existing(workspace, TransactionKind.BURN, ref)
        if existing is not None:
            if existing.customer_id != customer.pk or -existing.amount != amount:
                raise SiyuError("points_ref_conflict", "该单号已用于另一笔积分扣减",
                                "This reference was already used for a different points deduction", status=409,
                                details={"ref": ref})
            return
        now = timezone.now()
        _expire_due_lots(account, now=now)
        account.refresh_from_db(fields=["balance"])
        if account.balance < amount:
            raise _insufficient(account.balance, amount)
        tx = _record(workspace, customer, account, kind=TransactionKind.BURN, reason=reason, ref=ref,
                     amount=-amount, counter=AccountKind.REDEEMED, at=now, note=note)
        _consume_lots(account, tx, amount)


def points_refund(*, ref: str, workspace: Workspace | None = None) -> bool:
    """Give back the points spent under ``ref`` (an order cancelled or refunded) — exactly once.

    True when points were returned by this call; False when there was nothing to return (never spent, or
    already returned). Safe to call from retries and concurrently.
    """
    _check_ref(ref)
    spends = PointsTransaction.objects.filter(kind=TransactionKind.BURN, ref=ref)
    if workspace is not None:
        spends = spends.filter(workspace=workspace)
    returned = False
    for spend_id in list(spends.values_list("pk", flat=True)):
        returned = _spend_return(spend_id) or returned
    return returned


def points_reverse_earn(*, workspace: Workspace, earn_ref: str, ref: str, amount: int | None = None
                        ) -> PointsTransaction | None:
    """Take back up to ``amount`` (default: all still unreversed) of the points earned under ``earn_ref``,
    because the order was refunded. Idempotent by ``ref`` (one per refund).

    Takes from the earn's own lot first, then from the customer's other lots, never below zero; what cannot
    be taken is forgiven and recorded as a ``PointsWriteOff``. Returns the reversal transaction, or None when
    nothing was taken (nothing earned, already reversed, or all of it forgiven).
    """
    _check_ref(earn_ref)
    _check_ref(ref)
    earn = PointsTransaction.objects.filter(workspace=workspace, kind=TransactionKind.EARN, ref=earn_ref).first()
    if earn is None:
        return None
    with transaction.atomic():
        # Points follow the person: if the earning profile was merged, take them back from the merged one.
        points_follow_merge(customer=earn.customer)
        holder = customer_live(earn.customer) or earn.customer
        account = _locked_account(workspace, holder)
        existing = _existing(workspace, TransactionKind.REVERSE, ref)
        if existing is not None or PointsWriteOff.objects.filter(workspace=workspace, ref=ref).exists():
            return existing
        now = timezone.now()
        _expire_due_lots(account, now=now)
        already = -(PointsTransaction.objects.filter(reverses=earn).aggregate(total=Sum("amount"))["total"] or 0)
        forgiven = PointsWriteOff.objects.filter(earn=earn).aggregate(total=Sum("points"))["total"] or 0
        open_amount = max(0, earn.amount - already - forgiven)
        wanted = open_amount if amount is None else min(open_amount, _positive_amount(amount))
        if wanted == 0:
            return None
        account.refresh_from_db(fields=["balance"])
        taken = min(wanted, account.balance)
        tx = None
        if taken > 0:
            tx = _record(workspace, holder, account, kind=TransactionKind.REVERSE,
                         reason=Reason.EARN_REVERSED, ref=ref, amount=-taken, counter=AccountKind.REVERSED, at=now,
                         reverses=earn, details={"requested": wanted, "written_off": wanted - taken})
            own_lot = earn.lots.order_by("pk").first()
            _consume_lots(account, tx, taken, first_lot_id=own_lot.pk if own_lot else None)
        if wanted > taken:
            PointsWriteOff.objects.create(workspace=workspace, customer=holder, ref=ref, earn=earn,
                                          points=wanted - taken, created_at=now)
        return tx


def points_adjust(*, workspace: Workspace, customer: Customer, amount: int, reason_text: str, actor: Any,
                  ref: str | None = None) -> PointsTransaction:
    """An admin's manual correction (+ credits a new lot, − debits FIFO, never below zero), with a reason,
    audited."""
    from siyu.core.services import audit_record

    try:
        amount = int(amount)
    except (TypeError, ValueError) as error:
        raise SiyuError("points_amount_invalid", "积分数量必须是整数", "The points amount must be an integer") from error
    if amount == 0 or abs(amount) > MAX_POINTS_PER_MOVEMENT:
        raise SiyuError("points_amount_invalid", "调整的积分数量不能为 0 且不能过大",
                        "The adjustment must be non-zero and not absurdly large")
    reason_text = (reason_text or "").strip()
    if not reason_text:
        raise SiyuError("points_adjust_reason_required", "请填写调整原因", "A reason is required for a manual adjustment")
    if len(reason_text) > 255:
        raise SiyuError("points_adjust_reason_too_long", "调整原因过长（最多 255 字）", "The reason is too long (255 max)")
    _check_customer(workspace, customer)
    now = timezone.now()
    ref = ref or f"manual:{customer.pk}:{now.isoformat()}:{getattr(actor, 'pk', '')}"
    _check_ref(ref)
    with transaction.atomic():
        account = _locked_account(workspace, customer)
        existing = _existing(workspace, TransactionKind.ADJUST, ref)
        if existing is not None:
            return existing
        _expire_due_lots(account, now=now)
        account.refresh_from_db(fields=["balance"])
        if amount < 0 and account.balance < -amount:
            raise _insufficient(account.balance, -amount)
        tx = _record(workspace, customer, account, kind=TransactionKind.ADJUST, reason=Reason.MANUAL, ref=ref,
                     amount=amount, counter=AccountKind.ADJUSTED, at=now, note=reason_text,
                     actor=actor if getattr(actor, "is_authenticated", False) else None)
        if amount > 0:
            PointsLot.objects.create(workspace=workspace, customer=customer, transaction=tx, amount=amount,
                                     remaining=amount, earned_at=now, expires_at=points_expiry_for(now))
        else:
            _consume_lots(account, tx, -amount)
        audit_record(workspace=workspace, actor=actor, action="points_adjust", target_type="customer",
                     target_id=customer.pk, amount=amount, reason=reason_text, transaction_id=tx.pk)
        return tx


def points_expire_due(*, now: datetime | None = None, workspace: Workspace | None = None) -> int:
    """Expire every lot past its date (the periodic task). Returns how many points expired."""
    now = now or timezone.now()
    lots = PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now)
    if workspace is not None:
        lots = lots.filter(workspace=workspace)
    total = 0
    for customer_id in lots.values_list("customer_id", flat=True).distinct().order_by("customer_id").iterator():
        with transaction.atomic():
            account = (PointsAccount.objects.select_for_update().filter(customer_id=customer_id).first())
            if account is not None:
                total += _expire_due_lots(account, now=now)
    return total


def customer_live(customer: Customer) -> Customer | None:
    """The customer, or the live profile they were merged into (points follow the person)."""
    hops = 0
    while customer is not None and customer.status == CustomerStatus.MERGED and customer.merged_into_id and hops < 10:
        customer = Customer.objects.filter(pk=customer.merged_into_id, workspace_id=customer.workspace_id).first()
        hops += 1
    return customer


def points_follow_merge(*, customer: Customer) -> int:
    """Move a merged-away profile's points to the profile it was merged into: one transfer out and one in,
    each balanced through the ``transferred`` system account, the lots carried over with their own expiry.

    Returns the points moved (0 when the customer is live or holds nothing). An un-merge leaves the points
    where they are now (with the surviving profile); admins can move them by adjustment if needed.
    """
    customer.refresh_from_db(fields=["status", "merged_into"])
    target = customer_live(customer)
    if target is None or target.pk == customer.pk:
        return 0
    if not PointsAccount.objects.filter(customer=customer, balance__gt=0).exists():
        return 0
    with transaction.atomic():
        # Lock both accounts in id order so two transfers (or a transfer and a spend) never deadlock.
        accounts = {}
        for person in sorted((customer, target), key=lambda row: row.pk):
            accounts[person.pk] = _locked_account(person.workspace, person)
        source, destination = accounts[customer.pk], accounts[target.pk]
        now = timezone.now()
        _expire_due_lots(source, now=now)
        source.refresh_from_db(fields=["balance"])
        amount = source.balance
        if amount == 0:
            return 0
        stamp = f"{customer.pk}:{now.isoformat()}"
        out = _record(customer.workspace_id, customer, source, kind=TransactionKind.TRANSFER,
                      reason=Reason.MERGE_OUT, ref=f"merge-out:{stamp}", amount=-amount,
                      counter=AccountKind.TRANSFERRED, at=now, details={"to_customer_id": target.pk})
        into = _record(customer.workspace_id, target, destination, kind=TransactionKind.TRANSFER,
                       reason=Reason.MERGE_IN, ref=f"merge-in:{stamp}", amount=amount,
                       counter=AccountKind.TRANSFERRED, at=now, details={"from_customer_id": customer.pk})
        for lot in PointsLot.objects.select_for_update().filter(customer=customer, remaining__gt=0).order_by("pk"):
            PointsLotUse.objects.create(lot=lot, transaction=out, amount=lot.remaining)
            PointsLot.objects.filter(pk=lot.pk).update(remaining=0)
            PointsLot.objects.create(workspace_id=customer.workspace_id, customer=target, transaction=into,
                                     amount=lot.remaining, remaining=lot.remaining, earned_at=lot.earned_at,
                                     expires_at=lot.expires_at)
        return amount


# ---------------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class LedgerProblem:
    kind: str
    subject: str
    detail: str


def ledger_check(*, workspace: Workspace | None = None) -> list[LedgerProblem]:
    """Recompute the ledger's invariants; an empty list means all hold.

    Every transaction has ≥2 entries summing to zero, and its customer entry equals its amount; every
    customer account's cached balance equals the sum of its entries, is ≥ 0, and equals its lots' remaining.
    """
    problems: list[LedgerProblem] = []
    txs = PointsTransaction.objects.all()
    accounts = PointsAccount.objects.filter(kind=AccountKind.CUSTOMER)
    if workspace is not None:
        txs = txs.filter(workspace=workspace)
        accounts = accounts.filter(workspace=workspace)
    from django.db.models import Count

    unbalanced = (txs.annotate(entry_sum=Sum("entries__amount"), entry_count=Count("entries"))
                  .filter(Q(entry_count__lt=2) | ~Q(entry_sum=0) | Q(entry_sum__isnull=True)))
    for tx in unbalanced:
        problems.append(LedgerProblem("unbalanced_transaction", f"tx:{tx.pk}",
                                      f"{tx.entry_count} entries summing to {tx.entry_sum}"))
    mismatched = (txs.filter(entries__account__kind=AccountKind.CUSTOMER)
                  .exclude(entries__amount=F("amount")).values_list("pk", flat=True))
    for pk in mismatched:
        problems.append(LedgerProblem("customer_entry_mismatch", f"tx:{pk}", "customer entry != amount"))
    sums = dict(PointsEntry.objects.filter(account__in=accounts).values("account_id")
                .annotate(total=Sum("amount")).values_list("account_id", "total"))
    lots = dict(PointsLot.objects.filter(customer__points_account__in=accounts).values("customer_id")
                .annotate(total=Sum("remaining")).values_list("customer_id", "total"))
    for account in accounts.only("pk", "balance", "customer_id"):
        entries_total = sums.get(account.pk, 0) or 0
        if account.balance != entries_total:
            problems.append(LedgerProblem("balance_mismatch", f"customer:{account.customer_id}",
                                          f"cached {account.balance} != entries {entries_total}"))
        if entries_total < 0:
            problems.append(LedgerProblem("negative_balance", f"customer:{account.customer_id}", str(entries_total)))
        if (lots.get(account.customer_id, 0) or 0) != entries_total:
            problems.append(LedgerProblem("lots_mismatch", f"customer:{account.customer_id}",
                                          f"lots {lots.get(account.customer_id, 0)} != entries {entries_total}"))
    return problems


# ---------------------------------------------------------------------------------------------------- internals


def _positive_amount(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int | str):
        raise SiyuError("points_amount_invalid", "积分数量必须是正整数", "The points amount must be a positive integer")
    try:
        value = int(amount)
    except ValueError as error:
        raise SiyuError("points_amount_invalid", "积分数量必须是正整数",
                        "The points amount must be a positive integer") from error
    if value <= 0 or value > MAX_POINTS_PER_MOVEMENT:
        raise SiyuError("points_amount_invalid", "积分数量必须是正整数", "The points amount must be a positive integer",
                        details={"amount": value})
    return value


def _check_ref(ref: Any) -> None:
    if not isinstance(ref, str) or not ref.strip() or len(ref) > REF_MAX_LENGTH:
        raise SiyuError("points_ref_invalid", "积分流水单号无效", "Invalid points reference",
                        details={"max_length": REF_MAX_LENGTH})


def _check_customer(workspace: Workspace, customer: Customer) -> None:
    if customer is None or customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)


def _insufficient(balance: int, wanted: int) -> SiyuError:
    return SiyuError("points_insufficient", "积分不足", "Not enough points", status=409,
                     details={"balance": balance, "requested": wanted})


def _existing(workspace: Workspace | int, kind: str, ref: str) -> PointsTransaction | None:
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    return PointsTransaction.objects.filter(workspace_id=workspace_id, kind=kind, ref=ref).first()


def _locked_account(workspace: Workspace, customer: Customer) -> PointsAccount:
    """The customer's account, created on first use, locked for the rest of the transaction."""
    account = PointsAccount.objects.select_for_update().filter(customer=customer).first()
    if account is None:
        try:
            with transaction.atomic():
                PointsAccount.objects.create(workspace=workspace, kind=AccountKind.CUSTOMER, customer=customer)
        except IntegrityError:
            pass  # created concurrently: lock theirs
        account = PointsAccount.objects.select_for_update().get(customer=customer)
    return account


def _system_account(workspace_id: int, kind: str) -> PointsAccount:
    account = PointsAccount.objects.filter(workspace_id=workspace_id, kind=kind, customer__isnull=True).first()
    if account is None:
        try:
            with transaction.atomic():
                account = PointsAccount.objects.create(workspace_id=workspace_id, kind=kind)
        except IntegrityError:
            account = PointsAccount.objects.get(workspace_id=workspace_id, kind=kind, customer__isnull=True)
    return account


def _record(workspace: Workspace | int, customer: Customer | int, account: PointsAccount, *, kind: str, reason: str,
            ref: str, amount: int, counter: str, at: datetime, note: str = "", reverses=None, actor=None,
            details: dict[str, Any] | None = None) -> PointsTransaction:
    """Write one balanced transaction and move the cached balance (conditionally: never below zero)."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    customer_id = customer if isinstance(customer, int) else customer.pk
    tx = PointsTransaction.objects.create(workspace_id=workspace_id, customer_id=customer_id, kind=kind,
                                          reason=reason, ref=ref, amount=amount, reverses=reverses, note=note,
                                          actor=actor, details=details or {}, created_at=at)
    PointsEntry.objects.bulk_create([
        PointsEntry(transaction=tx, account=account, amount=amount),
        PointsEntry(transaction=tx, account=_system_account(workspace_id, counter), amount=-amount),
    ])
    moved = (PointsAccount.objects.filter(pk=account.pk, balance__gte=-amount if amount < 0 else 0)
             .update(balance=F("balance") + amount))
    if moved != 1:
        account.refresh_from_db(fields=["balance"])
        raise _insufficient(account.balance, -amount)
    account.balance += amount
    return tx


def _consume_lots(account: PointsAccount, tx: PointsTransaction, amount: int, *,
                  first_lot_id: int | None = None) -> None:
    """Take ``amount`` from the customer's lots, soonest expiry first (``first_lot_id`` before all others)."""
    lots = list(PointsLot.objects.select_for_update().filter(customer_id=account.customer_id, remaining__gt=0)
                .order_by("expires_at", "id"))
    if first_lot_id is not None:
        lots.sort(key=lambda lot: lot.pk != first_lot_id)
    left = amount
    uses = []
    for lot in lots:
        if left == 0:
            break
        take = min(left, lot.remaining)
        PointsLot.objects.filter(pk=lot.pk).update(remaining=F("remaining") - take)
        uses.append(PointsLotUse(lot=lot, transaction=tx, amount=take))
        left -= take
    if left:
        # Lots always sum to the balance, which was checked: reaching here means the ledger is corrupt.
        raise SiyuError("points_ledger_inconsistent", "积分账本不一致，请联系管理员", "The points ledger is inconsistent",
                        status=500, details={"customer_id": account.customer_id, "missing": left})
    PointsLotUse.objects.bulk_create(uses)


def _expire_due_lots(account: PointsAccount, *, now: datetime) -> int:
    """Expire the account's lots past their date (account row already locked). Returns points expired."""
    expired = 0
    for lot in (PointsLot.objects.select_for_update()
                .filter(customer_id=account.customer_id, remaining__gt=0, expires_at__lte=now).order_by("id")):
        ref = f"lot:{lot.pk}:{lot.expires_at.date().isoformat()}"
        if _existing(account.workspace_id, TransactionKind.EXPIRE, ref) is not None:
            # A returned spend refilled a lot that had already expired once: expire the refill separately.
            ref = f"lot:{lot.pk}:{now.isoformat()}"
        tx = _record(account.workspace_id, account.customer_id, account, kind=TransactionKind.EXPIRE,
                     reason=Reason.EXPIRY, ref=ref, amount=-lot.remaining, counter=AccountKind.EXPIRED, at=now,
                     details={"lot_id": lot.pk, "expires_at": lot.expires_at.isoformat()})
        PointsLot.objects.filter(pk=lot.pk).update(remaining=0)
        PointsLotUse.objects.create(lot=lot, transaction=tx, amount=lot.remaining)
        expired += lot.remaining
    return expired


def _spend_return(spend_id: int) -> bool:
    with transaction.atomic():
        spend = PointsTransaction.objects.select_related("workspace", "customer").get(pk=spend_id)
        live = customer_live(spend.customer)
        if live is not None and live.pk != spend.customer_id:
            # The points will move on to the survivor: lock both accounts in id order, as the transfer does.
            for person in sorted((spend.customer, live), key=lambda row: row.pk):
                _locked_account(spend.workspace, person)
        account = _locked_account(spend.workspace, spend.customer)
        ref = f"return:{spend.ref}"
        if _existing(spend.workspace, TransactionKind.REVERSE, ref) is not None:
            return False
        now = timezone.now()
        tx = _record(spend.workspace, spend.customer, account, kind=TransactionKind.REVERSE,
                     reason=Reason.SPEND_RETURNED, ref=ref, amount=-spend.amount, counter=AccountKind.REVERSED,
                     at=now, reverses=spend)
        for use in PointsLotUse.objects.filter(transaction=spend):
            PointsLot.objects.filter(pk=use.lot_id).update(remaining=F("remaining") + use.amount)
        _expire_due_lots(account, now=now)
        points_follow_merge(customer=spend.customer)  # returned to a merged profile: on to the live one
        return tx is not None
