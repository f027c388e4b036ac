"""Tier benefits other areas read: whether a customer's tier reaches a product's 会员专享 tier, and the
priority-service flag (the service bot reads ``priority_service``). Discounts and free shipping are applied by
commerce's pricing from ``tier_of`` already."""

from __future__ import annotations

from collections.abc import Mapping

from siyu.core.errors import SiyuError
from siyu.customers.models import Customer
from siyu.loyalty.tier_rules import TIER_CODES, TIER_NAMES
from siyu.loyalty.tiers import tier_of


def tier_rank(code: str) -> int:
    return TIER_CODES.index(code) if code in TIER_CODES else 0


def tier_meets(*, customer: Customer | None, min_tier: str) -> bool:
    """True when the product is for everyone ("" / 普通) or the customer's tier is at least ``min_tier``."""
    if not min_tier or tier_rank(min_tier) == 0:
        return True
    if customer is None:
        return False
    return tier_rank(tier_of(customer=customer).code) >= tier_rank(min_tier)


def exclusive_items_check(*, customer: Customer | None, min_tiers: Mapping[int, str]) -> None:
    """Refuse (403 ``tier_required``) when any product of ``{product_id: min_tier}`` is exclusive to a tier
    above the customer's. Checkout calls this with the products of its lines before reserving anything."""
    missing = {product_id: code for product_id, code in min_tiers.items()
               if not tier_meets(customer=customer, min_tier=code)}
    if missing:
        highest = max(missing.values(), key=tier_rank)
        zh, en = TIER_NAMES[highest]
        raise SiyuError("tier_required", f"该商品为{zh}及以上会员专享", f"This item is exclusive to {en} members and above",
                        status=403, details={"product_ids": sorted(missing), "min_tier": highest})


def priority_service(*, customer: Customer) -> bool:
    """Whether the customer's tier carries 优先服务 (the service bot routes them to a human first)."""
    return tier_of(customer=customer).priority_service
