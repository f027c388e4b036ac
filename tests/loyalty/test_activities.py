"""Check-in, share and review rewards, growth tasks, the points mall and the lottery (services)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

import pytest

from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.loyalty.checkin import checkin, checkin_streak, member_rules_update, review_reward, share_record
from siyu.loyalty.exchange import exchange_item_save, exchange_redeem
from siyu.loyalty.lottery import lottery_draw, lottery_odds, prize_save
from siyu.loyalty.member_rules import lottery_pick, streak_after, streak_bonus, streak_bonus_parse
from siyu.loyalty.missions import (
    mission_claim,
    mission_progress,
    task_update,
    tasks_ensure,
    tasks_for_customer,
)
from siyu.loyalty.models import (
    CheckIn,
    ExchangeItem,
    GrowthEntry,
    LotteryDraw,
    LotteryPrize,
    PointsTransaction,
    ShareReward,
)
from siyu.loyalty.points import ledger_check, points_balance, points_earn
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=SHANGHAI)


# --- pure rules -------------------------------------------------------------------------------------------

def test_streak_rules():
    assert streak_after(last_day=None, last_streak=0, today=at(5).date()) == 1
    assert streak_after(last_day=at(4).date(), last_streak=6, today=at(5).date()) == 7
    assert streak_after(last_day=at(3).date(), last_streak=6, today=at(5).date()) == 1
    assert streak_bonus({"7": 20, "30": 100}, 7) == 20
    assert streak_bonus({"7": 20}, 8) == 0
    assert streak_bonus_parse("7:20， 30:100") == {"7": 20, "30": 100}
    for bad in ("7", "x:1", "0:5", "7:-1"):
        with pytest.raises(ValueError):
            streak_bonus_parse(bad)


def test_lottery_pick_follows_the_weights_with_a_seeded_rng():
    rng = random.Random(20261123)
    counts = Counter(lottery_pick([(1, 10), (2, 30), (3, 60), (4, 0)], rng) for _ in range(20_000))
    assert set(counts) == {1, 2, 3}  # weight 0 never wins
    assert 0.08 < counts[1] / 20_000 < 0.12
    assert 0.27 < counts[2] / 20_000 < 0.33
    assert 0.57 < counts[3] / 20_000 < 0.63
    assert lottery_pick([(1, 0)], rng) is None
    # Same seed, same sequence: draws are reproducible in tests.
    assert [lottery_pick([(1, 1), (2, 1)], random.Random(7)) for _ in range(5)] == \
        [lottery_pick([(1, 1), (2, 1)], random.Random(7)) for _ in range(5)]


# --- check-in ---------------------------------------------------------------------------------------------

def test_checkin_once_a_day_with_streak_bonus(workspace):
    customer = make_customer(workspace)
    member_rules_update(workspace=workspace, changes={"checkin_points": "5", "checkin_streak_bonus": {"3": 10}})
    for day in (1, 2):
        assert checkin(workspace=workspace, customer=customer, now=at(day)).created
    third = checkin(workspace=workspace, customer=customer, now=at(3, 8))
    assert third.created and third.check_in.streak == 3 and third.check_in.points == 15
    again = checkin(workspace=workspace, customer=customer, now=at(3, 23))
    assert not again.created and again.check_in.pk == third.check_in.pk
    assert points_balance(customer=customer) == 5 + 5 + 15
    # A missed day restarts the streak.
    assert checkin(workspace=workspace, customer=customer, now=at(5)).check_in.streak == 1
    assert checkin_streak(customer=customer, now=at(6)) == 1
    assert checkin_streak(customer=customer, now=at(8)) == 0
    assert CheckIn.objects.filter(customer=customer).count() == 4
    assert ledger_check(workspace=workspace) == []


def test_checkin_day_is_the_shanghai_day(workspace):
    customer = make_customer(workspace)
    # 23:30 and 00:30 Shanghai are two days (though 15:30 and 16:30 UTC of one UTC day).
    assert checkin(workspace=workspace, customer=customer, now=at(1, 23).replace(minute=30)).created
    assert checkin(workspace=workspace, customer=customer, now=at(2, 0).replace(minute=30)).created


def test_checkin_disabled_refused(workspace):
    customer = make_customer(workspace)
    member_rules_update(workspace=workspace, changes={"checkin_enabled": False})
    with pytest.raises(SiyuError) as refused:
        checkin(workspace=workspace, customer=customer)
    assert refused.value.code == "checkin_disabled" and refused.value.status == 409
    assert not CheckIn.objects.exists() and points_balance(customer=customer) == 0


@pytest.mark.parametrize("changes, field", [
    ({"checkin_points": "-1"}, "checkin_points"), ({"share_daily_cap": "x"}, "share_daily_cap"),
    ({"review_min_chars": "50", "review_max_chars": "10"}, "review_min_chars"),
    ({"tier_notice_template_id": "bad id!"}, "tier_notice_template_id"), ({"nope": 1}, "nope"),
])
def test_bad_rules_refused_and_nothing_changes(workspace, changes, field):
    with pytest.raises(SiyuError) as refused:
        member_rules_update(workspace=workspace, changes=changes)
    assert refused.value.code == "member_rule_invalid" and refused.value.details["field"] == field
    from siyu.loyalty.models import MemberRules
    assert not MemberRules.objects.exists()


# --- share and review -------------------------------------------------------------------------------------

def test_share_points_capped_per_day_and_idempotent(workspace):
    customer = make_customer(workspace)
    member_rules_update(workspace=workspace, changes={"share_points": "3", "share_daily_cap": "2"})
    rows = [share_record(workspace=workspace, customer=customer, target=f"product:{i}", ref=f"s{i}", now=at(1))
            for i in range(4)]
    assert [row.points for row in rows] == [3, 3, 0, 0]
    assert share_record(workspace=workspace, customer=customer, target="product:0", ref="s0", now=at(1)).pk == rows[0].pk
    assert share_record(workspace=workspace, customer=customer, target="product:9", ref="s9", now=at(2)).points == 3
    assert points_balance(customer=customer) == 9
    assert ShareReward.objects.count() == 5
    with pytest.raises(SiyuError) as refused:
        share_record(workspace=workspace, customer=customer, target="", ref="x")
    assert refused.value.code == "share_target_invalid"


def test_review_reward_once_per_line(workspace):
    customer = make_customer(workspace)
    review_reward(workspace=workspace, customer=customer, order_line_id=41)
    review_reward(workspace=workspace, customer=customer, order_line_id=41)
    review_reward(workspace=workspace, customer=customer, order_line_id=42)
    assert points_balance(customer=customer) == 20
    assert PointsTransaction.objects.filter(reason="review").count() == 2


# --- growth tasks -----------------------------------------------------------------------------------------

def test_default_tasks_and_daily_progress_rewarded_once_per_day(workspace):
    customer = make_customer(workspace)
    tasks = {task.trigger: task for task in tasks_ensure(workspace=workspace)}
    assert set(tasks) == {"profile_completed", "first_order", "community_joined", "checkin", "browse", "share"}
    browse = tasks["browse"]
    with pytest.raises(SiyuError) as refused:
        mission_claim(workspace=workspace, customer=customer, task_id=browse.pk, now=at(1))
    assert refused.value.code == "task_not_completed"
    for key in ("p1", "p2", "p1", "p2"):  # replays count nothing
        mission_progress(workspace=workspace, customer=customer, trigger="browse", key=key, at=at(1))
    view = next(v for v in tasks_for_customer(workspace=workspace, customer=customer, now=at(1)) if v.task == browse)
    assert (view.count, view.completed) == (2, False)
    mission_progress(workspace=workspace, customer=customer, trigger="browse", key="p3", at=at(1))
    mission_claim(workspace=workspace, customer=customer, task_id=browse.pk, now=at(1, 12))
    with pytest.raises(SiyuError) as twice:
        mission_claim(workspace=workspace, customer=customer, task_id=browse.pk, now=at(1, 13))
    assert twice.value.code == "task_already_claimed"
    assert points_balance(customer=customer) == browse.reward_points
    assert GrowthEntry.objects.filter(customer=customer, source="task").count() == 1
    # The next day is a new period.
    for key in ("p1", "p2", "p3"):
        mission_progress(workspace=workspace, customer=customer, trigger="browse", key=key, at=at(2))
    mission_claim(workspace=workspace, customer=customer, task_id=browse.pk, now=at(2))
    assert points_balance(customer=customer) == 2 * browse.reward_points


def test_newbie_task_once_ever(workspace):
    customer = make_customer(workspace)
    first = next(t for t in tasks_ensure(workspace=workspace) if t.trigger == "first_order")
    mission_progress(workspace=workspace, customer=customer, trigger="first_order", key="order:1", at=at(1))
    mission_claim(workspace=workspace, customer=customer, task_id=first.pk, now=at(1))
    mission_progress(workspace=workspace, customer=customer, trigger="first_order", key="order:2", at=at(9))
    with pytest.raises(SiyuError) as refused:
        mission_claim(workspace=workspace, customer=customer, task_id=first.pk, now=at(9))
    assert refused.value.code == "task_already_claimed"
    assert points_balance(customer=customer) == first.reward_points


def test_checkin_and_share_advance_daily_tasks(workspace):
    customer = make_customer(workspace)
    tasks = {task.trigger: task for task in tasks_ensure(workspace=workspace)}
    checkin(workspace=workspace, customer=customer, now=at(1))
    share_record(workspace=workspace, customer=customer, target="page:home", ref="s1", now=at(1))
    views = {v.task.trigger: v for v in tasks_for_customer(workspace=workspace, customer=customer, now=at(1))}
    assert views["checkin"].completed and views["share"].completed and not views["browse"].completed
    mission_claim(workspace=workspace, customer=customer, task_id=tasks["checkin"].pk, now=at(1))


def test_task_update_validates_and_switches_off(workspace):
    task = tasks_ensure(workspace=workspace)[0]
    with pytest.raises(SiyuError) as refused:
        task_update(workspace=workspace, task_id=task.pk, fields={"target": "0"})
    assert refused.value.code == "task_invalid"
    task_update(workspace=workspace, task_id=task.pk, fields={"title": "填写资料", "target": "1", "reward_points": "9",
                                                              "reward_growth": "0", "is_active": False})
    customer = make_customer(workspace)
    assert task.pk not in [v.task.pk for v in tasks_for_customer(workspace=workspace, customer=customer)]
    with pytest.raises(SiyuError) as missing:
        mission_claim(workspace=workspace, customer=customer, task_id=task.pk)
    assert missing.value.code == "task_not_found" and missing.value.status == 404


# --- points mall ------------------------------------------------------------------------------------------

def test_exchange_spends_points_takes_stock_once(workspace):
    customer = make_customer(workspace)
    points_earn(workspace=workspace, customer=customer, amount=500, reason="purchase", ref="seed")
    item = exchange_item_save(workspace=workspace, fields={"title": "帆布袋", "kind": "gift", "points_cost": "200",
                                                           "stock": "1", "per_customer_limit": "0"})
    first = exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref="r1")
    assert first.created
    assert not exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref="r1").created
    with pytest.raises(SiyuError) as out:
        exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref="r2")
    assert out.value.code == "exchange_out_of_stock"
    assert points_balance(customer=customer) == 300  # the refused one spent nothing
    assert ExchangeItem.objects.get(pk=item.pk).stock == 0
    assert ledger_check(workspace=workspace) == []


def test_exchange_refusals(workspace):
    customer = make_customer(workspace)
    item = exchange_item_save(workspace=workspace, fields={"title": "券", "kind": "gift", "points_cost": "100",
                                                           "stock": "5", "per_customer_limit": "1"})
    with pytest.raises(SiyuError) as poor:
        exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref="a")
    assert poor.value.code == "points_insufficient"
    points_earn(workspace=workspace, customer=customer, amount=300, reason="purchase", ref="seed")
    exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref="b")
    with pytest.raises(SiyuError) as limit:
        exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref="c")
    assert limit.value.code == "exchange_limit_reached"
    assert points_balance(customer=customer) == 200
    with pytest.raises(SiyuError) as bad:
        exchange_item_save(workspace=workspace, fields={"title": "x", "kind": "coupon", "points_cost": "10",
                                                        "stock": "1"})
    assert bad.value.code == "exchange_item_invalid" and bad.value.details["field"] == "coupon_template_id"


# --- lottery ----------------------------------------------------------------------------------------------

def test_lottery_stock_never_negative_and_points_prize(workspace):
    customer = make_customer(workspace)
    points_earn(workspace=workspace, customer=customer, amount=1000, reason="purchase", ref="seed")
    member_rules_update(workspace=workspace, changes={"lottery_cost": "10", "lottery_daily_limit": "50"})
    gift = prize_save(workspace=workspace, fields={"name": "口红", "kind": "gift", "weight": "90", "stock": "2"})
    bonus = prize_save(workspace=workspace, fields={"name": "88积分", "kind": "points", "weight": "10", "points": "88"})
    rng = random.Random(5)
    draws = [lottery_draw(workspace=workspace, customer=customer, ref=f"d{i}", rng=rng, now=at(1)) for i in range(20)]
    won = Counter(d.prize.pk for d in draws)
    assert won[gift.pk] == 2 and won[bonus.pk] == 18  # the gift ran out after two; never below zero
    assert LotteryPrize.objects.get(pk=gift.pk).stock == 0
    assert points_balance(customer=customer) == 1000 - 20 * 10 + 18 * 88
    replay = lottery_draw(workspace=workspace, customer=customer, ref="d0", rng=rng, now=at(1))
    assert not replay.created and LotteryDraw.objects.count() == 20
    assert lottery_odds(list(LotteryPrize.objects.order_by("pk"))) == {bonus.pk: 100.0}
    assert ledger_check(workspace=workspace) == []


def test_lottery_daily_limit_and_balance(workspace):
    customer = make_customer(workspace)
    member_rules_update(workspace=workspace, changes={"lottery_cost": "30", "lottery_daily_limit": "2"})
    with pytest.raises(SiyuError) as none:
        lottery_draw(workspace=workspace, customer=customer, ref="x")
    assert none.value.code == "lottery_not_configured"
    prize_save(workspace=workspace, fields={"name": "谢谢参与", "kind": "nothing", "weight": "1"})
    with pytest.raises(SiyuError) as poor:
        lottery_draw(workspace=workspace, customer=customer, ref="x")
    assert poor.value.code == "points_insufficient"
    points_earn(workspace=workspace, customer=customer, amount=100, reason="purchase", ref="seed")
    for i in range(2):
        lottery_draw(workspace=workspace, customer=customer, ref=f"ok{i}", now=at(1))
    with pytest.raises(SiyuError) as limit:
        lottery_draw(workspace=workspace, customer=customer, ref="ok2", now=at(1, 20))
    assert limit.value.code == "lottery_daily_limit"
    assert points_balance(customer=customer) == 40  # the refused draw cost nothing
    lottery_draw(workspace=workspace, customer=customer, ref="next-day", now=at(1) + timedelta(days=1))
    assert points_balance(customer=customer) == 10
    with pytest.raises(SiyuError) as bad:
        prize_save(workspace=workspace, fields={"name": "x", "kind": "points", "weight": "1", "points": "0"})
    assert bad.value.code == "prize_invalid"
