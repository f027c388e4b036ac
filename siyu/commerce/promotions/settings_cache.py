"""The workspace's pricing settings (active 满减 rules, limited-time discounts, shipping, member tier levels),
cached per process.

Every quote needs them and they change rarely, so each process keeps them per workspace under the
workspace's ``PromotionsVersion`` token: one small primary-key read per quote instead of four queries (the
same read also brings the customer's tier code, see :func:`pricing_settings_for`).
Any change of those rows (save or delete, signals below; bulk ``update`` calls bump explicitly) writes a new
random token in the same transaction, so every process re-reads the settings on its next quote once the
change is committed. Time windows are applied per request (a rule that starts or ends needs no change).
Tier levels are loyalty's rows (``TierLevel``, written only by ``update_or_create``): their save/delete
signals bump the token too. A customer's own tier (``CustomerTier``) is never cached.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Subquery
from django.db.models.signals import post_delete, post_save

from siyu.commerce.promotions.models import (
    FullReductionRule,
    LimitedTimeDiscount,
    PromotionStatus,
    PromotionsVersion,
    ShippingSettings,
)
from siyu.loyalty.models import CustomerTier, TierLevel
from siyu.loyalty.tier_rules import DEFAULT_TIERS, Tier
from siyu.loyalty.tiers import tier_levels


@dataclass(frozen=True)
class PricingSettings:
    token: str
    limited: tuple[LimitedTimeDiscount, ...]  # active status, any time window, by id
    rules: tuple[FullReductionRule, ...]  # newest first (as the quote always took them)
    shipping: ShippingSettings
    tiers: tuple[Tier, ...]  # the workspace's four member tiers, lowest first (loyalty's ``tier_levels``)

    def tier(self, code: str | None) -> Tier:
        """The tier of this code (no code, or one no longer known: the lowest, 普通)."""
        code = code or "normal"
        return next((tier for tier in self.tiers if tier.code == code), self.tiers[0])

    def limited_now(self, now: datetime) -> list[LimitedTimeDiscount]:
        return [row for row in self.limited if row.starts_at <= now < row.ends_at]

    def rules_now(self, now: datetime) -> list[FullReductionRule]:
        return [row for row in self.rules if row.starts_at <= now < row.ends_at]


_cache: dict[int, PricingSettings] = {}
_lock = threading.Lock()


def settings_changed(*, workspace_id: int) -> None:
    """A new token for the workspace (call inside the transaction that changes its pricing settings)."""
    token = uuid.uuid4().hex
    if not PromotionsVersion.objects.filter(workspace_id=workspace_id).update(token=token):
        PromotionsVersion.objects.bulk_create([PromotionsVersion(workspace_id=workspace_id, token=token)],
                                              update_conflicts=True, update_fields=["token"],
                                              unique_fields=["workspace"])


def _token_and_tier(workspace_id: int, customer_id: int | None) -> tuple[str, str | None]:
    """(the workspace's token, the customer's tier code or None) in one query."""
    rows = PromotionsVersion.objects.filter(workspace_id=workspace_id)
    if customer_id is None:
        found = rows.values_list("token", flat=True).first()
        return (found, None) if found is not None else _token_started(workspace_id, customer_id)
    tier = CustomerTier.objects.filter(customer_id=customer_id).order_by("id").values("code")[:1]
    found = rows.annotate(tier_code=Subquery(tier)).values_list("token", "tier_code").first()
    return found if found is not None else _token_started(workspace_id, customer_id)


def _token_started(workspace_id: int, customer_id: int | None) -> tuple[str, str | None]:
    settings_changed(workspace_id=workspace_id)  # first quote of the workspace: start versioning it
    return _token_and_tier(workspace_id, customer_id)


def pricing_settings(*, workspace) -> PricingSettings:
    """The workspace's pricing settings as committed now (cached while its token stays the same)."""
    token, _ = _token_and_tier(workspace.id, None)
    return _settings(workspace, token)


def pricing_settings_for(*, workspace, customer) -> tuple[PricingSettings, Tier]:
    """The pricing settings and the customer's member tier as loyalty's ``tier_of`` gives it (a visitor, None:
    the default 普通), one query when the settings are cached."""
    token, code = _token_and_tier(workspace.id, customer.pk if customer is not None else None)
    settings = _settings(workspace, token)
    return settings, (settings.tier(code) if customer is not None else DEFAULT_TIERS[0])


def _settings(workspace, token: str) -> PricingSettings:
    cached = _cache.get(workspace.id)
    if cached is not None and cached.token == token:
        return cached
    fresh = PricingSettings(
        token=token,
        limited=tuple(LimitedTimeDiscount.objects.filter(workspace=workspace, status=PromotionStatus.ACTIVE)
                      .order_by("id")),
        rules=tuple(FullReductionRule.objects.filter(workspace=workspace, status=PromotionStatus.ACTIVE)
                    .order_by("-id")),
        shipping=ShippingSettings.objects.filter(workspace=workspace).first() or ShippingSettings(workspace=workspace),
        tiers=tier_levels(workspace=workspace.id),
    )
    with _lock:
        _cache[workspace.id] = fresh
    return fresh


def _on_change(sender, instance, **kwargs) -> None:
    settings_changed(workspace_id=instance.workspace_id)


def _on_delete(sender, instance, **kwargs) -> None:
    # Only a token that exists can have settings cached under it; never insert one here (a workspace being
    # deleted cascades to these rows, and a new token row would then point at a deleted workspace).
    PromotionsVersion.objects.filter(workspace_id=instance.workspace_id).update(token=uuid.uuid4().hex)


for _model in (FullReductionRule, LimitedTimeDiscount, ShippingSettings, TierLevel):
    post_save.connect(_on_change, sender=_model, dispatch_uid=f"promotions_settings_{_model.__name__}_save")
    post_delete.connect(_on_delete, sender=_model, dispatch_uid=f"promotions_settings_{_model.__name__}_delete")
