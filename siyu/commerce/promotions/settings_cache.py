"""The workspace's pricing settings (active 满减 rules, limited-time discounts, shipping), cached per process.

Every quote needs them and they change rarely, so each process keeps them per workspace under the
workspace's ``PromotionsVersion`` token: one small primary-key read per quote instead of three queries.
Any change of those rows (save or delete, signals below; bulk ``update`` calls bump explicitly) writes a new
random token in the same transaction, so every process re-reads the settings on its next quote once the
change is committed. Time windows are applied per request (a rule that starts or ends needs no change).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models.signals import post_delete, post_save

from siyu.commerce.promotions.models import (
    FullReductionRule,
    LimitedTimeDiscount,
    PromotionStatus,
    PromotionsVersion,
    ShippingSettings,
)


@dataclass(frozen=True)
class PricingSettings:
    token: str
    limited: tuple[LimitedTimeDiscount, ...]  # active status, any time window, by id
    rules: tuple[FullReductionRule, ...]  # newest first (as the quote always took them)
    shipping: ShippingSettings

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


def _token(workspace_id: int) -> str:
    token = PromotionsVersion.objects.filter(workspace_id=workspace_id).values_list("token", flat=True).first()
    if token is None:  # first quote of the workspace: start versioning it
        settings_changed(workspace_id=workspace_id)
        token = PromotionsVersion.objects.filter(workspace_id=workspace_id).values_list("token", flat=True).first()
    return token


def pricing_settings(*, workspace) -> PricingSettings:
    """The workspace's pricing settings as committed now (cached while its token stays the same)."""
    token = _token(workspace.id)
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
    )
    with _lock:
        _cache[workspace.id] = fresh
    return fresh


def _on_change(sender, instance, **kwargs) -> None:
    settings_changed(workspace_id=instance.workspace_id)


for _model in (FullReductionRule, LimitedTimeDiscount, ShippingSettings):
    post_save.connect(_on_change, sender=_model, dispatch_uid=f"promotions_settings_{_model.__name__}_save")
    post_delete.connect(_on_change, sender=_model, dispatch_uid=f"promotions_settings_{_model.__name__}_delete")
