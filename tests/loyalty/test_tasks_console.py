"""Console 成长任务: roles (admin/operator edit, analyst reads, service 403), rules, tasks, points mall and prizes
saved through the services; bad input refused with its code and nothing written; charts data embedded."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from siyu.loyalty.checkin import checkin
from siyu.loyalty.models import ExchangeItem, GrowthTask, LotteryPrize, MemberRules
from tests.commerce.promotions_fixtures import make_coupon_template
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db
PAGE = "console:loyalty_tasks"

RULES = {"checkin_enabled": "on", "checkin_points": "8", "checkin_streak_bonus": "7:30, 30:200", "share_points": "2",
         "share_daily_cap": "3", "review_points": "15", "review_min_chars": "5", "review_max_chars": "300",
         "lottery_enabled": "on", "lottery_cost": "40", "lottery_daily_limit": "3",
         "tier_notice_template_id": "TPL_tier", "tier_notice_subscribe_template_id": ""}


def chart_data(response) -> dict:
    html = response.content.decode()
    return json.loads(html.split('<script id="chart-data" type="application/json">', 1)[1].split("</script>", 1)[0])


def test_roles(clients, workspace):
    for role in ("admin", "operator", "analyst"):
        assert clients[role].get(reverse(PAGE)).status_code == 200
    assert clients["service"].get(reverse(PAGE)).status_code == 403
    for role in ("analyst", "service"):
        refused = clients[role].post(reverse("console:loyalty_rules_save"), RULES)
        assert refused.status_code == 403
    assert not MemberRules.objects.exists()
    assert "保存规则" not in clients["analyst"].get(reverse(PAGE)).content.decode()


def test_rules_saved_and_bad_rules_refused(clients, workspace):
    assert clients["operator"].post(reverse("console:loyalty_rules_save"), RULES).status_code == 302
    rules = MemberRules.objects.get(workspace=workspace)
    assert (rules.checkin_points, rules.checkin_streak_bonus, rules.lottery_cost) == (8, {"7": 30, "30": 200}, 40)
    for bad in ({"checkin_streak_bonus": "seven:30"}, {"lottery_cost": "-5"}, {"review_min_chars": "400"},
                {"tier_notice_template_id": "<script>"}):
        refused = clients["admin"].post(reverse("console:loyalty_rules_save"), {**RULES, **bad})
        assert refused.status_code == 400 and "member_rule_invalid" in refused.content.decode()
    rules.refresh_from_db()
    assert rules.checkin_points == 8 and rules.tier_notice_template_id == "TPL_tier"


def test_task_edit_and_stats_chart(clients, workspace):
    page = clients["admin"].get(reverse(PAGE))
    task = GrowthTask.objects.get(workspace=workspace, trigger="checkin")
    url = reverse("console:loyalty_task_save", args=[task.pk])
    assert clients["admin"].post(url, {"title": "签到打卡", "target": "1", "reward_points": "3", "reward_growth": "1",
                                       "is_active": "on"}).status_code == 302
    task.refresh_from_db()
    assert (task.title, task.reward_points) == ("签到打卡", 3)
    refused = clients["admin"].post(url, {"title": "", "target": "1", "reward_points": "3", "reward_growth": "1"})
    assert refused.status_code == 400 and "task_invalid" in refused.content.decode()
    assert clients["admin"].post(reverse("console:loyalty_task_save", args=[999999]), {}).status_code == 404
    assert chart_data(page)["task_completion"]["x"] == []  # nothing completed yet: the empty chart
    checkin(workspace=workspace, customer=make_customer(workspace))
    data = chart_data(clients["analyst"].get(reverse(PAGE)))
    assert sum(data["checkins_daily"]["y"]) == 1
    index = data["task_completion"]["x"].index("签到打卡")
    assert data["task_completion"]["series"][1]["y"][index] == 1  # completed, not claimed


def test_mall_items_and_prizes(clients, workspace, other_workspace):
    template = make_coupon_template(workspace, name="5元券", amount_fen=500)
    foreign = make_coupon_template(other_workspace, name="别家的券", amount_fen=500)
    create = reverse("console:loyalty_item_create")
    item = {"title": "5元券", "kind": "coupon", "points_cost": "100", "stock": "10", "per_customer_limit": "2",
            "coupon_template_id": str(template.pk), "is_active": "on"}
    assert clients["operator"].post(create, item).status_code == 302
    refused = clients["operator"].post(create, {**item, "coupon_template_id": str(foreign.pk)})
    assert refused.status_code == 404 and "coupon_template_not_found" in refused.content.decode()
    refused = clients["operator"].post(create, {**item, "points_cost": "0"})
    assert refused.status_code == 400 and "exchange_item_invalid" in refused.content.decode()
    saved = ExchangeItem.objects.get()
    assert (saved.coupon_template_id, saved.points_cost, saved.per_customer_limit) == (template.pk, 100, 2)
    assert clients["operator"].post(reverse("console:loyalty_item_save", args=[saved.pk]),
                                    {**item, "stock": "3"}).status_code == 302
    assert ExchangeItem.objects.get().stock == 3

    prize_create = reverse("console:loyalty_prize_create")
    assert clients["admin"].post(prize_create, {"name": "谢谢参与", "kind": "nothing", "weight": "70", "stock": "",
                                                "is_active": "on"}).status_code == 302
    assert clients["admin"].post(prize_create, {"name": "口红", "kind": "gift", "weight": "30", "stock": "5",
                                                "is_active": "on"}).status_code == 302
    refused = clients["admin"].post(prize_create, {"name": "券", "kind": "coupon", "weight": "1", "stock": "1"})
    assert refused.status_code == 400 and "prize_invalid" in refused.content.decode()
    assert clients["analyst"].post(prize_create, {"name": "x", "kind": "gift", "weight": "1"}).status_code == 403
    assert LotteryPrize.objects.count() == 2 and LotteryPrize.objects.get(name="谢谢参与").stock is None
    html = clients["analyst"].get(reverse(PAGE)).content.decode()
    assert "70.0%" in html and "30.0%" in html
