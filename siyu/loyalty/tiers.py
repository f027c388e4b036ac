"""Member tiers: which tier a customer holds, growth value from paid orders, re-evaluation with history.

Growth value (and spend) are append-only ``GrowthEntry`` rows: + on OrderPaid, − on OrderRefunded, each unique
by its ref so replayed events change nothing. A paid order may upgrade the customer at once; the periodic
re-evaluation (daily) also downgrades those whose window total fell below their tier. Every change is a
``TierChange`` row and the ``TIER_CHANGED`` domain event (the hook for notifications and journeys).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from siyu.core.domain_events import publish
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.loyalty.models import CustomerTier, GrowthEntry, LoyaltySettings, TierChange, TierLevel
from siyu.loyalty.tier_rules import (
    DEFAULT_TIERS,
    TIER_CODES,
    Tier,
    thresholds_problems,
    tier_for_value,
    tiers_merge,
)

__all__ = [
    "DEFAULT_TIERS",
    "TIER_CHANGED",
    "Tier",
    "growth_of",
    "growth_record",
    "tier_config_update",
    "tier_evaluate",
    "tier_levels",
    "tier_of",
    "tiers_reevaluate",
]

# Published on commit after every upgrade or downgrade:
# workspace_id: int, customer_id: int, from_code: str, to_code: str, direction: "up"|"down", change_id: int
TIER_CHANGED = "loyalty.tier_changed"


# ---------------------------------------------------------------------------------------------------- reads


def tier_levels(*, workspace: Workspace | int) -> tuple[Tier, ...]:
    """The workspace's four tiers, lowest first (configured values over the defaults)."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    overrides = {row["code"]: row for row in TierLevel.objects.filter(workspace_id=workspace_id).values(
        "code", "growth_threshold", "spend_threshold_fen", "discount_percent", "free_shipping", "priority_service",
        "exclusive_items")}
    return tiers_merge(overrides)


def tier_basis(*, workspace: Workspace | int) -> tuple[str, int]:
    """(basis "growth"|"spend", window in days; 0 = all time)."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    row = LoyaltySettings.objects.filter(workspace_id=workspace_id).values("tier_basis", "tier_window_days").first()
    return (row["tier_basis"], row["tier_window_days"]) if row else ("growth", 365)


def tier_of(*, customer: Customer) -> Tier:
    """The customer's current tier with its benefits (普通 when never evaluated)."""
    code = CustomerTier.objects.filter(customer=customer).values_list("code", flat=True).first() or "normal"
    return next(tier for tier in tier_levels(workspace=customer.workspace_id) if tier.code == code)


def growth_of(*, customer: Customer, now: datetime | None = None) -> tuple[int, int]:
    """(growth value, spend in fen) inside the workspace's tier window."""
    _, window = tier_basis(workspace=customer.workspace_id)
    entries = GrowthEntry.objects.filter(customer=customer)
    if window:
        entries = entries.filter(occurred_at__gt=(now or timezone.now()) - timedelta(days=window))
    totals = entries.aggregate(growth=Sum("growth"), spend=Sum("spend_fen"))
    return int(totals["growth"] or 0), int(totals["spend"] or 0)


# ---------------------------------------------------------------------------------------------------- writes


def growth_for_paid_fen(*, workspace: Workspace | int, paid_fen: int) -> int:
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    rate = (LoyaltySettings.objects.filter(workspace_id=workspace_id).values_list("growth_per_yuan", flat=True)
            .first())
    rate = Decimal(rate if rate is not None else 1)
    return int((Decimal(int(paid_fen)) / 100 * rate).to_integral_value(rounding=ROUND_FLOOR))


def growth_record(*, workspace: Workspace, customer: Customer, source: str, ref: str, spend_fen: int,
                  growth: int | None = None, at: datetime | None = None) -> bool:
    """Add a growth entry (negative for a refund). False when ``(source, ref)`` was already recorded."""
    if customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    if growth is None:
        sign = -1 if spend_fen < 0 else 1
        growth = sign * growth_for_paid_fen(workspace=workspace, paid_fen=abs(spend_fen))
    try:
        with transaction.atomic():
            GrowthEntry.objects.create(workspace=workspace, customer=customer, source=source, ref=ref[:128],
                                       growth=growth, spend_fen=spend_fen, occurred_at=at or timezone.now())
    except IntegrityError:
        return False
    return True


def growth_follow_merge(*, customer: Customer, target: Customer) -> int:
    """Carry a merged-away profile's growth entries over to the profile it was merged into (each entry once:
    a negating ``merge_out`` on the old profile, a ``merge_in`` copy with the original date on the new one)."""
    moved = 0
    with transaction.atomic():
        for entry in GrowthEntry.objects.filter(customer=customer).exclude(source="merge_out").order_by("pk"):
            if growth_record(workspace=target.workspace, customer=target, source="merge_in", ref=str(entry.pk),
                             spend_fen=entry.spend_fen, growth=entry.growth, at=entry.occurred_at):
                GrowthEntry.objects.create(workspace_id=customer.workspace_id, customer=customer, source="merge_out",
                                           ref=str(entry.pk), growth=-entry.growth, spend_fen=-entry.spend_fen,
                                           occurred_at=entry.occurred_at)
                moved += 1
    return moved


def tier_evaluate(*, customer: Customer, now: datetime | None = None, allow_downgrade: bool = True,
                  reason: str = "evaluation") -> TierChange | None:
    """Put the customer in the tier their growth (or spend) qualifies for; record the change, if any."""
    now = now or timezone.now()
    tiers = tier_levels(workspace=customer.workspace_id)
    basis, _ = tier_basis(workspace=customer.workspace_id)
    growth, spend_fen = growth_of(customer=customer, now=now)
    target = tier_for_value(tiers, basis=basis, growth=growth, spend_fen=spend_fen)
    with transaction.atomic():
        current = _locked_customer_tier(customer, now)
        return _apply(current, tiers, target, growth=growth, spend_fen=spend_fen, now=now,
                      allow_downgrade=allow_downgrade, reason=reason)


def tiers_reevaluate(*, workspace: Workspace, now: datetime | None = None) -> dict[str, int]:
    """The periodic re-evaluation of every customer with growth or a tier: upgrades and downgrades."""
    now = now or timezone.now()
    tiers = tier_levels(workspace=workspace)
    basis, window = tier_basis(workspace=workspace)
    entries = GrowthEntry.objects.filter(workspace=workspace)
    if window:
        entries = entries.filter(occurred_at__gt=now - timedelta(days=window))
    totals = {row["customer_id"]: (int(row["growth"] or 0), int(row["spend"] or 0))
              for row in entries.values("customer_id").annotate(growth=Sum("growth"), spend=Sum("spend_fen"))}
    current = dict(CustomerTier.objects.filter(workspace=workspace).values_list("customer_id", "code"))
    counts = {"evaluated": 0, "up": 0, "down": 0}
    for customer_id in sorted(set(totals) | set(current)):
        growth, spend_fen = totals.get(customer_id, (0, 0))
        target = tier_for_value(tiers, basis=basis, growth=growth, spend_fen=spend_fen)
        counts["evaluated"] += 1
        if target.code == current.get(customer_id, "normal"):
            continue
        customer = Customer.objects.filter(pk=customer_id, workspace=workspace).first()
        if customer is None:
            continue
        with transaction.atomic():
            row = _locked_customer_tier(customer, now)
            change = _apply(row, tiers, target, growth=growth, spend_fen=spend_fen, now=now, allow_downgrade=True,
                            reason="periodic")
        if change is not None:
            counts[change.direction] += 1
    CustomerTier.objects.filter(workspace=workspace).update(evaluated_at=now)
    return counts


def tier_config_update(*, workspace: Workspace, levels: dict[str, dict[str, Any]], basis: str | None = None,
                       window_days: int | None = None, actor: Any = None) -> tuple[Tier, ...]:
    """Operators configure thresholds and benefits (all four tiers validated together), audited."""
    from siyu.core.services import audit_record

    cleaned: dict[str, dict[str, Any]] = {}
    for code, fields in levels.items():
        if code not in TIER_CODES:
            raise SiyuError("tier_code_invalid", "会员等级不存在", "Unknown tier", details={"code": code})
        cleaned[code] = {}
        for key in ("growth_threshold", "spend_threshold_fen", "discount_percent"):
            if key in fields:
                try:
                    value = int(fields[key])
                except (TypeError, ValueError) as error:
                    raise SiyuError("tier_value_invalid", "等级门槛和折扣必须是非负整数",
                                    "Tier thresholds and discounts must be non-negative integers",
                                    details={"code": code, "field": key}) from error
                if value < 0 or value > 10**12:
                    raise SiyuError("tier_value_invalid", "等级门槛和折扣必须是非负整数",
                                    "Tier thresholds and discounts must be non-negative integers",
                                    details={"code": code, "field": key})
                cleaned[code][key] = value
        for key in ("free_shipping", "priority_service", "exclusive_items"):
            if key in fields:
                cleaned[code][key] = bool(fields[key])
    if basis is not None and basis not in {"growth", "spend"}:
        raise SiyuError("tier_basis_invalid", "等级依据只能是成长值或消费金额", "The basis must be growth or spend")
    if window_days is not None and not (0 <= int(window_days) <= 3660):
        raise SiyuError("tier_window_invalid", "统计周期应在 0–3660 天之间", "The window must be 0–3660 days")
    current = {tier.code: {f: getattr(tier, f) for f in ("growth_threshold", "spend_threshold_fen",
                                                         "discount_percent", "free_shipping", "priority_service",
                                                         "exclusive_items")}
               for tier in tier_levels(workspace=workspace)}
    for code, fields in cleaned.items():
        current[code].update(fields)
    merged = tiers_merge(current)
    problems = thresholds_problems(merged)
    if problems:
        raise SiyuError("tier_thresholds_invalid", "等级门槛必须逐级递增，折扣在 0–90% 之间",
                        "Thresholds must rise with each tier and discounts stay within 0–90%",
                        details={"problems": problems})
    with transaction.atomic():
        for tier in merged:
            TierLevel.objects.update_or_create(workspace=workspace, code=tier.code, defaults={
                "growth_threshold": tier.growth_threshold, "spend_threshold_fen": tier.spend_threshold_fen,
                "discount_percent": tier.discount_percent, "free_shipping": tier.free_shipping,
                "priority_service": tier.priority_service, "exclusive_items": tier.exclusive_items})
        if basis is not None or window_days is not None:
            settings, _ = LoyaltySettings.objects.get_or_create(workspace=workspace)
            if basis is not None:
                settings.tier_basis = basis
            if window_days is not None:
                settings.tier_window_days = int(window_days)
            settings.save()
        audit_record(workspace=workspace, actor=actor, action="tier_config_update", target_type="loyalty",
                     target_id=workspace.pk, levels=cleaned, basis=basis, window_days=window_days)
    return merged


# ---------------------------------------------------------------------------------------------------- internals


def _locked_customer_tier(customer: Customer, now: datetime) -> CustomerTier:
    row = CustomerTier.objects.select_for_update().filter(customer=customer).first()
    if row is None:
        try:
            with transaction.atomic():
                CustomerTier.objects.create(workspace_id=customer.workspace_id, customer=customer, code="normal",
                                            since=now, evaluated_at=now)
        except IntegrityError:
            pass
        row = CustomerTier.objects.select_for_update().get(customer=customer)
    return row


def _apply(row: CustomerTier, tiers, target: Tier, *, growth: int, spend_fen: int, now: datetime,
           allow_downgrade: bool, reason: str) -> TierChange | None:
    ranks = {tier.code: tier.rank for tier in tiers}
    row.evaluated_at = now
    if target.code == row.code or (ranks[target.code] < ranks[row.code] and not allow_downgrade):
        row.save(update_fields=["evaluated_at"])
        return None
    direction = "up" if ranks[target.code] > ranks[row.code] else "down"
    change = TierChange.objects.create(workspace_id=row.workspace_id, customer_id=row.customer_id,
                                       from_code=row.code, to_code=target.code, direction=direction,
                                       growth_value=growth, spend_fen=spend_fen, reason=reason, at=now)
    row.code, row.since = target.code, now
    row.save(update_fields=["code", "since", "evaluated_at"])
    publish(TIER_CHANGED, workspace_id=row.workspace_id, customer_id=row.customer_id, from_code=change.from_code,
            to_code=change.to_code, direction=direction, change_id=change.pk)
    return change
