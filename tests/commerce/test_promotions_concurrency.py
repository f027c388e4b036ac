"""PostgreSQL concurrency: flash-sale stock and coupon limits hold with many threads racing."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from siyu.commerce.promotions.models import Coupon, FlashReservation, FlashSale
from siyu.commerce.promotions.services import coupon_claim, flash_release, flash_reserve
from siyu.core.errors import SiyuError
from siyu.core.services import workspace_create
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.promotions_fixtures import make_coupon_template, make_customer, make_flash_sale

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(count: int, work) -> Counter:
    """Run ``work(i)`` in ``count`` threads released together; count outcomes (ok / error code)."""
    barrier = threading.Barrier(count)
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
            outcome = "ok"
        except SiyuError as error:
            outcome = error.code
        except Exception as error:  # counted: the test fails on any crash
            outcome = f"crash:{type(error).__name__}:{error}"
        finally:
            connection.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_200_buyers_for_20_flash_units_never_oversell():
    workspace = workspace_create(slug="flash-race", name="秒杀")
    _, skus = make_product(workspace, stock=500)
    sale = make_flash_sale(workspace, skus[0], price_fen=100, stock=20, per_customer_limit=1)
    customers = [make_customer(workspace) for _ in range(200)]
    outcomes = race(200, lambda i: flash_reserve(workspace=workspace, customer=customers[i], sale_id=sale.id,
                                                 qty=1, ref=f"F{i}"))
    assert outcomes == Counter({"ok": 20, "flash_sold_out": 180})
    sale.refresh_from_db()
    assert sale.stock_left == 0 and FlashReservation.objects.filter(sale=sale).count() == 20


def test_one_customer_racing_never_exceeds_the_limit_and_releases_interleave():
    workspace = workspace_create(slug="flash-limit", name="限购")
    _, skus = make_product(workspace, stock=500)
    sale = make_flash_sale(workspace, skus[0], price_fen=100, stock=10, per_customer_limit=2)
    greedy = make_customer(workspace)
    outcomes = race(20, lambda i: flash_reserve(workspace=workspace, customer=greedy, sale_id=sale.id, qty=1,
                                                ref=f"G{i}"))
    assert outcomes == Counter({"ok": 2, "flash_limit_reached": 18})
    # Releases racing with new buyers: units come back exactly once and the stock stays exact.
    buyers = [make_customer(workspace) for _ in range(34)]
    held = list(FlashReservation.objects.filter(sale=sale).values_list("ref", flat=True))

    def work(i: int) -> None:
        if i < 4:
            flash_release(ref=held[i % 2])
        else:
            flash_reserve(workspace=workspace, customer=buyers[i], sale_id=sale.id, qty=1, ref=f"B{i}")

    outcomes = race(34, work)
    sale.refresh_from_db()
    holding = FlashReservation.objects.filter(sale=sale, state="held").count()
    assert not [o for o in outcomes if o.startswith("crash")]
    # Whatever the interleaving: every unit is either held or left, never both, never lost.
    assert holding + sale.stock_left == 10
    assert holding == 2 + outcomes["ok"] - 4 - 2  # greedy's 2 + new buyers − the 2 released
    assert FlashReservation.objects.filter(sale=sale, state="released").count() == 2


def test_coupon_claims_under_concurrency_respect_total_and_per_customer_limit():
    workspace = workspace_create(slug="coupon-race", name="抢券")
    template = make_coupon_template(workspace, total_quantity=15, per_customer_limit=2)
    customers = [make_customer(workspace) for _ in range(10)]
    outcomes = race(40, lambda i: coupon_claim(workspace=workspace, customer=customers[i % 10],
                                               template_id=template.id))
    assert outcomes["ok"] == 15
    assert set(outcomes) <= {"ok", "coupon_sold_out", "coupon_limit_reached"}
    template.refresh_from_db()
    assert template.issued_count == 15 == Coupon.objects.filter(template=template).count()
    per_customer = Counter(Coupon.objects.filter(template=template).values_list("customer_id", flat=True))
    assert max(per_customer.values()) <= 2
    assert FlashSale.objects.count() == 0
