"""Concurrent buyers on a real PostgreSQL: the conditional UPDATE never oversells, and a reservation is
released or returned exactly once however many callers race for it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from siyu.commerce.catalog.inventory import (
    stock_commit,
    stock_ledger_totals,
    stock_release,
    stock_reserve,
    stock_return,
)
from siyu.commerce.catalog.models import Sku, StockMovement, StockReservation
from siyu.core.errors import SiyuError
from tests.commerce.catalog_fixtures import make_product

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(number):
        try:
            barrier.wait(timeout=30)
            results[number] = work(number)
        except SiyuError as error:
            results[number] = error.code
        except Exception as error:
            results[number] = repr(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_sixty_buyers_for_ten_units_reserve_exactly_ten(workspace):
    _product, (red, blue) = make_product(workspace, stock=10)

    def buy(number):
        # Half the buyers also take a blue unit (plenty of blue): the all-or-nothing path is exercised too.
        lines = [(red.pk, 1)] + ([(blue.pk, 1)] if number % 2 else [])
        stock_reserve(workspace=workspace, lines=lines, ref=f"buyer-{number}", ttl_seconds=600)
        return "reserved"

    results = run_together(60, buy)
    assert results.count("reserved") == 10, results
    assert results.count("out_of_stock") == 50, results
    red.refresh_from_db()
    blue.refresh_from_db()
    assert (red.stock_on_hand, red.stock_reserved) == (10, 10)
    winners = set(StockReservation.objects.filter(sku=red).values_list("ref", flat=True))
    assert len(winners) == 10
    # Losers left nothing behind: blue is held only by winners who asked for it.
    assert set(StockReservation.objects.filter(sku=blue).values_list("ref", flat=True)) <= winners
    assert blue.stock_reserved == StockReservation.objects.filter(sku=blue).count()
    assert (red.stock_on_hand, red.stock_reserved) == stock_ledger_totals(sku=red)
    assert (blue.stock_on_hand, blue.stock_reserved) == stock_ledger_totals(sku=blue)


def test_racing_releases_and_returns_happen_exactly_once(workspace):
    _product, (red, _blue) = make_product(workspace, stock=10)
    stock_reserve(workspace=workspace, lines=[(red.pk, 4)], ref="race-release", ttl_seconds=600)
    released = run_together(20, lambda _n: stock_release(ref="race-release"))
    assert released.count(True) == 1 and released.count(False) == 19, released

    stock_reserve(workspace=workspace, lines=[(red.pk, 3)], ref="race-return", ttl_seconds=600)
    stock_commit(ref="race-return")
    returned = run_together(20, lambda _n: stock_return(ref="race-return"))
    assert returned.count(True) == 1 and returned.count(False) == 19, returned
    red.refresh_from_db()
    assert (red.stock_on_hand, red.stock_reserved) == (10, 0)
    assert StockMovement.objects.filter(sku=red, reason="release").count() == 1
    assert StockMovement.objects.filter(sku=red, reason="return").count() == 1
    assert (red.stock_on_hand, red.stock_reserved) == stock_ledger_totals(sku=red)


def test_commit_racing_release_one_wins(workspace):
    _product, (red, _blue) = make_product(workspace, stock=5)
    stock_reserve(workspace=workspace, lines=[(red.pk, 2)], ref="pay-or-cancel", ttl_seconds=600)

    def act(number):
        return ("commit", stock_commit(ref="pay-or-cancel")) if number % 2 else \
            ("release", stock_release(ref="pay-or-cancel"))

    results = run_together(10, act)
    winners = [r for r in results if isinstance(r, tuple) and r[1] is True]
    assert len(winners) == 1, results
    red = Sku.objects.get(pk=red.pk)
    if winners[0][0] == "commit":
        assert (red.stock_on_hand, red.stock_reserved) == (3, 0)
    else:
        assert (red.stock_on_hand, red.stock_reserved) == (5, 0)
    assert (red.stock_on_hand, red.stock_reserved) == stock_ledger_totals(sku=red)
