"""H5 会员中心 (/shop/<slug>/member/…): tier and benefits, points balance and history, daily check-in,
growth tasks, the points mall, the lottery and reviews of delivered orders.

Views parse and call the services (siyu.loyalty, siyu.commerce.store.member_services). Writes are POST forms
with a one-time ``ref`` rendered into the page, so a double tap or a resubmitted form changes nothing twice.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.commerce.store import member_services
from siyu.commerce.store.identity import shopper_for, workspace_for_slug
from siyu.commerce.store.views import _context, store_page
from siyu.core.errors import SiyuError
from siyu.loyalty.checkin import checkin, checkin_streak, checkin_today, member_rules, share_record
from siyu.loyalty.exchange import exchange_items
from siyu.loyalty.lottery import lottery_odds, lottery_prizes
from siyu.loyalty.missions import mission_claim, tasks_for_customer
from siyu.loyalty.models import LotteryDraw, PointsTransaction, RewardKind
from siyu.loyalty.points import points_balance
from siyu.loyalty.tier_rules import next_tier
from siyu.loyalty.tiers import growth_of, tier_basis, tier_levels, tier_of


def _english() -> bool:
    return not (get_language() or "zh").startswith("zh")


def _back(shopper, name: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse(f"store:{name}", kwargs={"slug": shopper.workspace.slug}))


def _ref() -> str:
    return uuid.uuid4().hex


def _benefits(tier) -> list[str]:
    items = []
    if tier.discount_percent:
        items.append(_("会员折扣 %(rate)s 折") % {"rate": f"{(100 - tier.discount_percent) / 10:g}"})
    if tier.free_shipping:
        items.append(_("包邮"))
    if tier.priority_service:
        items.append(_("优先客服"))
    if tier.exclusive_items:
        items.append(_("专属商品"))
    return items


@require_GET
@store_page
def member_home(request, shopper):
    workspace, customer = shopper.workspace, shopper.customer
    english = _english()
    tiers = tier_levels(workspace=workspace)
    current = tier_of(customer=customer)
    basis, window = tier_basis(workspace=workspace)
    growth, spend_fen = growth_of(customer=customer)
    step = next_tier(tiers, current=current, basis=basis, value=spend_fen if basis == "spend" else growth)
    progress = None
    if step is not None:
        progress = {"tier": step.tier, "name": step.tier.name_en if english else step.tier.name_zh,
                    "percent": step.percent, "gap": f"{step.gap / 100:.2f}" if basis == "spend" else step.gap}
    history = list(PointsTransaction.objects.filter(workspace=workspace, customer=customer).order_by("-pk")[:20])
    rules = member_rules(workspace=workspace)
    return render(request, "store/member/home.html", _context(
        request, shopper, tab="orders", tier=current, tier_name=current.name_en if english else current.name_zh,
        benefits=_benefits(current), progress=progress, basis=basis, window=window, growth=growth,
        spend_yuan=f"{spend_fen / 100:.2f}", balance=points_balance(customer=customer), history=history,
        checked_in=checkin_today(customer=customer) is not None, streak=checkin_streak(customer=customer),
        rules=rules, tiers=[{"tier": tier, "name": tier.name_en if english else tier.name_zh,
                             "benefits": _benefits(tier)} for tier in tiers]))


@require_POST
@store_page
def member_checkin(request, shopper):
    result = checkin(workspace=shopper.workspace, customer=shopper.customer)
    if result.created:
        row = result.check_in
        messages.success(request, _("签到成功，连续 %(streak)s 天，获得 %(points)s 积分") % {
            "streak": row.streak, "points": row.points})
    else:
        messages.info(request, _("今天已经签到过了"))
    return _back(shopper, "member")


@require_GET
@store_page
def member_tasks(request, shopper):
    views = tasks_for_customer(workspace=shopper.workspace, customer=shopper.customer)
    return render(request, "store/member/tasks.html", _context(
        request, shopper, tab="orders", newbie=[v for v in views if v.task.kind == "newbie"],
        daily=[v for v in views if v.task.kind == "daily"]))


@require_POST
@store_page
def member_task_claim(request, shopper, task_id: int):
    progress = mission_claim(workspace=shopper.workspace, customer=shopper.customer, task_id=task_id)
    task = progress.task
    messages.success(request, _("领取成功：%(points)s 积分，%(growth)s 成长值") % {
        "points": task.reward_points, "growth": task.reward_growth})
    return _back(shopper, "member_tasks")


def member_share(request, slug: str):
    """POST {target, ref} from the page's share button (or the JS-SDK share callback): JSON in and out."""
    if request.method != "POST":
        return JsonResponse({"code": "method_not_allowed", "message": "仅支持 POST", "message_en": "POST only"},
                            status=405)
    try:
        workspace = workspace_for_slug(slug)
        shopper = shopper_for(request, workspace)
        if shopper is None:
            raise SiyuError("consumer_unauthenticated", "请先登录(登录已过期),请重新打开页面",
                            "Please log in again (the session is missing or expired)", status=401)
        row = share_record(workspace=workspace, customer=shopper.customer, target=request.POST.get("target", ""),
                           ref=request.POST.get("ref", ""))
    except SiyuError as error:
        return JsonResponse(error.as_dict(), status=error.status)
    return JsonResponse({"points": row.points, "target": row.target})


@require_GET
@store_page
def member_mall(request, shopper):
    return render(request, "store/member/mall.html", _context(
        request, shopper, tab="orders", items=exchange_items(workspace=shopper.workspace),
        balance=points_balance(customer=shopper.customer), ref=_ref()))


@require_POST
@store_page
def member_redeem(request, shopper, item_id: int):
    result = member_services.member_exchange(workspace=shopper.workspace, customer=shopper.customer,
                                             item_id=item_id, ref=request.POST.get("ref", ""))
    item = result.redemption.item
    if item.kind == RewardKind.COUPON:
        messages.success(request, _("兑换成功：%(title)s 已放入我的优惠券") % {"title": item.title})
    else:
        messages.success(request, _("兑换成功：%(title)s，客服将与您联系发货") % {"title": item.title})
    return _back(shopper, "member_mall")


@require_GET
@store_page
def member_lottery(request, shopper):
    prizes = lottery_prizes(workspace=shopper.workspace)
    odds = lottery_odds(prizes)
    recent = list(LotteryDraw.objects.filter(customer=shopper.customer).select_related("prize").order_by("-pk")[:10])
    return render(request, "store/member/lottery.html", _context(
        request, shopper, tab="orders", prizes=[{"prize": p, "odds": odds.get(p.pk, 0.0)} for p in prizes],
        rules=member_rules(workspace=shopper.workspace), balance=points_balance(customer=shopper.customer),
        recent=recent, ref=_ref()))


@require_POST
@store_page
def member_draw(request, shopper):
    result = member_services.member_lottery_draw(workspace=shopper.workspace, customer=shopper.customer,
                                                 ref=request.POST.get("ref", ""))
    prize = result.prize
    if prize is None or prize.kind == RewardKind.NOTHING:
        messages.info(request, _("很遗憾，没有抽中，下次好运！"))
    else:
        messages.success(request, _("恭喜抽中：%(name)s") % {"name": prize.name})
    return _back(shopper, "member_lottery")


@require_GET
@store_page
def member_reviews(request, shopper):
    rules = member_rules(workspace=shopper.workspace)
    return render(request, "store/member/reviews.html", _context(
        request, shopper, tab="orders", lines=member_services.reviewable_lines(workspace=shopper.workspace,
                                                                                customer=shopper.customer),
        rules=rules))


@require_POST
@store_page
def member_review_submit(request, shopper):
    review = member_services.review_create(
        workspace=shopper.workspace, customer=shopper.customer, order_number=request.POST.get("order", ""),
        line_id=request.POST.get("line_id"), rating=request.POST.get("rating"), text=request.POST.get("text", ""))
    if review.points:
        messages.success(request, _("评价成功，获得 %(points)s 积分") % {"points": review.points})
    else:
        messages.success(request, _("评价成功"))
    return _back(shopper, "member_reviews")


urlpatterns = [
    path("", member_home, name="member"),
    path("checkin", member_checkin, name="member_checkin"),
    path("tasks/", member_tasks, name="member_tasks"),
    path("tasks/<int:task_id>/claim", member_task_claim, name="member_task_claim"),
    path("share", member_share, name="member_share"),
    path("mall/", member_mall, name="member_mall"),
    path("mall/<int:item_id>/redeem", member_redeem, name="member_redeem"),
    path("lottery/", member_lottery, name="member_lottery"),
    path("lottery/draw", member_draw, name="member_draw"),
    path("reviews/", member_reviews, name="member_reviews"),
    path("reviews/submit", member_review_submit, name="member_review_submit"),
]
