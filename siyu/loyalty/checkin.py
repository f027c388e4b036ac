"""Point sources of everyday activity: daily check-in (with streak bonuses), shares (capped per day) and
reviews of delivered order lines — and the per-workspace rules that configure them and the lottery.

Each reward is exactly once by a unique key: one ``CheckIn`` per customer per Shanghai day (concurrent taps
collide on it and all but one find the first), one ``ShareReward`` per share ref, one review earn per order
line (the points ref). Points always move through the ledger (``points_earn``), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.timeutil import local_day
from siyu.customers.models import Customer
from siyu.loyalty.member_rules import DEFAULT_STREAK_BONUS, streak_after, streak_bonus
from siyu.loyalty.missions import mission_progress
from siyu.loyalty.models import CheckIn, MemberRules, PointsTransaction, Reason, ShareReward
from siyu.loyalty.points import points_earn

MAX_TEMPLATE_ID = 64
RULE_LIMITS = {  # field: (minimum, maximum)
    "checkin_points": (0, 10_000), "share_points": (0, 10_000), "share_daily_cap": (0, 100),
    "review_points": (0, 100_000), "review_min_chars": (1, 2000), "review_max_chars": (1, 2000),
    "lottery_cost": (0, 1_000_000), "lottery_daily_limit": (0, 1000),
}


def member_rules(*, workspace: Workspace | int) -> MemberRules:
    """The workspace's rules, or an unsaved row with the product defaults."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    row = MemberRules.objects.filter(workspace_id=workspace_id).first()
    if row is None:
        row = MemberRules(workspace_id=workspace_id, checkin_streak_bonus=dict(DEFAULT_STREAK_BONUS))
    return row


def member_rules_update(*, workspace: Workspace, changes: dict[str, Any], actor: Any = None) -> MemberRules:
    """Operators change the rules (validated together: nothing is written when one value is refused)."""
    from siyu.core.services import audit_record

    rules = member_rules(workspace=workspace)
    cleaned: dict[str, Any] = {}
    for key, value in changes.items():
        if key in RULE_LIMITS:
            low, high = RULE_LIMITS[key]
            text = str(value).strip()
            if not text.isdigit() or not low <= int(text) <= high:
                raise SiyuError("member_rule_invalid", f"规则取值应为 {low}–{high} 的整数",
                                f"The value must be a whole number from {low} to {high}", details={"field": key})
            cleaned[key] = int(text)
        elif key in {"checkin_enabled", "lottery_enabled"}:
            cleaned[key] = bool(value)
        elif key == "checkin_streak_bonus":
            if not isinstance(value, dict):
                raise SiyuError("member_rule_invalid", "连续签到奖励格式应为 天数:积分", "Streak bonuses are days:points",
                                details={"field": key})
            cleaned[key] = value
        elif key in {"tier_notice_template_id", "tier_notice_subscribe_template_id"}:
            text = str(value or "").strip()
            if len(text) > MAX_TEMPLATE_ID or any(not (ch.isalnum() or ch in "-_") for ch in text):
                raise SiyuError("member_rule_invalid", "模板 ID 格式不正确", "Malformed template id",
                                details={"field": key})
            cleaned[key] = text
        else:
            raise SiyuError("member_rule_invalid", "未知的规则项", "Unknown rule", details={"field": key})
    minimum = cleaned.get("review_min_chars", rules.review_min_chars)
    maximum = cleaned.get("review_max_chars", rules.review_max_chars)
    if minimum > maximum:
        raise SiyuError("member_rule_invalid", "评价最少字数不能大于最多字数",
                        "The minimum review length cannot exceed the maximum", details={"field": "review_min_chars"})
    with transaction.atomic():
        for key, value in cleaned.items():
            setattr(rules, key, value)
        rules.save()
        audit_record(workspace=workspace, actor=actor, action="member_rules_update", target_type="loyalty",
                     target_id=workspace.pk, changes={k: v for k, v in cleaned.items()})
    return rules


# ---------------------------------------------------------------------------------------------------- check-in


@dataclass(frozen=True)
class CheckInResult:
    check_in: CheckIn
    created: bool  # False: the customer had already checked in today (nothing changed)


def checkin_today(*, customer: Customer, now: datetime | None = None) -> CheckIn | None:
    return CheckIn.objects.filter(customer=customer, day=local_day(now or timezone.now())).first()


def checkin_streak(*, customer: Customer, now: datetime | None = None) -> int:
    """The streak as it stands now: today's, else yesterday's (still alive until today ends), else 0."""
    today = local_day(now or timezone.now())
    row = (CheckIn.objects.filter(customer=customer, day__in=[today, today - timedelta(days=1)])
           .order_by("-day").first())
    return row.streak if row else 0


def checkin(*, workspace: Workspace, customer: Customer, now: datetime | None = None) -> CheckInResult:
    """Check in for the Shanghai day: points (+ a bonus on streak milestones), the 签到 task's progress.

    Once a day: a second call — even concurrent with the first — finds the first check-in and changes nothing.
    """
    _check_customer(workspace, customer)
    rules = member_rules(workspace=workspace)
    if not rules.checkin_enabled:
        raise SiyuError("checkin_disabled", "签到活动未开启", "Check-in is not enabled", status=409)
    now = now or timezone.now()
    today = local_day(now)
    existing = CheckIn.objects.filter(customer=customer, day=today).first()
    if existing is not None:
        return CheckInResult(existing, False)
    with transaction.atomic():
        last = CheckIn.objects.filter(customer=customer, day__lt=today).order_by("-day").first()
        streak = streak_after(last_day=last.day if last else None, last_streak=last.streak if last else 0,
                              today=today)
        bonus = streak_bonus(rules.checkin_streak_bonus, streak)
        try:
            with transaction.atomic():
                row = CheckIn.objects.create(workspace=workspace, customer=customer, day=today, streak=streak,
                                             points=rules.checkin_points + bonus, bonus=bonus, created_at=now)
        except IntegrityError:
            # A concurrent check-in of the same day won (the unique key waited for it to commit).
            return CheckInResult(CheckIn.objects.get(customer=customer, day=today), False)
        if row.points:
            points_earn(workspace=workspace, customer=customer, amount=row.points, reason=Reason.CHECKIN,
                        ref=f"checkin:{customer.pk}:{today.isoformat()}", at=now,
                        details={"streak": streak, "bonus": bonus})
        mission_progress(workspace=workspace, customer=customer, trigger="checkin", key=today.isoformat(), at=now)
    return CheckInResult(row, True)


# ---------------------------------------------------------------------------------------------------- share


def share_record(*, workspace: Workspace, customer: Customer, target: str, ref: str,
                 now: datetime | None = None) -> ShareReward:
    """A share of a product or page: points while the day's cap lasts, the 分享 task's progress.

    Idempotent by ``ref`` (the client's share id): a replay returns the first record.
    """
    _check_customer(workspace, customer)
    target = (target or "").strip()
    ref = (ref or "").strip()
    if not target or len(target) > 200:
        raise SiyuError("share_target_invalid", "分享的内容无效", "Invalid share target", details={"field": "target"})
    if not ref or len(ref) > 96:
        raise SiyuError("share_ref_invalid", "分享编号无效", "Invalid share reference", details={"field": "ref"})
    rules = member_rules(workspace=workspace)
    now = now or timezone.now()
    today = local_day(now)
    with transaction.atomic():
        # The customer's row serialises their shares, so the daily cap holds under concurrent calls.
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
        existing = ShareReward.objects.filter(workspace=workspace, customer=customer, ref=ref).first()
        if existing is not None:
            return existing
        rewarded = ShareReward.objects.filter(customer=customer, day=today, points__gt=0).count()
        points = rules.share_points if rewarded < rules.share_daily_cap else 0
        row = ShareReward.objects.create(workspace=workspace, customer=customer, ref=ref, target=target, day=today,
                                         points=points, created_at=now)
        if points:
            points_earn(workspace=workspace, customer=customer, amount=points, reason=Reason.SHARE,
                        ref=f"share:{customer.pk}:{ref}", at=now, details={"target": target})
        mission_progress(workspace=workspace, customer=customer, trigger="share", key=f"share:{row.pk}", at=now)
    return row


# ---------------------------------------------------------------------------------------------------- review


def review_ref(order_line_id: int) -> str:
    return f"review:{order_line_id}"


def review_text_check(*, workspace: Workspace, text: str) -> str:
    """The review text, stripped, within the workspace's length limits (else refused, nothing written)."""
    rules = member_rules(workspace=workspace)
    cleaned = "".join(ch for ch in (text or "") if ch in "\n\t" or ch.isprintable()).strip()
    if len(cleaned) < rules.review_min_chars:
        raise SiyuError("review_too_short", f"评价内容至少 {rules.review_min_chars} 个字",
                        f"A review needs at least {rules.review_min_chars} characters",
                        details={"min": rules.review_min_chars})
    if len(cleaned) > rules.review_max_chars:
        raise SiyuError("review_too_long", f"评价内容最多 {rules.review_max_chars} 个字",
                        f"A review may have at most {rules.review_max_chars} characters",
                        details={"max": rules.review_max_chars})
    return cleaned


def review_reward(*, workspace: Workspace, customer: Customer, order_line_id: int,
                  now: datetime | None = None) -> PointsTransaction | None:
    """The points of one review: once per order line (a second review of the same line earns nothing)."""
    _check_customer(workspace, customer)
    rules = member_rules(workspace=workspace)
    if not rules.review_points:
        return None
    return points_earn(workspace=workspace, customer=customer, amount=rules.review_points, reason=Reason.REVIEW,
                       ref=review_ref(order_line_id), at=now, details={"order_line_id": order_line_id})


def _check_customer(workspace: Workspace, customer: Customer) -> None:
    if customer is None or customer.workspace_id != workspace.pk:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
