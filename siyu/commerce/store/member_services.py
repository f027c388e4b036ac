"""The store's side of membership: what needs commerce as well as loyalty (loyalty sits below commerce).

Exchange and lottery run loyalty's service and, for a coupon, issue it through promotions in the same
transaction — a coupon that cannot be issued rolls the whole thing back (no points spent, no stock taken).
Reviews belong to lines of the shopper's delivered orders, one per line, rewarded once. (会员专享 is
checked by checkout itself, with ``siyu.loyalty.benefits.exclusive_items_check``.)
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from siyu.commerce.orders.models import FulfilmentStatus, Order, OrderLine
from siyu.commerce.promotions.services import coupon_issue
from siyu.commerce.store.models import ProductReview
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.loyalty.checkin import review_reward, review_text_check
from siyu.loyalty.exchange import RedeemResult, exchange_redeem
from siyu.loyalty.lottery import DrawResult, lottery_draw
from siyu.loyalty.models import RewardKind


def _issue_coupon(workspace: Workspace, customer: Customer, template_id: int | None) -> None:
    if not template_id:
        raise SiyuError("reward_coupon_missing", "奖品优惠券未配置", "The prize coupon is not configured", status=409)
    try:
        result = coupon_issue(workspace=workspace, template_id=int(template_id), customer_ids=[customer.pk])
    except SiyuError as error:
        raise SiyuError("reward_coupon_unavailable", "优惠券暂不可发放，请稍后再试",
                        "The coupon cannot be issued right now", status=409, details={"reason": error.code}) from error
    if result["issued"] != 1:
        raise SiyuError("reward_coupon_unavailable", "优惠券暂不可发放(已领完或已达领取上限)",
                        "The coupon cannot be issued (sold out or limit reached)", status=409,
                        details={"reasons": result["skipped"]})


def member_exchange(*, workspace: Workspace, customer: Customer, item_id, ref: str) -> RedeemResult:
    with transaction.atomic():
        result = exchange_redeem(workspace=workspace, customer=customer, item_id=item_id, ref=ref)
        item = result.redemption.item
        if result.created and item.kind == RewardKind.COUPON:
            _issue_coupon(workspace, customer, item.coupon_template_id)
    return result


def member_lottery_draw(*, workspace: Workspace, customer: Customer, ref: str, rng=None) -> DrawResult:
    with transaction.atomic():
        result = lottery_draw(workspace=workspace, customer=customer, ref=ref, rng=rng)
        prize = result.prize
        if result.created and prize is not None and prize.kind == RewardKind.COUPON:
            _issue_coupon(workspace, customer, prize.coupon_template_id)
    return result


# ---------------------------------------------------------------------------------------------------- reviews


def reviewable_lines(*, workspace: Workspace, customer: Customer, limit: int = 50) -> list[OrderLine]:
    """Lines of the shopper's delivered orders not reviewed yet, newest first."""
    return list(OrderLine.objects.filter(order__workspace=workspace, order__customer=customer,
                                         order__fulfilment_status=FulfilmentStatus.DELIVERED, review__isnull=True)
                .select_related("order").order_by("-order__delivered_at", "-pk")[:limit])


def review_create(*, workspace: Workspace, customer: Customer, order_number: str, line_id, rating, text: str
                  ) -> ProductReview:
    """Review one line of a delivered order of the shopper: rating 1–5, text within the workspace's lengths."""
    order = Order.objects.filter(workspace=workspace, number=str(order_number or "")[:32]).first()
    if order is None or not order.belongs_to(customer):
        raise SiyuError("order_not_found", "订单不存在", "Order not found", status=404)
    line_text = str(line_id or "").strip()
    line = (order.lines.filter(pk=int(line_text)).first() if line_text.isdigit() and len(line_text) <= 18 else None)
    if line is None:
        raise SiyuError("review_line_invalid", "请选择要评价的商品", "Choose the item to review",
                        details={"field": "line_id"})
    if order.fulfilment_status != FulfilmentStatus.DELIVERED:
        raise SiyuError("review_not_delivered", "订单签收后才能评价", "Orders can be reviewed once delivered",
                        status=409)
    rating_text = str(rating or "").strip()
    if rating_text not in {"1", "2", "3", "4", "5"}:
        raise SiyuError("review_rating_invalid", "请选择 1–5 星评分", "Choose a rating from 1 to 5 stars",
                        details={"field": "rating"})
    cleaned = review_text_check(workspace=workspace, text=text)
    try:
        with transaction.atomic():
            review = ProductReview.objects.create(workspace=workspace, customer=customer, order_line=line,
                                                  product_id=line.product_id, rating=int(rating_text), text=cleaned)
            earned = review_reward(workspace=workspace, customer=customer, order_line_id=line.pk)
            if earned is not None:
                review.points = earned.amount
                review.save(update_fields=["points"])
    except IntegrityError as error:
        raise SiyuError("review_exists", "该商品已评价", "This item was already reviewed", status=409) from error
    return review


# ---------------------------------------------------------------------------------------------------- checkout


def product_viewed(*, workspace: Workspace, customer: Customer, product_id: int) -> None:
    """The 浏览商品 daily task's step: the product pages call this (each product counts once a day). Queued, so
    a product page never waits for the task bookkeeping."""
    from siyu.loyalty.mission_tasks import product_viewed as queue_product_view

    if customer is not None:
        queue_product_view(workspace_id=workspace.pk, customer_id=customer.pk, product_id=int(product_id))
