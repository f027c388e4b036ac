"""Property: any sequence of earn / spend / return / reverse / expire / adjust keeps the ledger's invariants —
each transaction balanced, every balance = sum of its entries = sum of its lots, never negative."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.core.errors import SiyuError
from siyu.loyalty.models import PointsAccount, PointsEntry, PointsLot, PointsTransaction
from siyu.loyalty.points import (
    ledger_check,
    points_adjust,
    points_balance,
    points_earn,
    points_expire_due,
    points_refund,
    points_reverse_earn,
    points_spend,
)
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db

amounts = st.integers(min_value=1, max_value=400)
operations = st.lists(st.one_of(
    st.tuples(st.just("earn"), amounts, st.sampled_from(["purchase", "checkin", "share", "review", "task"])),
    st.tuples(st.just("spend"), amounts, st.sampled_from(["checkout", "exchange", "lottery"])),
    st.tuples(st.just("return"), st.integers(min_value=0, max_value=20), st.just("")),
    st.tuples(st.just("reverse"), st.integers(min_value=0, max_value=20), st.sampled_from(["part", "all"])),
    st.tuples(st.just("expire"), st.integers(min_value=0, max_value=20), st.just("")),
    st.tuples(st.just("adjust"), st.integers(min_value=-300, max_value=300).filter(bool), st.just("")),
    st.tuples(st.just("replay"), st.integers(min_value=0, max_value=20), st.just("")),
), min_size=1, max_size=25)


def _customer_entries_total(customer) -> int:
    return PointsEntry.objects.filter(account__customer=customer).aggregate(total=Sum("amount"))["total"] or 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_any_sequence_keeps_the_ledger_balanced(workspace, ops):
    admin = get_user_model().objects.get_or_create(username="prop-admin")[0]
    customer = make_customer(workspace)
    earns: list[str] = []
    spends: list[str] = []
    returned: set[str] = set()
    for step, (op, value, extra) in enumerate(ops):
        before = points_balance(customer=customer)
        ref = f"c{customer.pk}:{step}"
        if op == "earn":
            points_earn(workspace=workspace, customer=customer, amount=value, reason=extra, ref=ref)
            earns.append(ref)
            assert points_balance(customer=customer) == before + value
        elif op == "spend":
            if value > before:
                with pytest.raises(SiyuError) as error:
                    points_spend(workspace=workspace, customer=customer, amount=value, ref=ref, reason=extra)
                assert error.value.code == "points_insufficient"
                assert points_balance(customer=customer) == before
            else:
                points_spend(workspace=workspace, customer=customer, amount=value, ref=ref, reason=extra)
                spends.append(ref)
                assert points_balance(customer=customer) == before - value
        elif op == "return" and spends:
            spend_ref = spends[value % len(spends)]
            assert points_refund(ref=spend_ref) is (spend_ref not in returned)
            returned.add(spend_ref)
            assert points_balance(customer=customer) >= before
        elif op == "reverse" and earns:
            earn_ref = earns[value % len(earns)]
            points_reverse_earn(workspace=workspace, earn_ref=earn_ref, ref=f"rev:{ref}",
                                amount=None if extra == "all" else 1 + value)
            assert 0 <= points_balance(customer=customer) <= before
        elif op == "expire":
            lots = list(PointsLot.objects.filter(customer=customer).order_by("pk"))
            if lots:
                PointsLot.objects.filter(pk=lots[value % len(lots)].pk).update(
                    expires_at=timezone.now() - timedelta(seconds=1))
                points_expire_due(workspace=workspace)
                assert points_balance(customer=customer) <= before
        elif op == "adjust":
            if value < 0 and -value > before:
                with pytest.raises(SiyuError):
                    points_adjust(workspace=workspace, customer=customer, amount=value, reason_text="测试",
                                  actor=admin, ref=ref)
            else:
                points_adjust(workspace=workspace, customer=customer, amount=value, reason_text="测试", actor=admin,
                              ref=ref)
                assert points_balance(customer=customer) == before + value
        elif op == "replay" and (earns or spends):
            # Replaying any earlier call changes nothing.
            tx = PointsTransaction.objects.filter(customer=customer, kind__in=["earn", "burn"]).order_by("pk")
            rows = list(tx)
            if rows:
                row = rows[value % len(rows)]
                if row.kind == "earn":
                    points_earn(workspace=workspace, customer=customer, amount=row.amount, reason=row.reason,
                                ref=row.ref)
                else:
                    points_spend(workspace=workspace, customer=customer, amount=-row.amount, ref=row.ref,
                                 reason=row.reason)
                assert points_balance(customer=customer) == before
        account = PointsAccount.objects.filter(customer=customer).first()
        if account is not None:
            assert account.balance >= 0
            assert account.balance == _customer_entries_total(customer)
    assert ledger_check(workspace=workspace) == []
    per_tx = (PointsTransaction.objects.filter(customer=customer)
              .annotate(total=Sum("entries__amount"), n=Count("entries")))
    assert all(tx.total == 0 and tx.n >= 2 for tx in per_tx)
