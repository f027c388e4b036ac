"""PostgreSQL: many concurrent check-ins (and lottery draws, and mall exchanges) of one customer — one check-in
a day, one reward; a prize's and an item's stock never below zero; the balance never below zero."""

from __future__ import annotations

import pytest

from siyu.core.errors import SiyuError
from siyu.core.services import workspace_create
from siyu.loyalty.checkin import checkin, member_rules_update
from siyu.loyalty.exchange import exchange_item_save, exchange_redeem
from siyu.loyalty.lottery import lottery_draw, prize_save
from siyu.loyalty.models import CheckIn, ExchangeItem, LotteryDraw, LotteryPrize, PointsTransaction
from siyu.loyalty.points import ledger_check, points_balance, points_earn
from tests.concurrency import run_together
from tests.loyalty.factories import make_customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 10


def test_concurrent_checkins_make_one():
    workspace = workspace_create(slug="checkin-race", name="签到并发")
    customer = make_customer(workspace)
    created = []
    errors = run_together(THREADS, lambda i: created.append(checkin(workspace=workspace, customer=customer).created))
    assert errors == []
    assert created.count(True) == 1 and len(created) == THREADS
    assert CheckIn.objects.filter(customer=customer).count() == 1
    assert PointsTransaction.objects.filter(customer=customer, reason="checkin").count() == 1
    assert points_balance(customer=customer) == 5
    assert ledger_check(workspace=workspace) == []


def test_concurrent_draws_and_exchanges_keep_stock_and_balance():
    workspace = workspace_create(slug="lottery-race", name="抽奖并发")
    customer = make_customer(workspace)
    points_earn(workspace=workspace, customer=customer, amount=500, reason="purchase", ref="seed")
    member_rules_update(workspace=workspace, changes={"lottery_cost": "40", "lottery_daily_limit": "6"})
    prize = prize_save(workspace=workspace, fields={"name": "口红", "kind": "gift", "weight": "1", "stock": "3"})
    item = exchange_item_save(workspace=workspace, fields={"title": "帆布袋", "kind": "gift", "points_cost": "50",
                                                           "stock": "2", "per_customer_limit": "0"})
    outcomes: list[str] = []

    def work(index: int) -> None:
        for attempt in range(2):
            try:
                if (index + attempt) % 2:
                    lottery_draw(workspace=workspace, customer=customer, ref=f"d{index}:{attempt}")
                else:
                    exchange_redeem(workspace=workspace, customer=customer, item_id=item.pk, ref=f"x{index}:{attempt}")
                outcomes.append("ok")
            except SiyuError as error:
                assert error.code in {"points_insufficient", "lottery_daily_limit", "exchange_out_of_stock"}
                outcomes.append(error.code)

    assert run_together(THREADS, work) == []
    draws = LotteryDraw.objects.filter(customer=customer).count()
    redemptions = ExchangeItem.objects.get(pk=item.pk).redemptions.count()
    assert draws <= 6 and redemptions <= 2
    assert LotteryPrize.objects.get(pk=prize.pk).stock == 3 - LotteryDraw.objects.filter(prize=prize).count() >= 0
    assert ExchangeItem.objects.get(pk=item.pk).stock == 2 - redemptions >= 0
    assert points_balance(customer=customer) == 500 - 40 * draws - 50 * redemptions >= 0
    assert ledger_check(workspace=workspace) == []
