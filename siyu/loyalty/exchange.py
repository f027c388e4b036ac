"""The points mall (积分兑换): spend points for a coupon or a gift.

One transaction: the points spent through the ledger (under the customer's account lock, so the per-customer
limit holds under concurrency), the item's stock taken by a conditional ``UPDATE … WHERE stock > 0`` (never
negative), the redemption recorded. Idempotent by the client's ``ref``. A coupon is issued by the commerce
layer calling ``exchange_redeem`` inside its own transaction (loyalty sits below commerce and never imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.loyalty.models import ExchangeItem, ExchangeRedemption, Reason, RewardKind
from siyu.loyalty.points import points_spend


@dataclass(frozen=True)
class RedeemResult:
    redemption: ExchangeRedemption
    created: bool


def exchange_items(*, workspace: Workspace, active_only: bool = True) -> list[ExchangeItem]:
    rows = ExchangeItem.objects.filter(workspace=workspace)
    return list(rows.filter(is_active=True) if active_only else rows)


def exchange_redeem(*, workspace: Workspace, customer: Customer, item_id: Any, ref: str,
                    now: datetime | None = None) -> RedeemResult:
    if customer is None or customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    ref = (ref or "").strip()
    if not ref or len(ref) > 80:
        raise SiyuError("exchange_ref_invalid", "兑换编号无效", "Invalid exchange reference", details={"field": "ref"})
    item = _item(workspace, item_id)
    existing = ExchangeRedemption.objects.filter(workspace=workspace, ref=ref).first()
    if existing is not None:
        if existing.customer_id != customer.pk or existing.item_id != item.pk:
            raise SiyuError("exchange_ref_conflict", "该兑换编号已被使用", "This exchange reference was already used",
                            status=409)
        return RedeemResult(existing, False)
    now = now or timezone.now()
    with transaction.atomic():
        points_spend(workspace=workspace, customer=customer, amount=item.points_cost, ref=f"exchange:{ref}",
                     reason=Reason.EXCHANGE, note=item.title)
        if item.per_customer_limit and ExchangeRedemption.objects.filter(item=item, customer=customer).count() >= \
                item.per_customer_limit:
            raise SiyuError("exchange_limit_reached", f"每人限兑 {item.per_customer_limit} 次",
                            f"Limited to {item.per_customer_limit} per customer", status=409,
                            details={"limit": item.per_customer_limit})
        if ExchangeItem.objects.filter(pk=item.pk, stock__gt=0).update(stock=F("stock") - 1) != 1:
            raise SiyuError("exchange_out_of_stock", "已兑完", "Out of stock", status=409)
        redemption = ExchangeRedemption.objects.create(workspace=workspace, customer=customer, item=item, ref=ref,
                                                       points=item.points_cost, created_at=now)
    return RedeemResult(redemption, True)


def exchange_item_save(*, workspace: Workspace, fields: dict[str, Any], item_id: Any = None,
                       actor: Any = None) -> ExchangeItem:
    """Create or edit an item of the mall (validated, audited)."""
    from siyu.core.services import audit_record

    item = _item(workspace, item_id, active_only=False) if item_id not in (None, "") else None
    title = str(fields.get("title", item.title if item else "")).strip()
    if not title or len(title) > 64:
        raise SiyuError("exchange_item_invalid", "名称不能为空，最多 64 个字", "The title is required (64 max)",
                        details={"field": "title"})
    kind = str(fields.get("kind", item.kind if item else "")).strip()
    if kind not in (RewardKind.COUPON, RewardKind.GIFT):
        raise SiyuError("exchange_item_invalid", "兑换品只能是优惠券或礼品", "An item is a coupon or a gift",
                        details={"field": "kind"})
    cost = _whole(fields.get("points_cost", item.points_cost if item else ""), "points_cost", 1, 10**8)
    stock = _whole(fields.get("stock", item.stock if item else 0), "stock", 0, 10**9)
    limit = _whole(fields.get("per_customer_limit", item.per_customer_limit if item else 1), "per_customer_limit",
                   0, 1000)
    template_text = str(fields.get("coupon_template_id", (item.coupon_template_id if item else "") or "")).strip()
    template_id = _whole(template_text, "coupon_template_id", 1, 10**15) if template_text else None
    if kind == RewardKind.COUPON and template_id is None:
        raise SiyuError("exchange_item_invalid", "优惠券兑换品需选择优惠券", "A coupon item needs a coupon template",
                        details={"field": "coupon_template_id"})
    with transaction.atomic():
        item = item or ExchangeItem(workspace=workspace)
        item.title, item.kind, item.points_cost, item.stock, item.per_customer_limit = title, kind, cost, stock, limit
        item.coupon_template_id = template_id if kind == RewardKind.COUPON else None
        item.is_active = bool(fields.get("is_active", item.is_active if item.pk else True))
        item.save()
        audit_record(workspace=workspace, actor=actor, action="exchange_item_save", target_type="exchange_item",
                     target_id=item.pk, title=title, kind=kind, points_cost=cost, stock=stock)
    return item


def _item(workspace: Workspace, item_id: Any, *, active_only: bool = True) -> ExchangeItem:
    text = str(item_id or "").strip()
    item = None
    if text.isdigit() and len(text) <= 18:
        rows = ExchangeItem.objects.filter(workspace=workspace, pk=int(text))
        item = (rows.filter(is_active=True) if active_only else rows).first()
    if item is None:
        raise SiyuError("exchange_item_not_found", "兑换品不存在", "Exchange item not found", status=404)
    return item


def _whole(value: Any, field: str, low: int, high: int) -> int:
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise SiyuError("exchange_item_invalid", f"数值应为 {low}–{high} 的整数",
                        f"Must be a whole number from {low} to {high}", details={"field": field})
    return int(text)
