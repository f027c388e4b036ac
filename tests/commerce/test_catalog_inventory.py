"""Inventory: reservations all-or-nothing, exactly-once release/commit/return, expiry, adjustments, the
movement ledger always adding up to the stock (property test), low-stock events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.commerce.catalog import inventory
from siyu.commerce.catalog.inventory import (
    LOW_STOCK,
    reservations_expire,
    stock_adjust,
    stock_commit,
    stock_ledger_totals,
    stock_release,
    stock_reserve,
    stock_return,
)
from siyu.commerce.catalog.models import (
    MovementReason,
    ReservationState,
    Sku,
    StockMovement,
    StockReservation,
)
from siyu.commerce.catalog.tasks import catalog_reservations_expire
from siyu.core import domain_events
from siyu.core.errors import SiyuError
from tests.commerce.catalog_fixtures import make_product

pytestmark = pytest.mark.django_db


def stock(sku: Sku) -> tuple[int, int]:
    sku.refresh_from_db()
    return sku.stock_on_hand, sku.stock_reserved


def assert_ledger(sku: Sku) -> None:
    assert stock(sku) == stock_ledger_totals(sku=sku)


def test_reserve_commit_return_flow(workspace):
    _product, (red, blue) = make_product(workspace, stock=5)
    stock_reserve(workspace=workspace, lines=[(red.pk, 2), (blue.pk, 1), (red.pk, 1)], ref="A1", ttl_seconds=900)
    assert stock(red) == (5, 3) and stock(blue) == (5, 1)
    assert StockReservation.objects.get(ref="A1", sku=red).qty == 3  # repeated SKU lines are added up
    assert stock_commit(ref="A1") is True
    assert stock(red) == (2, 0) and stock(blue) == (4, 0)
    assert stock_commit(ref="A1") is False  # a repeated payment notification moves nothing
    assert stock_return(ref="A1", lines=[(red.pk, 1)]) is True
    assert stock(red) == (3, 0)
    assert stock_return(ref="A1") is True  # the rest: 2 red, 1 blue
    assert stock(red) == (5, 0) and stock(blue) == (5, 0)
    assert stock_return(ref="A1") is False  # exactly once
    assert set(StockReservation.objects.filter(ref="A1").values_list("state", flat=True)) == {"returned"}
    assert_ledger(red)
    assert_ledger(blue)


def test_reserve_is_all_or_nothing_and_names_the_sku(workspace):
    _product, (red, blue) = make_product(workspace, stock=3)
    stock_reserve(workspace=workspace, lines=[(blue.pk, 2)], ref="first", ttl_seconds=60)
    with pytest.raises(SiyuError) as caught:
        stock_reserve(workspace=workspace, lines=[(red.pk, 3), (blue.pk, 2)], ref="second", ttl_seconds=60)
    assert caught.value.code == "out_of_stock" and caught.value.status == 409
    assert caught.value.details["sku_id"] == blue.pk and "库存不足" in caught.value.message_zh
    assert stock(red) == (3, 0) and stock(blue) == (3, 2)  # red's hold was rolled back
    assert not StockReservation.objects.filter(ref="second").exists()
    assert_ledger(red)


@pytest.mark.parametrize("lines, code", [
    ([], "invalid_lines"), ([(1, 0)], "invalid_quantity"), ([(1, -2)], "invalid_quantity"),
    ([("1", 1)], "invalid_lines"), ([(1, 1.5)], "invalid_lines"), ([(1,)], "invalid_lines"),
    ([(1, True)], "invalid_lines")])
def test_reserve_refuses_bad_lines(workspace, lines, code):
    with pytest.raises(SiyuError) as caught:
        stock_reserve(workspace=workspace, lines=lines, ref="bad", ttl_seconds=60)
    assert caught.value.code == code
    assert not StockReservation.objects.exists()


def test_reserve_refuses_foreign_off_shelf_inactive_and_repeated_refs(workspace, other_workspace):
    _p, (foreign, _b) = make_product(other_workspace, stock=5)
    _p, (off, _b2) = make_product(workspace, stock=5, on_shelf=False)
    _p, (mine, inactive) = make_product(workspace, stock=5)
    Sku.objects.filter(pk=inactive.pk).update(active=False)
    for sku_id, code in ((foreign.pk, "sku_not_found"), (off.pk, "sku_unavailable"),
                         (inactive.pk, "sku_unavailable")):
        with pytest.raises(SiyuError) as caught:
            stock_reserve(workspace=workspace, lines=[(sku_id, 1)], ref="x", ttl_seconds=60)
        assert caught.value.code == code
    stock_reserve(workspace=workspace, lines=[(mine.pk, 1)], ref="x", ttl_seconds=60)
    with pytest.raises(SiyuError) as caught:
        stock_reserve(workspace=workspace, lines=[(mine.pk, 1)], ref="x", ttl_seconds=60)
    assert caught.value.code == "reservation_exists"
    assert stock(mine) == (5, 1) and stock(foreign) == (5, 0)
    for ttl in (0, -1, 10**9, "60"):
        with pytest.raises(SiyuError):
            stock_reserve(workspace=workspace, lines=[(mine.pk, 1)], ref="y", ttl_seconds=ttl)


def test_release_exactly_once_and_commit_after_release_refused(workspace):
    _product, (red, _blue) = make_product(workspace, stock=4)
    stock_reserve(workspace=workspace, lines=[(red.pk, 4)], ref="R", ttl_seconds=60)
    assert stock_release(ref="R") is True
    assert stock_release(ref="R") is False
    assert stock(red) == (4, 0)
    with pytest.raises(SiyuError) as caught:
        stock_commit(ref="R")
    assert caught.value.code == "reservation_not_held"
    assert stock_return(ref="R") is False  # never committed: nothing to return
    assert stock(red) == (4, 0)
    with pytest.raises(SiyuError) as caught:
        stock_commit(ref="unknown")
    assert caught.value.code == "reservation_not_found"
    assert_ledger(red)


def test_partial_returns_never_exceed_what_was_committed(workspace):
    _product, (red, blue) = make_product(workspace, stock=5)
    stock_reserve(workspace=workspace, lines=[(red.pk, 2)], ref="P", ttl_seconds=60)
    stock_commit(ref="P")
    assert stock_return(ref="P", lines=[(red.pk, 5)]) is True  # capped at the 2 committed
    assert stock(red) == (5, 0)
    assert stock_return(ref="P", lines=[(red.pk, 1)]) is False
    with pytest.raises(SiyuError) as caught:
        stock_return(ref="P", lines=[(blue.pk, 1)])
    assert caught.value.code == "reservation_not_found"
    assert_ledger(red)


def test_expiry_releases_only_overdue_held_reservations(workspace):
    _product, (red, blue) = make_product(workspace, stock=5)
    stock_reserve(workspace=workspace, lines=[(red.pk, 2)], ref="old", ttl_seconds=60)
    stock_reserve(workspace=workspace, lines=[(blue.pk, 1)], ref="fresh", ttl_seconds=3600)
    stock_reserve(workspace=workspace, lines=[(red.pk, 1)], ref="paid", ttl_seconds=60)
    stock_commit(ref="paid")
    later = timezone.now() + timedelta(minutes=5)
    assert reservations_expire(now=later) == 1
    assert reservations_expire(now=later) == 0
    assert StockReservation.objects.get(ref="old").state == ReservationState.RELEASED
    assert StockReservation.objects.get(ref="fresh").state == ReservationState.HELD
    assert stock(red) == (4, 0) and stock(blue) == (5, 1)
    assert StockMovement.objects.filter(sku=red, reason=MovementReason.EXPIRE).count() == 1
    assert stock_release(ref="old") is False  # the order's own cancel after expiry: no second release
    assert_ledger(red)


def test_expiry_periodic_task_runs_the_service(workspace):
    _product, (red, _blue) = make_product(workspace, stock=5)
    stock_reserve(workspace=workspace, lines=[(red.pk, 2)], ref="T", ttl_seconds=60)
    StockReservation.objects.filter(ref="T").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert catalog_reservations_expire.call_local() == 1
    assert stock(red) == (5, 0)


def test_adjust_needs_reason_and_never_goes_below_reserved(workspace, admin_membership):
    _product, (red, _blue) = make_product(workspace, stock=5)
    stock_reserve(workspace=workspace, lines=[(red.pk, 3)], ref="H", ttl_seconds=60)
    with pytest.raises(SiyuError) as caught:
        stock_adjust(sku=red, delta=-3, reason="盘亏", actor=admin_membership.user)
    assert caught.value.code == "stock_below_reserved"
    for delta, reason, code in ((0, "x", "invalid_delta"), (2, " ", "reason_required"), (True, "x", "invalid_delta"),
                                (1.5, "x", "invalid_delta")):
        with pytest.raises(SiyuError) as caught:
            stock_adjust(sku=red, delta=delta, reason=reason)
        assert caught.value.code == code
    assert stock(red) == (5, 3)
    stock_adjust(sku=red, delta=-2, reason="盘亏", actor=admin_membership.user)
    assert stock(red) == (3, 3)
    move = StockMovement.objects.filter(sku=red).first()
    assert (move.delta_on_hand, move.reason, move.note, move.actor) == (-2, "adjust", "盘亏", admin_membership.user)
    assert_ledger(red)


def test_database_refuses_impossible_stock(workspace):
    _product, (red, _blue) = make_product(workspace, stock=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Sku.objects.filter(pk=red.pk).update(stock_reserved=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        Sku.objects.filter(pk=red.pk).update(price_fen=-1)
    assert stock(red) == (2, 0)


def test_low_stock_event_published_once_when_crossing_threshold(workspace, django_capture_on_commit_callbacks):
    seen = []

    def handler(**payload):
        seen.append(payload)

    domain_events.subscribe(LOW_STOCK, handler)
    try:
        _product, (red, _blue) = make_product(workspace, stock=5, low_stock_threshold=2)
        with django_capture_on_commit_callbacks(execute=True):
            stock_reserve(workspace=workspace, lines=[(red.pk, 2)], ref="L1", ttl_seconds=60)  # 3 left
        assert seen == []
        with django_capture_on_commit_callbacks(execute=True):
            stock_reserve(workspace=workspace, lines=[(red.pk, 1)], ref="L2", ttl_seconds=60)  # 2 left: crossed
        with django_capture_on_commit_callbacks(execute=True):
            stock_reserve(workspace=workspace, lines=[(red.pk, 1)], ref="L3", ttl_seconds=60)  # 1 left: still low
        assert seen == [{"workspace_id": workspace.pk, "sku_id": red.pk, "product_id": red.product_id,
                         "available": 2, "threshold": 2}]
    finally:
        domain_events.unsubscribe(LOW_STOCK, handler)


def test_low_stock_event_not_delivered_when_reservation_rolls_back(workspace, django_capture_on_commit_callbacks):
    seen = []
    domain_events.subscribe(LOW_STOCK, seen.append)
    try:
        _product, (red, blue) = make_product(workspace, stock=1, low_stock_threshold=1)
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(SiyuError):
            stock_reserve(workspace=workspace, lines=[(red.pk, 1), (blue.pk, 2)], ref="RB", ttl_seconds=60)
        assert seen == []
    finally:
        domain_events.unsubscribe(LOW_STOCK, seen.append)


# --- property: any sequence of operations keeps stock == sum of movements, 0 ≤ reserved ≤ on hand ------------

operations = st.lists(st.tuples(st.sampled_from(["reserve", "release", "commit", "return", "return_part",
                                                 "adjust", "expire"]),
                                st.integers(min_value=0, max_value=5), st.integers(min_value=-6, max_value=6)),
                      max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_any_sequence_keeps_the_ledger_and_never_oversells(workspace, ops):
    _product, (sku, _other) = make_product(workspace, stock=4)
    refs: list[str] = []
    expected_committed = 0
    for number, (op, index, amount) in enumerate(ops):
        ref = refs[index % len(refs)] if refs else "none"
        try:
            if op == "reserve":
                new_ref = f"{sku.pk}-{number}"
                stock_reserve(workspace=workspace, lines=[(sku.pk, max(1, abs(amount)))], ref=new_ref,
                              ttl_seconds=60)
                refs.append(new_ref)
            elif op == "release":
                stock_release(ref=ref)
            elif op == "commit":
                stock_commit(ref=ref)
            elif op == "return":
                stock_return(ref=ref)
            elif op == "return_part":
                stock_return(ref=ref, lines=[(sku.pk, max(1, abs(amount)))])
            elif op == "adjust":
                stock_adjust(sku=sku, delta=amount, reason="盘点")
            else:
                reservations_expire(now=timezone.now() + timedelta(minutes=2))
        except SiyuError:
            pass  # refused operations must leave everything as it was: checked by the invariants below
        on_hand, reserved = stock(sku)
        assert 0 <= reserved <= on_hand
        assert (on_hand, reserved) == stock_ledger_totals(sku=sku)
        held = sum(StockReservation.objects.filter(sku=sku, state="held").values_list("qty", flat=True))
        assert reserved == held
        expected_committed = sum(r.qty - r.returned_qty for r in StockReservation.objects.filter(
            sku=sku, state__in=["committed", "returned"]))
        adjusted = sum(StockMovement.objects.filter(sku=sku, reason="adjust").values_list("delta_on_hand",
                                                                                         flat=True))
        assert on_hand == adjusted - expected_committed


def test_inventory_module_exports_the_addendum_interface():
    for name in ("stock_reserve", "stock_release", "stock_commit", "stock_return", "stock_adjust"):
        assert callable(getattr(inventory, name))
