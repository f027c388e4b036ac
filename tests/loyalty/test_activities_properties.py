"""Property (hypothesis state machine): under any sequence of earn (purchase, check-in, share, review, task),
burn (checkout, exchange, lottery), expiry, refund, reversal and replays, the ledger keeps its invariants —
a balance is never negative and equals the sum of its entries and of its lots' remaining points, every
transaction's entries sum to zero — and stock of mall items and prizes never goes below zero."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from siyu.core.errors import SiyuError
from siyu.core.services import workspace_create
from siyu.loyalty.checkin import checkin, member_rules_update, review_reward, share_record
from siyu.loyalty.exchange import exchange_item_save, exchange_redeem
from siyu.loyalty.lottery import lottery_draw, prize_save
from siyu.loyalty.missions import mission_claim, mission_progress, tasks_ensure
from siyu.loyalty.models import (
    ExchangeItem,
    LotteryPrize,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsTransaction,
)
from siyu.loyalty.points import (
    ledger_check,
    points_balance,
    points_earn,
    points_expire_due,
    points_refund,
    points_reverse_earn,
    points_spend,
)
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db

_workspaces = itertools.count(1)
EXPECTED_REFUSALS = {"points_insufficient", "exchange_out_of_stock", "exchange_limit_reached", "lottery_daily_limit",
                     "task_not_completed", "task_already_claimed"}


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.step = 0
        self.workspace = workspace_create(slug=f"prop-{next(_workspaces)}", name="性质测试")
        self.customer = make_customer(self.workspace)
        member_rules_update(workspace=self.workspace, changes={"lottery_cost": "25", "lottery_daily_limit": "1000",
                                                               "share_daily_cap": "3"})
        self.item = exchange_item_save(workspace=self.workspace, fields={
            "title": "礼品", "kind": "gift", "points_cost": "60", "stock": "3", "per_customer_limit": "0"})
        prize_save(workspace=self.workspace, fields={"name": "30积分", "kind": "points", "weight": "3",
                                                     "points": "30", "stock": "4"})
        prize_save(workspace=self.workspace, fields={"name": "谢谢参与", "kind": "nothing", "weight": "5"})
        self.tasks = {task.trigger: task for task in tasks_ensure(workspace=self.workspace)}
        self.rng = random.Random(1123)
        self.earns: list[str] = []
        self.spends: list[str] = []
        self.day = timezone.now()

    def ref(self) -> str:
        self.step += 1
        return f"s{self.step}"

    def attempt(self, call):
        before = points_balance(customer=self.customer)
        try:
            call()
        except SiyuError as error:
            assert error.code in EXPECTED_REFUSALS, error.code
            assert points_balance(customer=self.customer) == before  # a refusal changes nothing

    @rule(amount=st.integers(1, 300))
    def earn_purchase(self, amount):
        ref = self.ref()
        points_earn(workspace=self.workspace, customer=self.customer, amount=amount, reason="purchase", ref=ref)
        self.earns.append(ref)

    @rule()
    def check_in(self):
        checkin(workspace=self.workspace, customer=self.customer, now=self.day)

    @rule()
    def next_day(self):
        self.day += timedelta(days=1)

    @rule(what=st.sampled_from(["product:1", "product:2", "page:home"]))
    def share(self, what):
        share_record(workspace=self.workspace, customer=self.customer, target=what, ref=self.ref())

    @rule(line=st.integers(1, 6))
    def review(self, line):
        review_reward(workspace=self.workspace, customer=self.customer, order_line_id=line)

    @rule(trigger=st.sampled_from(["browse", "first_order", "share", "checkin"]), key=st.integers(1, 4))
    def task(self, trigger, key):
        mission_progress(workspace=self.workspace, customer=self.customer, trigger=trigger, key=str(key), at=self.day)
        self.attempt(lambda: mission_claim(workspace=self.workspace, customer=self.customer,
                                           task_id=self.tasks[trigger].pk, now=self.day))

    @rule(amount=st.integers(1, 400), reason=st.sampled_from(["checkout", "exchange", "lottery"]))
    def burn(self, amount, reason):
        ref = self.ref()

        def spend():
            points_spend(workspace=self.workspace, customer=self.customer, amount=amount, ref=ref, reason=reason)
            self.spends.append(ref)
        self.attempt(spend)

    @rule()
    def exchange(self):
        self.attempt(lambda: exchange_redeem(workspace=self.workspace, customer=self.customer, item_id=self.item.pk,
                                             ref=self.ref()))

    @rule()
    def lottery(self):
        self.attempt(lambda: lottery_draw(workspace=self.workspace, customer=self.customer, ref=self.ref(),
                                          rng=self.rng, now=self.day))

    @rule(index=st.integers(0, 50))
    def refund(self, index):
        if self.spends:
            points_refund(ref=self.spends[index % len(self.spends)], workspace=self.workspace)

    @rule(index=st.integers(0, 50), part=st.integers(1, 200))
    def reverse(self, index, part):
        if self.earns:
            points_reverse_earn(workspace=self.workspace, earn_ref=self.earns[index % len(self.earns)],
                                ref=self.ref(), amount=part)

    @rule(index=st.integers(0, 50))
    def expire(self, index):
        lots = list(PointsLot.objects.filter(customer=self.customer, remaining__gt=0).order_by("pk"))
        if lots:
            PointsLot.objects.filter(pk=lots[index % len(lots)].pk).update(
                expires_at=timezone.now() - timedelta(seconds=1))
            points_expire_due(workspace=self.workspace)

    @rule()
    def replay_last(self):
        last = PointsTransaction.objects.filter(customer=self.customer, kind="earn").order_by("-pk").first()
        if last is not None:
            before = points_balance(customer=self.customer)
            points_earn(workspace=self.workspace, customer=self.customer, amount=last.amount, reason=last.reason,
                        ref=last.ref)
            assert points_balance(customer=self.customer) == before

    @invariant()
    def ledger_holds(self):
        if not hasattr(self, "customer"):
            return
        account = PointsAccount.objects.filter(customer=self.customer).first()
        balance = account.balance if account else 0
        entries = PointsEntry.objects.filter(account__customer=self.customer).aggregate(t=Sum("amount"))["t"] or 0
        lots = PointsLot.objects.filter(customer=self.customer).aggregate(t=Sum("remaining"))["t"] or 0
        assert balance >= 0 and balance == entries == lots
        assert ExchangeItem.objects.get(pk=self.item.pk).stock >= 0
        assert all(prize.stock is None or prize.stock >= 0
                   for prize in LotteryPrize.objects.filter(workspace=self.workspace))

    def teardown(self):
        if hasattr(self, "workspace"):
            assert ledger_check(workspace=self.workspace) == []


LedgerMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=30, deadline=None,
                                           suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])


@pytest.mark.django_db
def test_ledger_invariants_under_any_sequence(db):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(LedgerMachine, settings=LedgerMachine.TestCase.settings)
