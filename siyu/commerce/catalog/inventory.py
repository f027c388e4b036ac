"""Stock without overselling: reservations, commits, returns and adjustments of SKU stock.

Every change is one conditional UPDATE of the SKU row (``… WHERE stock_on_hand - stock_reserved >= qty``)
plus a StockMovement row in the same transaction, so concurrent buyers can never take more than there is
and the stock always equals the sum of its movements. Reservation state moves (held → released /
committed, committed → returned) are conditional UPDATEs on the reservation row as well: a second
release, expiry or return of the same reservation changes nothing (exactly once, even when racing).

A reservation is identified by ``ref`` (an order number): one row per (ref, SKU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.commerce.catalog.models import (
    MovementReason,
    ReservationState,
    Sku,
    StockMovement,
    StockReservation,
)
from siyu.core.domain_events import publish
from siyu.core.errors import SiyuError

LOW_STOCK = "catalog.low_stock"  # workspace_id: int, sku_id: int, product_id: int, available: int, threshold: int
MAX_TTL_SECONDS = 7 * 24 * 3600


def _merged_lines(lines: Iterable[tuple[int, int]]) -> OrderedDict[int, int]:
    """Validate (sku_id, qty) pairs and add up repeated SKUs, in SKU id order (a fixed lock order: no deadlocks)."""
    merged: dict[int, int] = {}
    for line in lines:
        try:
            sku_id, qty = line
        except (TypeError, ValueError) as error:
            raise SiyuError("invalid_lines", "商品行格式错误", "Each line must be (sku_id, quantity)") from error
        if isinstance(sku_id, bool) or isinstance(qty, bool) or not isinstance(sku_id, int) \
                or not isinstance(qty, int):
            raise SiyuError("invalid_lines", "商品与数量必须是整数", "SKU ids and quantities must be integers")
        if qty <= 0:
            raise SiyuError("invalid_quantity", "购买数量必须大于 0", "Quantities must be positive",
                            details={"sku_id": sku_id})
        merged[sku_id] = merged.get(sku_id, 0) + qty
    if not merged:
        raise SiyuError("invalid_lines", "没有要预占的商品", "Nothing to reserve")
    return OrderedDict(sorted(merged.items()))


def _check_ref(ref: str) -> str:
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 64:
        raise SiyuError("invalid_ref", "预占单号无效", "The reservation reference must be 1–64 characters")
    return ref


def _sku_label(sku: Sku) -> str:
    return f"{sku.product.title} {sku.specs_label}".strip()


def stock_reserve(*, workspace, lines: list[tuple[int, int]], ref: str, ttl_seconds: int) -> None:
    """Hold stock for every line, or for none: raises ``out_of_stock`` (409) naming the first SKU short of stock.

    Only active SKUs of on-shelf products of ``workspace`` can be reserved; a ``ref`` reserves once.
    """
    ref = _check_ref(ref)
    wanted = _merged_lines(lines)
    if not isinstance(ttl_seconds, int) or not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise SiyuError("invalid_ttl", "预占时长无效", "The reservation time must be between 1 s and 7 days")
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds)
    with transaction.atomic():
        skus = {sku.pk: sku for sku in Sku.objects.filter(workspace=workspace, pk__in=list(wanted))
                .select_related("product")}
        for sku_id in wanted:
            sku = skus.get(sku_id)
            if sku is None:
                raise SiyuError("sku_not_found", "商品规格不存在", "SKU not found", status=404,
                                details={"sku_id": sku_id})
            if not sku.active or not sku.product.on_shelf:
                raise SiyuError("sku_unavailable", f"「{_sku_label(sku)}」已下架", f"SKU {sku_id} is not for sale",
                                status=409, details={"sku_id": sku_id})
        if StockReservation.objects.filter(ref=ref).exists():
            raise SiyuError("reservation_exists", "该单号已预占过库存", "Stock was already reserved for this reference",
                            status=409, details={"ref": ref})
        for sku_id, qty in wanted.items():
            taken = Sku.objects.filter(pk=sku_id, stock_on_hand__gte=F("stock_reserved") + qty).update(
                stock_reserved=F("stock_reserved") + qty)
            if taken != 1:
                # Leaving the atomic block by raising rolls back the lines already held.
                sku = skus[sku_id]
                raise SiyuError("out_of_stock", f"「{_sku_label(sku)}」库存不足", f"SKU {sku_id} is out of stock",
                                status=409, details={"sku_id": sku_id, "requested": qty})
        StockReservation.objects.bulk_create([
            StockReservation(workspace=workspace, sku_id=sku_id, ref=ref, qty=qty, expires_at=expires_at)
            for sku_id, qty in wanted.items()])
        StockMovement.objects.bulk_create([
            StockMovement(workspace=workspace, sku_id=sku_id, delta_reserved=qty, reason=MovementReason.RESERVE,
                          ref=ref) for sku_id, qty in wanted.items()])
        _announce_low_stock(wanted)


def _release_rows(rows: Iterable[StockReservation], *, reason: str) -> int:
    released = 0
    for row in rows:
        moved = StockReservation.objects.filter(pk=row.pk, state=ReservationState.HELD).update(
            state=ReservationState.RELEASED, updated_at=timezone.now())
        if moved != 1:
            continue  # someone else released, expired or committed it first
        Sku.objects.filter(pk=row.sku_id).update(stock_reserved=F("stock_reserved") - row.qty)
        StockMovement.objects.create(workspace_id=row.workspace_id, sku_id=row.sku_id, delta_reserved=-row.qty,
                                     reason=reason, ref=row.ref)
        released += 1
    return released


def stock_release(*, ref: str) -> bool:
    """Give back held stock of ``ref`` (order cancelled before payment). True only for the call that released."""
    with transaction.atomic():
        rows = list(StockReservation.objects.filter(ref=ref, state=ReservationState.HELD).order_by("sku_id"))
        return _release_rows(rows, reason=MovementReason.RELEASE) > 0


def reservations_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """Release held reservations whose time is up; returns how many rows were released."""
    now = now or timezone.now()
    due = list(StockReservation.objects.filter(state=ReservationState.HELD, expires_at__lte=now)
               .order_by("sku_id", "pk")[:limit])
    released = 0
    for row in due:
        with transaction.atomic():
            released += _release_rows([row], reason=MovementReason.EXPIRE)
    return released


def stock_commit(*, ref: str) -> bool:
    """Held → committed (paid): on hand and reserved both go down by the quantity.

    True when this call committed, False when ``ref`` was already committed (a repeated payment
    notification). Raises ``reservation_not_held`` (409) if the reservation was released or expired.
    """
    with transaction.atomic():
        rows = list(StockReservation.objects.filter(ref=ref).order_by("sku_id"))
        if not rows:
            raise SiyuError("reservation_not_found", "没有该单号的库存预占", "No stock reservation for this reference",
                            status=404, details={"ref": ref})
        committed: list[StockReservation] = []
        for row in rows:
            moved = StockReservation.objects.filter(pk=row.pk, state=ReservationState.HELD).update(
                state=ReservationState.COMMITTED, updated_at=timezone.now())
            if moved == 1:
                committed.append(row)
                continue
            state = StockReservation.objects.values_list("state", flat=True).get(pk=row.pk)
            if state not in (ReservationState.COMMITTED, ReservationState.RETURNED):
                raise SiyuError("reservation_not_held", "库存预占已释放或超时，无法出库",
                                "The stock reservation was released or expired", status=409,
                                details={"ref": ref, "sku_id": row.sku_id})
        for row in committed:
            Sku.objects.filter(pk=row.sku_id).update(stock_on_hand=F("stock_on_hand") - row.qty,
                                                     stock_reserved=F("stock_reserved") - row.qty)
            StockMovement.objects.create(workspace_id=row.workspace_id, sku_id=row.sku_id, delta_on_hand=-row.qty,
                                         delta_reserved=-row.qty, reason=MovementReason.COMMIT, ref=ref)
        return bool(committed)


def stock_return(*, ref: str, lines: list[tuple[int, int]] | None = None) -> bool:
    """Committed → returned (refund or return): the units go back on hand, at most once per unit committed.

    ``lines`` (sku_id, qty) returns part of the reservation (a partial refund); without it every unit not
    yet returned goes back. True when this call returned something.
    """
    wanted = _merged_lines(lines) if lines is not None else None
    with transaction.atomic():
        rows = {row.sku_id: row for row in StockReservation.objects.filter(ref=ref).order_by("sku_id")}
        if wanted is not None:
            for sku_id in wanted:
                if sku_id not in rows:
                    raise SiyuError("reservation_not_found", "该单号没有此商品的库存记录",
                                    "This SKU was not part of the reservation", status=404,
                                    details={"ref": ref, "sku_id": sku_id})
        returned = False
        for sku_id, row in rows.items():
            if wanted is not None and sku_id not in wanted:
                continue
            remaining = row.qty - row.returned_qty
            qty = remaining if wanted is None else min(wanted[sku_id], remaining)
            if qty <= 0:
                continue
            # Conditional on what we read: a concurrent return of the same units changes 0 rows here.
            moved = StockReservation.objects.filter(
                pk=row.pk, state=ReservationState.COMMITTED, returned_qty=row.returned_qty).update(
                returned_qty=F("returned_qty") + qty, updated_at=timezone.now(),
                state=ReservationState.RETURNED if qty == remaining else ReservationState.COMMITTED)
            if moved != 1:
                continue
            Sku.objects.filter(pk=sku_id).update(stock_on_hand=F("stock_on_hand") + qty)
            StockMovement.objects.create(workspace_id=row.workspace_id, sku_id=sku_id, delta_on_hand=qty,
                                         reason=MovementReason.RETURN, ref=ref)
            returned = True
        return returned


def stock_adjust(*, sku: Sku, delta: int, reason: str, actor=None) -> Sku:
    """Count stock in (positive) or out (negative) by hand, with a reason; never below what is reserved."""
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise SiyuError("invalid_delta", "调整数量必须是非零整数", "The adjustment must be a non-zero integer")
    reason = (reason or "").strip()
    if not reason:
        raise SiyuError("reason_required", "请填写调整原因", "Give a reason for the adjustment")
    if len(reason) > 200:
        raise SiyuError("reason_too_long", "调整原因不能超过 200 字", "The reason is longer than 200 characters")
    with transaction.atomic():
        moved = Sku.objects.filter(pk=sku.pk, stock_on_hand__gte=F("stock_reserved") - delta).update(
            stock_on_hand=F("stock_on_hand") + delta)
        if moved != 1:
            raise SiyuError("stock_below_reserved", "调整后库存将少于已预占数量", "Stock would fall below what is reserved",
                            status=409, details={"sku_id": sku.pk})
        StockMovement.objects.create(workspace_id=sku.workspace_id, sku_id=sku.pk, delta_on_hand=delta,
                                     reason=MovementReason.ADJUST, note=reason,
                                     actor=actor if getattr(actor, "pk", None) else None)
        sku.refresh_from_db(fields=["stock_on_hand", "stock_reserved"])
        if delta < 0:
            _announce_low_stock({sku.pk: -delta})
        return sku


def _announce_low_stock(taken: dict[int, int]) -> None:
    """Publish ``catalog.low_stock`` (delivered on commit) for each SKU whose available stock has just fallen
    to or below its threshold (``taken``: sku_id → units just made unavailable; once per crossing, no spam)."""
    for sku in Sku.objects.filter(pk__in=list(taken)).only(
            "workspace_id", "product_id", "stock_on_hand", "stock_reserved", "low_stock_threshold"):
        if sku.available <= sku.low_stock_threshold < sku.available + taken[sku.pk]:
            publish(LOW_STOCK, workspace_id=sku.workspace_id, sku_id=sku.pk, product_id=sku.product_id,
                    available=sku.available, threshold=sku.low_stock_threshold)


def stock_ledger_totals(*, sku: Sku) -> tuple[int, int]:
    """(sum of on-hand deltas, sum of reserved deltas) — what the SKU's stock must equal."""
    from django.db.models import Sum

    totals = StockMovement.objects.filter(sku=sku).aggregate(on_hand=Sum("delta_on_hand"),
                                                            reserved=Sum("delta_reserved"))
    return int(totals["on_hand"] or 0), int(totals["reserved"] or 0)
