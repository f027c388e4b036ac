"""Factories for promotions (coupon templates, 满减, limited-time discounts, flash sales) other areas can use.

    from tests.commerce.promotions_fixtures import make_customer, make_coupon_template, make_flash_sale
    template = make_coupon_template(workspace, kind="threshold", threshold_fen=10000, amount_fen=1000)
    sale = make_flash_sale(workspace, sku, price_fen=100, stock=20)
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from siyu.commerce.promotions.models import (
    CouponTemplate,
    FlashSale,
    FullReductionRule,
    LimitedTimeDiscount,
)
from siyu.customers.models import Customer


def make_customer(workspace, **fields) -> Customer:
    at = timezone.now()
    return Customer.objects.create(workspace=workspace, first_seen_at=at, last_seen_at=at, **fields)


def _window(hours: float = 24):
    now = timezone.now()
    return now - timedelta(minutes=5), now + timedelta(hours=hours)


def make_coupon_template(workspace, *, name: str = "测试券", kind: str = "no_threshold", **fields) -> CouponTemplate:
    fields.setdefault("valid_days", 7)
    return CouponTemplate.objects.create(workspace=workspace, name=name, kind=kind, **fields)


def make_full_reduction(workspace, *, tiers=((10000, 1000),), name: str = "满100减10", **fields) -> FullReductionRule:
    starts, ends = _window()
    fields.setdefault("starts_at", starts)
    fields.setdefault("ends_at", ends)
    return FullReductionRule.objects.create(workspace=workspace, name=name, tiers=[list(t) for t in tiers], **fields)


def make_limited_discount(workspace, *, name: str = "限时折扣", **fields) -> LimitedTimeDiscount:
    starts, ends = _window()
    fields.setdefault("starts_at", starts)
    fields.setdefault("ends_at", ends)
    return LimitedTimeDiscount.objects.create(workspace=workspace, name=name, **fields)


def make_flash_sale(workspace, sku, *, price_fen: int = 100, stock: int = 20, per_customer_limit: int = 1,
                    **fields) -> FlashSale:
    starts, ends = _window()
    fields.setdefault("starts_at", starts)
    fields.setdefault("ends_at", ends)
    return FlashSale.objects.create(workspace=workspace, sku=sku, name=fields.pop("name", "秒杀"), price_fen=price_fen,
                                    stock_total=stock, stock_left=stock, per_customer_limit=per_customer_limit,
                                    **fields)
