"""The points lottery (抽奖): spend points to draw from the workspace's prize table.

A draw is one transaction: the cost is spent through the ledger (the customer's account row lock serialises
a customer's draws, so the daily limit holds under concurrency), a prize is picked by weight among those with
stock left, its stock taken by a conditional ``UPDATE … WHERE stock > 0`` (never negative: a prize emptied
concurrently is dropped and the pick repeated), and the draw recorded. Idempotent by the client's ``ref``.
A points prize is credited at once; coupons are issued by the commerce layer that calls ``lottery_draw``
in its own transaction (loyalty sits below commerce). Tests pass a seeded ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import local_day
from siyu.customers.models import Customer
from siyu.loyalty.checkin import member_rules
from siyu.loyalty.member_rules import lottery_pick
from siyu.loyalty.models import LotteryDraw, LotteryPrize, Reason, RewardKind
from siyu.loyalty.points import points_earn, points_spend

MAX_WEIGHT = 1_000_000
_system_random = random.SystemRandom()


@dataclass(frozen=True)
class DrawResult:
    draw: LotteryDraw
    created: bool  # False: a replay of an earlier draw with the same ref (nothing changed)

    @property
    def prize(self) -> LotteryPrize | None:
        return self.draw.prize


def lottery_prizes(*, workspace: Workspace, active_only: bool = True) -> list[LotteryPrize]:
    rows = LotteryPrize.objects.filter(workspace=workspace)
    return list(rows.filter(is_active=True) if active_only else rows)


def lottery_odds(prizes: list[LotteryPrize]) -> dict[int, float]:
    """Each winnable prize's chance in percent (prizes out of stock cannot be drawn)."""
    live = [(prize.pk, prize.weight) for prize in prizes if prize.stock is None or prize.stock > 0]
    total = sum(weight for _, weight in live)
    return {pk: (weight * 100 / total if total else 0.0) for pk, weight in live}


def lottery_draw(*, workspace: Workspace, customer: Customer, ref: str, rng: random.Random | None = None,
                 now: datetime | None = None) -> DrawResult:
    if customer is None or customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    ref = (ref or "").strip()
    if not ref or len(ref) > 80:
        raise SiyuError("lottery_ref_invalid", "抽奖编号无效", "Invalid draw reference", details={"field": "ref"})
    existing = LotteryDraw.objects.filter(workspace=workspace, ref=ref).select_related("prize").first()
    if existing is not None:
        if existing.customer_id != customer.pk:
            raise SiyuError("lottery_ref_conflict", "该抽奖编号已被使用", "This draw reference was already used",
                            status=409)
        return DrawResult(existing, False)
    rules = member_rules(workspace=workspace)
    if not rules.lottery_enabled:
        raise SiyuError("lottery_disabled", "抽奖活动未开启", "The lottery is not open", status=409)
    prizes = lottery_prizes(workspace=workspace)
    if not any(prize.weight > 0 for prize in prizes):
        raise SiyuError("lottery_not_configured", "抽奖奖品尚未配置", "No prizes are configured", status=409)
    rng = rng or _system_random
    now = now or timezone.now()
    today = local_day(now)
    with transaction.atomic():
        if rules.lottery_cost:
            # Locks the customer's points account: their draws are serialised from here on.
            points_spend(workspace=workspace, customer=customer, amount=rules.lottery_cost, ref=f"lottery:{ref}",
                         reason=Reason.LOTTERY, note="抽奖")
        else:
            Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if rules.lottery_daily_limit and LotteryDraw.objects.filter(customer=customer, day=today).count() >= \
                rules.lottery_daily_limit:
            raise SiyuError("lottery_daily_limit", f"今天的抽奖次数已用完（每天 {rules.lottery_daily_limit} 次）",
                            f"No draws left today ({rules.lottery_daily_limit} a day)", status=409,
                            details={"limit": rules.lottery_daily_limit})
        prize = _pick_with_stock(prizes, rng)
        draw = LotteryDraw.objects.create(workspace=workspace, customer=customer, ref=ref, prize=prize,
                                          cost=rules.lottery_cost, day=today, created_at=now)
        if prize is not None and prize.kind == RewardKind.POINTS and prize.points:
            points_earn(workspace=workspace, customer=customer, amount=prize.points, reason=Reason.LOTTERY,
                        ref=f"lottery-prize:{ref}", at=now, note=prize.name, details={"prize_id": prize.pk})
    return DrawResult(draw, True)


def _pick_with_stock(prizes: list[LotteryPrize], rng: random.Random) -> LotteryPrize | None:
    candidates = {prize.pk: prize for prize in prizes if prize.stock is None or prize.stock > 0}
    while candidates:
        chosen = lottery_pick([(pk, prize.weight) for pk, prize in candidates.items()], rng)
        if chosen is None:
            return None
        prize = candidates[chosen]
        if prize.stock is None:
            return prize
        if LotteryPrize.objects.filter(pk=prize.pk, stock__gt=0).update(stock=F("stock") - 1) == 1:
            prize.stock -= 1
            return prize
        del candidates[chosen]  # emptied by a concurrent draw: pick again among the rest
    return None


def prize_save(*, workspace: Workspace, fields: dict[str, Any], prize_id: Any = None,
               actor: Any = None) -> LotteryPrize:
    """Create or edit a prize (name, kind, weight, stock, points / coupon template), validated, audited."""
    from siyu.core.services import audit_record

    prize = None
    if prize_id not in (None, ""):
        text = str(prize_id)
        prize = (LotteryPrize.objects.filter(workspace=workspace, pk=int(text)).first()
                 if text.isdigit() and len(text) <= 18 else None)
        if prize is None:
            raise SiyuError("prize_not_found", "奖品不存在", "Prize not found", status=404)
    name = str(fields.get("name", prize.name if prize else "")).strip()
    if not name or len(name) > 64:
        raise SiyuError("prize_invalid", "奖品名称不能为空，最多 64 个字", "The prize name is required (64 max)",
                        details={"field": "name"})
    kind = str(fields.get("kind", prize.kind if prize else "")).strip()
    if kind not in RewardKind.values:
        raise SiyuError("prize_invalid", "奖品类型无效", "Unknown prize kind", details={"field": "kind"})
    weight = _whole(fields.get("weight", prize.weight if prize else ""), "weight", 0, MAX_WEIGHT)
    stock_text = str(fields.get("stock", "" if prize is None or prize.stock is None else prize.stock)).strip()
    stock = None if stock_text == "" else _whole(stock_text, "stock", 0, 10**9)
    points = _whole(fields.get("points", prize.points if prize else 0) or 0, "points", 0, 10**7)
    template_text = str(fields.get("coupon_template_id", (prize.coupon_template_id if prize else "") or "")).strip()
    template_id = _whole(template_text, "coupon_template_id", 1, 10**15) if template_text else None
    if kind == RewardKind.POINTS and points < 1:
        raise SiyuError("prize_invalid", "积分奖品需填写积分数量", "A points prize needs a number of points",
                        details={"field": "points"})
    if kind == RewardKind.COUPON and template_id is None:
        raise SiyuError("prize_invalid", "优惠券奖品需选择优惠券", "A coupon prize needs a coupon template",
                        details={"field": "coupon_template_id"})
    with transaction.atomic():
        prize = prize or LotteryPrize(workspace=workspace)
        prize.name, prize.kind, prize.weight, prize.stock, prize.points = name, kind, weight, stock, points
        prize.coupon_template_id = template_id if kind == RewardKind.COUPON else None
        prize.is_active = bool(fields.get("is_active", prize.is_active if prize.pk else True))
        prize.save()
        audit_record(workspace=workspace, actor=actor, action="lottery_prize_save", target_type="lottery_prize",
                     target_id=prize.pk, name=name, kind=kind, weight=weight, stock=stock)
    return prize


def lottery_stats(*, workspace: Workspace) -> list[dict]:
    counts = dict(LotteryDraw.objects.filter(workspace=workspace).values("prize_id").annotate(n=Count("pk"))
                  .values_list("prize_id", "n"))
    return [{"prize": prize, "won": counts.get(prize.pk, 0)} for prize in lottery_prizes(workspace=workspace,
                                                                                         active_only=False)]


def _whole(value: Any, field: str, low: int, high: int) -> int:
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise SiyuError("prize_invalid", f"数值应为 {low}–{high} 的整数", f"Must be a whole number from {low} to {high}",
                        details={"field": field})
    return int(text)
