"""H5 会员中心 pages: tier and points, check-in, tasks and claim, points mall (coupon through promotions),
lottery, reviews of delivered orders, share; bad input refused with its code and nothing changed."""

from __future__ import annotations

import random

import pytest
from django.utils import timezone

from siyu.commerce.catalog.models import Sku
from siyu.commerce.orders.models import FulfilmentStatus, Order, OrderLine
from siyu.commerce.orders.services import checkout
from siyu.commerce.promotions.models import Coupon
from siyu.commerce.store import member_services
from siyu.commerce.store.models import ProductReview
from siyu.core.errors import SiyuError
from siyu.loyalty.checkin import member_rules_update
from siyu.loyalty.exchange import exchange_item_save
from siyu.loyalty.lottery import prize_save
from siyu.loyalty.missions import tasks_ensure
from siyu.loyalty.models import CheckIn, ExchangeItem, LotteryDraw, LotteryPrize, TaskProgress
from siyu.loyalty.points import ledger_check, points_balance, points_earn
from siyu.loyalty.tiers import growth_record, tier_config_update, tier_evaluate
from tests.commerce import store_fixtures
from tests.commerce.orders_fixtures import ADDRESS, immediate_tasks  # noqa: F401 - fixture
from tests.commerce.store_fixtures import csrf_post, h5_shopper, make_coupon_template

pytestmark = pytest.mark.django_db
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory


def url(store, path: str = "") -> str:
    return f"/shop/{store.workspace.slug}/member/{path}"


def delivered_order(store, shopper, number: str = "R0001") -> OrderLine:
    product, skus = store.products["cream"]
    now = timezone.now()
    order = Order.objects.create(workspace=store.workspace, customer=shopper.customer, number=number,
                                 order_status="completed", payment_status="paid",
                                 fulfilment_status=FulfilmentStatus.DELIVERED, subtotal_fen=12900, total_fen=12900,
                                 paid_fen=12900, pay_expires_at=now, paid_at=now, delivered_at=now)
    return OrderLine.objects.create(order=order, sku_id=skus[0].pk, product_id=product.pk, title=product.title,
                                    unit_price_fen=12900, quantity=1, payable_fen=12900)


def test_member_home_shows_tier_progress_points_and_checkin(store):
    shopper = h5_shopper(store, "m1")
    growth_record(workspace=store.workspace, customer=shopper.customer, source="order_paid", ref="o1",
                  spend_fen=120000, growth=1200)
    tier_evaluate(customer=shopper.customer)
    page = shopper.client.get(url(store))
    html = page.content.decode()
    assert page.status_code == 200 and 'data-tier="silver"' in html and "银卡" in html
    assert "升级金卡" in html  # progress to the next tier
    assert 'data-action="checkin"' in html
    done = csrf_post(shopper.client, store, url(store, "checkin"))
    assert done.status_code == 302
    again = csrf_post(shopper.client, store, url(store, "checkin"))
    assert again.status_code == 302
    assert CheckIn.objects.filter(customer=shopper.customer).count() == 1
    html = shopper.client.get(url(store)).content.decode()
    assert "data-checked-in" in html and "签到" in html and points_balance(customer=shopper.customer) == 5


def test_my_page_links_to_the_member_centre(store):
    shopper = h5_shopper(store, "m0")
    html = shopper.client.get(f"/shop/{store.workspace.slug}/orders/").content.decode()
    assert f'href="/shop/{store.workspace.slug}/member/" data-link="member"' in html


def test_pages_need_a_shopper(store):
    from django.test import Client

    page = Client().get(url(store))
    assert page.status_code == 302 and "oauth" in page["Location"]
    refused = Client().post(url(store, "checkin"))
    assert refused.status_code in (401, 403)
    assert not CheckIn.objects.exists()


def test_tasks_page_progress_and_claim_once(store):
    shopper = h5_shopper(store, "m2")
    tasks = {task.trigger: task for task in tasks_ensure(workspace=store.workspace)}
    csrf_post(shopper.client, store, url(store, "checkin"))
    html = shopper.client.get(url(store, "tasks/")).content.decode()
    assert "新手任务" in html and "日常任务" in html and f'data-task="{tasks["checkin"].pk}"' in html
    claim = url(store, f"tasks/{tasks['checkin'].pk}/claim")
    assert csrf_post(shopper.client, store, claim).status_code == 302
    second = csrf_post(shopper.client, store, claim)
    assert second.status_code == 409 and 'data-error-code="task_already_claimed"' in second.content.decode()
    not_done = csrf_post(shopper.client, store, url(store, f"tasks/{tasks['browse'].pk}/claim"))
    assert not_done.status_code == 409
    assert points_balance(customer=shopper.customer) == 5 + tasks["checkin"].reward_points


def test_share_json_capped(store):
    shopper = h5_shopper(store, "m3")
    member_rules_update(workspace=store.workspace, changes={"share_points": "4", "share_daily_cap": "1"})
    first = csrf_post(shopper.client, store, url(store, "share"), {"target": "product:1", "ref": "a"})
    assert first.status_code == 200 and first.json()["points"] == 4
    assert csrf_post(shopper.client, store, url(store, "share"), {"target": "product:2", "ref": "b"}).json()["points"] == 0
    bad = csrf_post(shopper.client, store, url(store, "share"), {"target": "", "ref": "c"})
    assert bad.status_code == 400 and bad.json()["code"] == "share_target_invalid"
    assert points_balance(customer=shopper.customer) == 4


def test_mall_exchanges_a_coupon_through_promotions(store):
    shopper = h5_shopper(store, "m4")
    template = make_coupon_template(store.workspace, name="10元券", amount_fen=1000, per_customer_limit=5)
    item = exchange_item_save(workspace=store.workspace, fields={
        "title": "10元无门槛券", "kind": "coupon", "points_cost": "100", "stock": "3", "coupon_template_id": template.pk})
    points_earn(workspace=store.workspace, customer=shopper.customer, amount=250, reason="purchase", ref="seed")
    page = shopper.client.get(url(store, "mall/")).content.decode()
    assert "10元无门槛券" in page
    ref = page.split('name="ref" value="', 1)[1].split('"', 1)[0]
    redeem = url(store, f"mall/{item.pk}/redeem")
    assert csrf_post(shopper.client, store, redeem, {"ref": ref}).status_code == 302
    assert csrf_post(shopper.client, store, redeem, {"ref": ref}).status_code == 302  # resubmitted: once
    assert Coupon.objects.filter(customer=shopper.customer, template=template).count() == 1
    assert points_balance(customer=shopper.customer) == 150
    assert ExchangeItem.objects.get(pk=item.pk).stock == 2


def test_exchange_rolls_back_when_the_coupon_cannot_be_issued(store):
    shopper = h5_shopper(store, "m5")
    template = make_coupon_template(store.workspace, name="售罄券", amount_fen=500, total_quantity=1,
                                    issued_count=1)
    item = exchange_item_save(workspace=store.workspace, fields={
        "title": "售罄券", "kind": "coupon", "points_cost": "50", "stock": "3", "coupon_template_id": template.pk})
    points_earn(workspace=store.workspace, customer=shopper.customer, amount=100, reason="purchase", ref="seed")
    refused = csrf_post(shopper.client, store, url(store, f"mall/{item.pk}/redeem"), {"ref": "x1"})
    assert refused.status_code == 409 and "reward_coupon_unavailable" in refused.content.decode()
    assert points_balance(customer=shopper.customer) == 100 and ExchangeItem.objects.get(pk=item.pk).stock == 3
    assert ledger_check(workspace=store.workspace) == []


def test_lottery_page_and_coupon_prize(store):
    shopper = h5_shopper(store, "m6")
    template = make_coupon_template(store.workspace, name="抽奖券", amount_fen=800, per_customer_limit=10)
    member_rules_update(workspace=store.workspace, changes={"lottery_cost": "20", "lottery_daily_limit": "3"})
    prize = prize_save(workspace=store.workspace, fields={"name": "8元券", "kind": "coupon", "weight": "1",
                                                         "stock": "5", "coupon_template_id": template.pk})
    points_earn(workspace=store.workspace, customer=shopper.customer, amount=100, reason="purchase", ref="seed")
    page = shopper.client.get(url(store, "lottery/")).content.decode()
    assert "8元券" in page and "100.0%" in page
    assert csrf_post(shopper.client, store, url(store, "lottery/draw"), {"ref": "d1"}).status_code == 302
    assert csrf_post(shopper.client, store, url(store, "lottery/draw"), {"ref": "d1"}).status_code == 302
    assert LotteryDraw.objects.filter(customer=shopper.customer).count() == 1
    assert Coupon.objects.filter(customer=shopper.customer, template=template).count() == 1
    assert LotteryPrize.objects.get(pk=prize.pk).stock == 4
    result = member_services.member_lottery_draw(workspace=store.workspace, customer=shopper.customer, ref="d2",
                                                 rng=random.Random(1))
    assert result.created and points_balance(customer=shopper.customer) == 60


def test_product_pages_count_towards_the_browse_task_once_per_product(store, immediate_tasks):  # noqa: F811
    shopper = h5_shopper(store, "m11")
    browse = next(task for task in tasks_ensure(workspace=store.workspace) if task.trigger == "browse")
    cream, serum = store.products["cream"][0], store.products["serum"][0]
    for product in (cream, cream, serum):  # the H5 page twice, then another product
        assert shopper.client.get(f"/shop/{store.workspace.slug}/products/{product.pk}/").status_code == 200
    assert TaskProgress.objects.get(task=browse, customer=shopper.customer).count == 2


def test_review_of_a_delivered_line_rewarded_once(store):
    shopper = h5_shopper(store, "m7")
    line = delivered_order(store, shopper)
    page = shopper.client.get(url(store, "reviews/")).content.decode()
    assert f'data-line="{line.pk}"' in page
    form = {"order": line.order.number, "line_id": line.pk, "rating": "5", "text": "很好用，滋润不油腻"}
    for bad, code in ((dict(form, rating="6"), "review_rating_invalid"), (dict(form, text="好"), "review_too_short"),
                      (dict(form, text="好" * 501), "review_too_long"), (dict(form, order="NOPE"), "order_not_found"),
                      (dict(form, line_id="999999"), "review_line_invalid")):
        refused = csrf_post(shopper.client, store, url(store, "reviews/submit"), bad)
        assert refused.status_code in (400, 404) and f'data-error-code="{code}"' in refused.content.decode()
    assert not ProductReview.objects.exists() and points_balance(customer=shopper.customer) == 0
    assert csrf_post(shopper.client, store, url(store, "reviews/submit"), form).status_code == 302
    again = csrf_post(shopper.client, store, url(store, "reviews/submit"), form)
    assert again.status_code == 409 and 'data-error-code="review_exists"' in again.content.decode()
    assert ProductReview.objects.get().rating == 5 and points_balance(customer=shopper.customer) == 10
    assert f'data-line="{line.pk}"' not in shopper.client.get(url(store, "reviews/")).content.decode()


def test_review_refused_before_delivery_and_for_someone_else(store):
    owner, other = h5_shopper(store, "m8"), h5_shopper(store, "m9")
    line = delivered_order(store, owner, "R0002")
    form = {"order": line.order.number, "line_id": line.pk, "rating": "4", "text": "还不错的商品"}
    assert csrf_post(other.client, store, url(store, "reviews/submit"), form).status_code == 404
    Order.objects.filter(pk=line.order_id).update(fulfilment_status=FulfilmentStatus.SHIPPED)
    refused = csrf_post(owner.client, store, url(store, "reviews/submit"), form)
    assert refused.status_code == 409 and "review_not_delivered" in refused.content.decode()
    assert not ProductReview.objects.exists()


def test_exclusive_items_need_the_tier(store):
    shopper = h5_shopper(store, "m10")
    product, skus = store.products["serum"]
    product.min_tier = "gold"
    product.save(update_fields=["min_tier"])
    held_before = Sku.objects.get(pk=skus[0].pk).stock_reserved

    def buy():
        return checkout(workspace=store.workspace, customer=shopper.customer, lines=[(skus[0].pk, 1)],
                        address=ADDRESS)

    with pytest.raises(SiyuError) as refused:
        buy()
    assert refused.value.code == "tier_required" and refused.value.status == 403
    assert refused.value.details["product_ids"] == [product.pk]
    assert not Order.objects.filter(customer=shopper.customer).exists()  # refused before anything was held
    assert Sku.objects.get(pk=skus[0].pk).stock_reserved == held_before
    tier_config_update(workspace=store.workspace, levels={"gold": {"growth_threshold": 10}, "silver": {
        "growth_threshold": 5}})
    growth_record(workspace=store.workspace, customer=shopper.customer, source="task", ref="t", spend_fen=0, growth=10)
    tier_evaluate(customer=shopper.customer)
    assert buy().customer_id == shopper.customer.pk
