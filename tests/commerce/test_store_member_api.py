"""The mini-program 会员中心 API (/api/mini/v1/member/…): overview, points history, check-in, growth tasks,
shares, points mall, lottery and reviews over JSON with the Bearer session — the H5 member centre's services.
Bad input, another customer's refs and orders, other workspaces' items and replays are refused or answered
once, with code + Chinese + English + status, and nothing changed."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from siyu.commerce.orders.models import FulfilmentStatus, Order, OrderLine
from siyu.commerce.promotions.models import Coupon
from siyu.commerce.store.models import ProductReview
from siyu.core.models import Workspace
from siyu.loyalty.checkin import member_rules_update
from siyu.loyalty.exchange import exchange_item_save
from siyu.loyalty.lottery import prize_save
from siyu.loyalty.missions import tasks_ensure
from siyu.loyalty.models import (
    CheckIn,
    ExchangeItem,
    ExchangeRedemption,
    LotteryDraw,
    LotteryPrize,
    PointsTransaction,
    ShareReward,
    TaskProgress,
)
from siyu.loyalty.points import ledger_check, points_balance, points_earn
from siyu.loyalty.tiers import growth_record, tier_evaluate
from tests.commerce import store_fixtures
from tests.commerce.store_fixtures import h5_shopper, make_coupon_template, mini_shopper

pytestmark = pytest.mark.django_db
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory
API = "/api/mini/v1/member"


def call(shopper, method: str, path: str, body=None, raw: str | None = None, **headers):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    kwargs = {"content_type": "application/json"} if data is not None else {}
    target = getattr(shopper.client, method)
    if data is not None:
        return target(API + path, data, **kwargs, **shopper.headers, **headers)
    return target(API + path, **shopper.headers, **headers)


def refused(response, code: str, status: int) -> dict:
    assert response.status_code == status, response.content.decode()[:500]
    body = response.json()
    assert body["code"] == code, body
    assert body["message"] and body["message_en"]
    return body


def seed_points(store, shopper, amount: int, ref: str = "seed") -> None:
    points_earn(workspace=store.workspace, customer=shopper.customer, amount=amount, reason="purchase", ref=ref)


def test_overview_tier_benefits_growth_and_next_tier(store):
    shopper = mini_shopper(store, "o1")
    growth_record(workspace=store.workspace, customer=shopper.customer, source="order_paid", ref="o1",
                  spend_fen=120000, growth=1200)
    tier_evaluate(customer=shopper.customer)
    seed_points(store, shopper, 321)
    body = call(shopper, "get", "").json()
    assert body["points_balance"] == 321 and body["growth_value"] == 1200 and body["spend_fen"] == 120000
    assert body["tier"]["code"] == "silver" and body["tier"]["name_zh"] == "银卡" and body["tier"]["name_en"] == "Silver"
    assert [benefit["code"] for benefit in body["tier"]["benefits"]] == ["discount"]
    assert body["tier"]["benefits"][0]["discount_percent"] == 2 and "9.8 折" in body["tier"]["benefits"][0]["label_zh"]
    assert body["basis"] == "growth" and body["window_days"] == 365
    nxt = body["next_tier"]
    assert nxt["tier"]["code"] == "gold" and nxt["threshold"] == 5000 and nxt["gap"] == 3800
    assert nxt["percent"] == (1200 - 1000) * 100 // (5000 - 1000)
    assert {"free_shipping", "discount"} <= {benefit["code"] for benefit in nxt["tier"]["benefits"]}
    assert [tier["code"] for tier in body["tiers"]] == ["normal", "silver", "gold", "diamond"]
    assert body["checked_in_today"] is False and body["checkin_streak"] == 0 and body["checkin_enabled"] is True


def test_overview_at_the_top_tier_has_no_next_tier(store):
    shopper = mini_shopper(store, "o2")
    growth_record(workspace=store.workspace, customer=shopper.customer, source="order_paid", ref="o2",
                  spend_fen=3_000_000, growth=30_000)
    tier_evaluate(customer=shopper.customer)
    body = call(shopper, "get", "").json()
    assert body["tier"]["code"] == "diamond" and body["next_tier"] is None
    assert {b["code"] for b in body["tier"]["benefits"]} == {"discount", "free_shipping", "priority_service",
                                                             "exclusive_items"}


def test_without_a_session_everything_is_refused_and_nothing_changes(store):
    stranger = Client()
    for method, path in (("get", ""), ("get", "/points"), ("post", "/checkin"), ("get", "/tasks"),
                         ("post", "/mall/1/exchange"), ("post", "/lottery/draw"), ("get", "/reviews")):
        response = getattr(stranger, method)(API + path, content_type="application/json")
        refused(response, "unauthorized", 401)
    refused(stranger.post(API + "/checkin", HTTP_AUTHORIZATION="Bearer wxs_forged"), "unauthorized", 401)
    assert not CheckIn.objects.exists() and not LotteryDraw.objects.exists()


def test_an_h5_cookie_session_must_send_the_csrf_token_on_writes(store):
    shopper = h5_shopper(store, "o3")
    refused(shopper.client.post(API + "/checkin"), "csrf_failed", 403)
    assert shopper.client.get(API).status_code == 200  # reads need no token
    assert not CheckIn.objects.exists()


def test_points_history_is_paginated_newest_first(store):
    shopper, other = mini_shopper(store, "p1"), mini_shopper(store, "p2")
    for number in range(25):
        seed_points(store, shopper, number + 1, ref=f"seed-{number}")
    seed_points(store, other, 999, ref="other")
    first = call(shopper, "get", "/points?page_size=10").json()
    assert (first["total"], first["page"], first["page_size"], first["has_next"]) == (25, 1, 10, True)
    assert [row["amount"] for row in first["items"]] == list(range(25, 15, -1))
    assert first["items"][0]["reason"] == "purchase" and first["items"][0]["reason_zh"] == "消费"
    assert first["items"][0]["reason_en"] == "Purchase" and first["balance"] == sum(range(1, 26))
    last = call(shopper, "get", "/points?page=3&page_size=10").json()
    assert [row["amount"] for row in last["items"]] == [5, 4, 3, 2, 1] and last["has_next"] is False
    assert call(shopper, "get", "/points?page=4&page_size=10").json()["items"] == []
    refused(call(shopper, "get", "/points?page=0"), "invalid_page", 400)
    refused(call(shopper, "get", "/points?page=1001"), "invalid_page", 400)
    refused(call(shopper, "get", "/points?page_size=51"), "invalid_page_size", 400)
    refused(call(shopper, "get", "/points?page_size=0"), "invalid_page_size", 400)
    refused(call(shopper, "get", "/points?page=x"), "invalid_request", 422)


def test_checkin_once_a_day_with_streak_and_replay(store):
    shopper = mini_shopper(store, "c1")
    first = call(shopper, "post", "/checkin")
    assert first.status_code == 200
    body = first.json()
    assert body["created"] is True and body["streak"] == 1 and body["points"] == 5 and body["balance"] == 5
    again = call(shopper, "post", "/checkin").json()
    assert again["created"] is False and again["points"] == 5 and again["balance"] == 5 and again["day"] == body["day"]
    assert CheckIn.objects.filter(customer=shopper.customer).count() == 1
    assert PointsTransaction.objects.filter(customer=shopper.customer).count() == 1
    overview = call(shopper, "get", "").json()
    assert overview["checked_in_today"] is True and overview["checkin_streak"] == 1


def test_checkin_disabled_is_refused(store):
    shopper = mini_shopper(store, "c2")
    member_rules_update(workspace=store.workspace, changes={"checkin_enabled": False})
    refused(call(shopper, "post", "/checkin"), "checkin_disabled", 409)
    assert not CheckIn.objects.exists() and points_balance(customer=shopper.customer) == 0


def test_tasks_progress_and_claim_once(store):
    shopper, other = mini_shopper(store, "t1"), mini_shopper(store, "t2")
    tasks = {task.trigger: task for task in tasks_ensure(workspace=store.workspace)}
    call(shopper, "post", "/checkin")
    listed = {row["trigger"]: row for row in call(shopper, "get", "/tasks").json()}
    assert listed["checkin"]["completed"] is True and listed["checkin"]["claimed"] is False
    assert listed["checkin"]["count"] == listed["checkin"]["target"] == 1 and listed["checkin"]["percent"] == 100
    assert listed["browse"]["completed"] is False and listed["browse"]["count"] == 0
    kinds = [row["kind"] for row in call(shopper, "get", "/tasks").json()]
    assert kinds == sorted(kinds, key=lambda kind: kind != "newbie")  # 新手 first

    checkin_task = tasks["checkin"]
    refused(call(other, "post", f"/tasks/{checkin_task.pk}/claim"), "task_not_completed", 409)  # not theirs
    claimed = call(shopper, "post", f"/tasks/{checkin_task.pk}/claim")
    assert claimed.status_code == 200, claimed.content
    assert claimed.json()["reward_points"] == checkin_task.reward_points
    assert claimed.json()["balance"] == 5 + checkin_task.reward_points
    refused(call(shopper, "post", f"/tasks/{checkin_task.pk}/claim"), "task_already_claimed", 409)
    refused(call(shopper, "post", f"/tasks/{tasks['browse'].pk}/claim"), "task_not_completed", 409)
    refused(call(shopper, "post", "/tasks/999999999/claim"), "task_not_found", 404)
    refused(call(shopper, "post", "/tasks/abc/claim"), "invalid_request", 422)
    refused(call(shopper, "post", f"/tasks/{10 ** 20}/claim"), "task_not_found", 404)
    assert points_balance(customer=shopper.customer) == 5 + checkin_task.reward_points
    assert points_balance(customer=other.customer) == 0
    assert TaskProgress.objects.get(task=checkin_task, customer=shopper.customer).claimed_at is not None
    assert call(shopper, "get", "/tasks").json()[0]["claimed"] in (True, False)

    # another workspace's task is not found
    elsewhere = Workspace.objects.create(slug="elsewhere", name="别家")
    foreign = tasks_ensure(workspace=elsewhere)[0]
    refused(call(shopper, "post", f"/tasks/{foreign.pk}/claim"), "task_not_found", 404)


def test_share_capped_idempotent_by_ref(store):
    shopper = mini_shopper(store, "s1")
    member_rules_update(workspace=store.workspace, changes={"share_points": "4", "share_daily_cap": "1"})
    first = call(shopper, "post", "/share", {"target": "product:1", "ref": "a"}).json()
    assert first["points"] == 4 and first["balance"] == 4
    assert call(shopper, "post", "/share", {"target": "product:1", "ref": "a"}).json()["points"] == 4  # replay
    assert call(shopper, "post", "/share", {"target": "product:2", "ref": "b"}).json()["points"] == 0  # capped
    refused(call(shopper, "post", "/share", {"target": "product:3"}), "ref_invalid", 400)
    refused(call(shopper, "post", "/share", {"target": "", "ref": "c"}), "share_target_invalid", 400)
    refused(call(shopper, "post", "/share", {"target": 5, "ref": "d"}), "invalid_request", 422)
    assert ShareReward.objects.filter(customer=shopper.customer).count() == 2
    assert points_balance(customer=shopper.customer) == 4


def make_coupon_item(store, *, cost: int = 100, stock: int = 3, limit: int = 1, workspace=None):
    workspace = workspace or store.workspace
    template = make_coupon_template(workspace, name="10元券", amount_fen=1000, per_customer_limit=5)
    return template, exchange_item_save(workspace=workspace, fields={
        "title": "10元无门槛券", "kind": "coupon", "points_cost": str(cost), "stock": str(stock),
        "per_customer_limit": str(limit), "coupon_template_id": template.pk})


def test_mall_lists_items_and_exchanges_once_under_replay(store):
    shopper = mini_shopper(store, "x1")
    template, item = make_coupon_item(store, limit=2)
    seed_points(store, shopper, 250)
    mall = call(shopper, "get", "/mall").json()
    assert mall["balance"] == 250
    assert mall["items"] == [{"id": item.pk, "title": "10元无门槛券", "kind": "coupon", "points_cost": 100,
                              "stock": 3, "per_customer_limit": 2, "affordable": True}]
    first = call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "r1"})
    assert first.status_code == 201 and first.json()["created"] is True and first.json()["balance"] == 150
    replay = call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "r1"})
    assert replay.status_code == 200 and replay.json()["created"] is False
    assert replay.json()["redemption_id"] == first.json()["redemption_id"] and replay.json()["balance"] == 150
    # the Idempotency-Key header works as the ref
    header = call(shopper, "post", f"/mall/{item.pk}/exchange", {}, HTTP_IDEMPOTENCY_KEY="r2")
    assert header.status_code == 201
    assert call(shopper, "post", f"/mall/{item.pk}/exchange", {}, HTTP_IDEMPOTENCY_KEY="r2").status_code == 200
    assert Coupon.objects.filter(customer=shopper.customer, template=template).count() == 2
    assert points_balance(customer=shopper.customer) == 50 and ExchangeItem.objects.get(pk=item.pk).stock == 1
    refused(call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "r3"}), "points_insufficient", 409)
    assert ledger_check(workspace=store.workspace) == []


def test_exchange_refusals_change_nothing(store):
    shopper, other = mini_shopper(store, "x2"), mini_shopper(store, "x3")
    _template, item = make_coupon_item(store, limit=1)
    seed_points(store, shopper, 500)
    seed_points(store, other, 500, ref="seed-other")
    assert call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "mine"}).status_code == 201
    before = (points_balance(customer=shopper.customer), points_balance(customer=other.customer),
              ExchangeItem.objects.get(pk=item.pk).stock, ExchangeRedemption.objects.count(), Coupon.objects.count())
    # another customer replaying my ref gets nothing of mine
    refused(call(other, "post", f"/mall/{item.pk}/exchange", {"ref": "mine"}), "exchange_ref_conflict", 409)
    refused(call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "again"}), "exchange_limit_reached", 409)
    refused(call(shopper, "post", f"/mall/{item.pk}/exchange", {}), "ref_invalid", 400)
    refused(call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "x" * 81}), "ref_invalid", 400)
    refused(call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": 12}), "invalid_request", 422)
    refused(call(shopper, "post", "/mall/999999/exchange", {"ref": "nope"}), "exchange_item_not_found", 404)
    elsewhere = Workspace.objects.create(slug="elsewhere2", name="别家")
    _template, foreign = make_coupon_item(store, workspace=elsewhere)
    refused(call(shopper, "post", f"/mall/{foreign.pk}/exchange", {"ref": "foreign"}), "exchange_item_not_found", 404)
    assert (points_balance(customer=shopper.customer), points_balance(customer=other.customer),
            ExchangeItem.objects.get(pk=item.pk).stock, ExchangeRedemption.objects.count(),
            Coupon.objects.count()) == before
    assert ledger_check(workspace=store.workspace) == []


def test_exchange_rolls_back_when_the_coupon_cannot_be_issued(store):
    shopper = mini_shopper(store, "x4")
    template = make_coupon_template(store.workspace, name="售罄券", amount_fen=500, total_quantity=1, issued_count=1)
    item = exchange_item_save(workspace=store.workspace, fields={
        "title": "售罄券", "kind": "coupon", "points_cost": "50", "stock": "3", "coupon_template_id": template.pk})
    seed_points(store, shopper, 100)
    refused(call(shopper, "post", f"/mall/{item.pk}/exchange", {"ref": "z"}), "reward_coupon_unavailable", 409)
    assert points_balance(customer=shopper.customer) == 100 and ExchangeItem.objects.get(pk=item.pk).stock == 3
    assert not ExchangeRedemption.objects.exists()


def test_lottery_draw_once_per_ref_daily_limit_and_other_customers(store):
    shopper, other = mini_shopper(store, "l1"), mini_shopper(store, "l2")
    template = make_coupon_template(store.workspace, name="抽奖券", amount_fen=800, per_customer_limit=10)
    member_rules_update(workspace=store.workspace, changes={"lottery_cost": "20", "lottery_daily_limit": "2"})
    prize = prize_save(workspace=store.workspace, fields={"name": "8元券", "kind": "coupon", "weight": "1",
                                                         "stock": "5", "coupon_template_id": template.pk})
    seed_points(store, shopper, 100)
    seed_points(store, other, 100, ref="seed-other")
    page = call(shopper, "get", "/lottery").json()
    assert page["enabled"] is True and page["cost"] == 20 and page["daily_limit"] == 2 and page["draws_today"] == 0
    assert page["prizes"] == [{"id": prize.pk, "name": "8元券", "kind": "coupon", "points": 0, "odds_percent": 100.0}]
    first = call(shopper, "post", "/lottery/draw", {"ref": "d1"})
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["created"] is True and body["won"] is True and body["prize"]["id"] == prize.pk
    assert body["cost"] == 20 and body["balance"] == 80
    replay = call(shopper, "post", "/lottery/draw", {"ref": "d1"})
    assert replay.status_code == 200 and replay.json()["created"] is False and replay.json()["id"] == body["id"]
    refused(call(other, "post", "/lottery/draw", {"ref": "d1"}), "lottery_ref_conflict", 409)
    refused(call(shopper, "post", "/lottery/draw", {}), "ref_invalid", 400)
    assert call(shopper, "post", "/lottery/draw", {"ref": "d2"}).status_code == 201
    refused(call(shopper, "post", "/lottery/draw", {"ref": "d3"}), "lottery_daily_limit", 409)
    assert LotteryDraw.objects.filter(customer=shopper.customer).count() == 2
    assert not LotteryDraw.objects.filter(customer=other.customer).exists()
    assert Coupon.objects.filter(customer=shopper.customer, template=template).count() == 2
    assert points_balance(customer=shopper.customer) == 60 and points_balance(customer=other.customer) == 100
    assert LotteryPrize.objects.get(pk=prize.pk).stock == 3
    state = call(shopper, "get", "/lottery").json()
    assert state["draws_today"] == 2 and len(state["recent"]) == 2 and state["balance"] == 60
    assert ledger_check(workspace=store.workspace) == []


def test_lottery_refusals(store):
    shopper = mini_shopper(store, "l3")
    refused(call(shopper, "post", "/lottery/draw", {"ref": "n1"}), "lottery_not_configured", 409)
    prize_save(workspace=store.workspace, fields={"name": "谢谢参与", "kind": "nothing", "weight": "1"})
    refused(call(shopper, "post", "/lottery/draw", {"ref": "n2"}), "points_insufficient", 409)
    member_rules_update(workspace=store.workspace, changes={"lottery_enabled": False})
    refused(call(shopper, "post", "/lottery/draw", {"ref": "n3"}), "lottery_disabled", 409)
    assert not LotteryDraw.objects.exists()


def delivered_line(store, shopper, number: str) -> OrderLine:
    product, skus = store.products["cream"]
    now = timezone.now()
    order = Order.objects.create(workspace=store.workspace, customer=shopper.customer, number=number,
                                 order_status="completed", payment_status="paid",
                                 fulfilment_status=FulfilmentStatus.DELIVERED, subtotal_fen=12900, total_fen=12900,
                                 paid_fen=12900, pay_expires_at=now, paid_at=now, delivered_at=now)
    return OrderLine.objects.create(order=order, sku_id=skus[0].pk, product_id=product.pk, title=product.title,
                                    unit_price_fen=12900, quantity=1, payable_fen=12900)


def test_reviews_listed_rewarded_once_and_bad_input_refused(store):
    shopper, other = mini_shopper(store, "r1"), mini_shopper(store, "r2")
    line = delivered_line(store, shopper, "M0001")
    listed = call(shopper, "get", "/reviews").json()
    assert listed["review_points"] == 10 and listed["min_chars"] == 5
    assert [(row["order_number"], row["line_id"]) for row in listed["lines"]] == [("M0001", line.pk)]
    assert call(other, "get", "/reviews").json()["lines"] == []
    form = {"order_number": "M0001", "line_id": line.pk, "rating": 5, "text": "很好用，滋润不油腻"}
    for bad, code, status in ((dict(form, rating=6), "review_rating_invalid", 400),
                              (dict(form, rating=0), "review_rating_invalid", 400),
                              (dict(form, text="好"), "review_too_short", 400),
                              (dict(form, text="好" * 501), "review_too_long", 400),
                              (dict(form, order_number="NOPE"), "order_not_found", 404),
                              (dict(form, line_id=999999), "review_line_invalid", 400),
                              (dict(form, rating="5"), "invalid_request", 422)):
        refused(call(shopper, "post", "/reviews", bad), code, status)
    refused(call(other, "post", "/reviews", form), "order_not_found", 404)  # someone else's order
    assert not ProductReview.objects.exists() and points_balance(customer=shopper.customer) == 0
    done = call(shopper, "post", "/reviews", form)
    assert done.status_code == 201 and done.json()["points"] == 10 and done.json()["balance"] == 10
    refused(call(shopper, "post", "/reviews", form), "review_exists", 409)
    assert ProductReview.objects.get().rating == 5 and points_balance(customer=shopper.customer) == 10
    assert call(shopper, "get", "/reviews").json()["lines"] == []


def test_the_member_api_is_documented_in_openapi(store):
    schema = Client().get("/api/openapi.json").json()
    for path, method in (("", "get"), ("/points", "get"), ("/checkin", "post"), ("/tasks", "get"),
                         ("/tasks/{task_id}/claim", "post"), ("/share", "post"), ("/mall", "get"),
                         ("/mall/{item_id}/exchange", "post"), ("/lottery", "get"), ("/lottery/draw", "post"),
                         ("/reviews", "get"), ("/reviews", "post")):
        operation = schema["paths"]["/api/mini/v1/member" + path][method]
        assert " / " in operation["summary"], path  # Chinese / English
        assert {"401", "409"} <= set(operation["responses"]), path
        assert {"200", "201"} & set(operation["responses"]), path
    assert "Overview" in schema["components"]["schemas"] and "DrawOut" in schema["components"]["schemas"]
