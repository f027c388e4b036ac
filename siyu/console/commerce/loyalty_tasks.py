"""Console page 成长任务 (console:loyalty_tasks): growth tasks, check-in / share / review / lottery rules,
tier-change notice templates, the points mall and the lottery's prize table, with completion statistics.

Roles: admins and operators edit; analysts read; service staff get 403. Bad input is refused with its code and
nothing is written (each save is one validated service call).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.commerce.promotions.models import CouponTemplate
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.core.timeutil import local_day
from siyu.loyalty.checkin import member_rules, member_rules_update
from siyu.loyalty.exchange import exchange_item_save, exchange_items
from siyu.loyalty.lottery import lottery_odds, lottery_stats, prize_save
from siyu.loyalty.member_rules import streak_bonus_parse
from siyu.loyalty.missions import task_stats, task_update, tasks_ensure
from siyu.loyalty.models import CheckIn, ExchangeRedemption, RewardKind, TierNotice

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})
STATS_DAYS = 14


@console_view(roles=VIEW_ROLES)
def loyalty_tasks(request):
    workspace = request.workspace
    today = local_day(timezone.now())
    since = today - timedelta(days=STATS_DAYS - 1)
    tasks_ensure(workspace=workspace)
    stats = task_stats(workspace=workspace, since_period=since.isoformat())
    days = [since + timedelta(days=n) for n in range(STATS_DAYS)]
    per_day = dict(CheckIn.objects.filter(workspace=workspace, day__gte=since).values("day")
                   .annotate(n=Count("pk")).values_list("day", "n"))
    prizes = lottery_stats(workspace=workspace)
    odds = lottery_odds([row["prize"] for row in prizes if row["prize"].is_active])
    items = exchange_items(workspace=workspace, active_only=False)
    redeemed = dict(ExchangeRedemption.objects.filter(workspace=workspace).values("item_id")
                    .annotate(n=Count("pk")).values_list("item_id", "n"))
    rules = member_rules(workspace=workspace)
    charts = {
        "task_completion": {
            "x": [row["task"].title for row in stats] if any(row["completed"] for row in stats) else [],
            "series": [{"name": _("已领取"), "y": [row["claimed"] for row in stats]},
                       {"name": _("已完成未领取"), "y": [row["completed"] - row["claimed"] for row in stats]}]},
        "checkins_daily": {"x": [day.strftime("%m-%d") for day in days] if per_day else [], "name": _("签到人数"),
                           "y": [per_day.get(day, 0) for day in days]},
    }
    return page(request, "console/commerce/loyalty/tasks.html", {
        "stats": stats, "rules": rules, "charts": charts, "stats_days": STATS_DAYS,
        "streak_text": ", ".join(f"{days}:{bonus}" for days, bonus in sorted(
            (rules.checkin_streak_bonus or {}).items(), key=lambda item: int(item[0]))),
        "items": [{"item": item, "redeemed": redeemed.get(item.pk, 0)} for item in items],
        "prizes": [dict(row, odds=odds.get(row["prize"].pk, 0.0)) for row in prizes],
        "coupon_templates": list(CouponTemplate.objects.filter(workspace=workspace).order_by("-pk")[:100]),
        "reward_kinds": RewardKind.choices, "notices": TierNotice.objects.filter(workspace=workspace).count(),
        "can_configure": request.membership.role in MANAGER_ROLES,
    }, active="growth_tasks")


def _coupon_template_id(request) -> str:
    raw = (request.POST.get("coupon_template_id") or "").strip()
    if raw and not (raw.isdigit() and CouponTemplate.objects.filter(workspace=request.workspace, pk=int(raw)).exists()):
        raise SiyuError("coupon_template_not_found", "优惠券不存在", "Coupon template not found", status=404,
                        details={"field": "coupon_template_id"})
    return raw


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def loyalty_rules_save(request):
    post = request.POST
    try:
        bonus = streak_bonus_parse(post.get("checkin_streak_bonus", ""))
    except ValueError as error:
        raise SiyuError("member_rule_invalid", "连续签到奖励格式应为 天数:积分，用逗号分隔，例如 7:20, 30:100",
                        "Streak bonuses are days:points separated by commas, e.g. 7:20, 30:100",
                        details={"field": "checkin_streak_bonus"}) from error
    changes = {key: post.get(key, "") for key in ("checkin_points", "share_points", "share_daily_cap", "review_points",
                                                  "review_min_chars", "review_max_chars", "lottery_cost",
                                                  "lottery_daily_limit", "tier_notice_template_id",
                                                  "tier_notice_subscribe_template_id")}
    changes.update(checkin_enabled=post.get("checkin_enabled") == "on", lottery_enabled=post.get("lottery_enabled") == "on",
                   checkin_streak_bonus=bonus)
    member_rules_update(workspace=request.workspace, changes=changes, actor=request.user)
    messages.success(request, _("已保存积分规则"))
    return redirect("console:loyalty_tasks")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def loyalty_task_save(request, task_id: int):
    post = request.POST
    task_update(workspace=request.workspace, task_id=task_id, actor=request.user, fields={
        "title": post.get("title", ""), "target": post.get("target", ""), "reward_points": post.get("reward_points", ""),
        "reward_growth": post.get("reward_growth", ""), "is_active": post.get("is_active") == "on"})
    messages.success(request, _("已保存任务"))
    return redirect("console:loyalty_tasks")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def loyalty_item_save(request, item_id: int | None = None):
    post = request.POST
    exchange_item_save(workspace=request.workspace, item_id=item_id, actor=request.user, fields={
        "title": post.get("title", ""), "kind": post.get("kind", ""), "points_cost": post.get("points_cost", ""),
        "stock": post.get("stock", ""), "per_customer_limit": post.get("per_customer_limit", ""),
        "coupon_template_id": _coupon_template_id(request), "is_active": post.get("is_active") == "on"})
    messages.success(request, _("已保存兑换商品"))
    return redirect("console:loyalty_tasks")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def loyalty_prize_save(request, prize_id: int | None = None):
    post = request.POST
    prize_save(workspace=request.workspace, prize_id=prize_id, actor=request.user, fields={
        "name": post.get("name", ""), "kind": post.get("kind", ""), "weight": post.get("weight", ""),
        "stock": post.get("stock", ""), "points": post.get("points", "") or "0",
        "coupon_template_id": _coupon_template_id(request), "is_active": post.get("is_active") == "on"})
    messages.success(request, _("已保存奖品"))
    return redirect("console:loyalty_tasks")


urlpatterns = [
    path("loyalty/tasks/", loyalty_tasks, name="loyalty_tasks"),
    path("loyalty/tasks/rules/", loyalty_rules_save, name="loyalty_rules_save"),
    path("loyalty/tasks/<int:task_id>/", loyalty_task_save, name="loyalty_task_save"),
    path("loyalty/tasks/items/", loyalty_item_save, name="loyalty_item_create"),
    path("loyalty/tasks/items/<int:item_id>/", loyalty_item_save, name="loyalty_item_save"),
    path("loyalty/tasks/prizes/", loyalty_prize_save, name="loyalty_prize_create"),
    path("loyalty/tasks/prizes/<int:prize_id>/", loyalty_prize_save, name="loyalty_prize_save"),
]
