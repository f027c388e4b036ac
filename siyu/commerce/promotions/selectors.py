"""Reads for the console: promotions with their state, flash sales with sold/held/left, coupon statistics."""

from __future__ import annotations

from django.db.models import Count, Q, Sum
from django.utils import timezone

from siyu.commerce.promotions.models import (
    CouponState,
    CouponTemplate,
    FlashReservationState,
    FlashSale,
    FullReductionRule,
    LimitedTimeDiscount,
    PromotionStatus,
)


def phase_of(row, now) -> str:
    """ended | upcoming | running, for display."""
    if row.status != PromotionStatus.ACTIVE or now >= row.ends_at:
        return "ended"
    return "upcoming" if now < row.starts_at else "running"


def promotions_overview(*, workspace, now=None) -> dict:
    now = now or timezone.now()
    rules = list(FullReductionRule.objects.filter(workspace=workspace)[:200])
    discounts = list(LimitedTimeDiscount.objects.filter(workspace=workspace)[:200])
    sales = list(FlashSale.objects.filter(workspace=workspace).select_related("sku__product").annotate(
        sold=Sum("reservations__quantity", filter=Q(reservations__state=FlashReservationState.COMMITTED),
                 default=0),
        held=Sum("reservations__quantity", filter=Q(reservations__state=FlashReservationState.HELD), default=0),
    )[:200])
    for row in (*rules, *discounts, *sales):
        row.phase = phase_of(row, now)
    return {"rules": rules, "discounts": discounts, "sales": sales}


def coupon_template_stats(*, workspace, now=None) -> list[CouponTemplate]:
    """Templates with claimed / available / locked / used / expired counts (coupons past expiry that the
    periodic task has not marked yet count as expired)."""
    now = now or timezone.now()
    live = Q(coupons__state=CouponState.AVAILABLE, coupons__expires_at__gt=now)
    templates = list(CouponTemplate.objects.filter(workspace=workspace).annotate(
        claimed=Count("coupons"),
        available=Count("coupons", filter=live),
        locked=Count("coupons", filter=Q(coupons__state=CouponState.LOCKED)),
        used=Count("coupons", filter=Q(coupons__state=CouponState.USED)),
        expired=Count("coupons", filter=Q(coupons__state=CouponState.EXPIRED)
                      | Q(coupons__state=CouponState.AVAILABLE, coupons__expires_at__lte=now)),
    )[:200])
    for template in templates:
        base = max(template.claimed, 1)
        template.bars = [(key, getattr(template, key), round(100 * getattr(template, key) / base))
                         for key in ("used", "available", "locked", "expired")]
    return templates
