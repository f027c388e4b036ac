"""Flash sales: own stock, per-customer limit, reserve/release/commit exactly once; windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.commerce.promotions.models import FlashReservation, FlashSale
from siyu.commerce.promotions.services import flash_commit, flash_release, flash_reserve, flash_sold
from siyu.core.errors import SiyuError
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.promotions_fixtures import make_customer, make_flash_sale

pytestmark = pytest.mark.django_db


@pytest.fixture
def sale(workspace):
    _, skus = make_product(workspace, price_fen=9900, stock=100)
    return make_flash_sale(workspace, skus[0], price_fen=990, stock=3, per_customer_limit=2)


def left(sale) -> int:
    return FlashSale.objects.get(pk=sale.pk).stock_left


def test_reserve_release_commit(workspace, sale):
    alice, bob = make_customer(workspace), make_customer(workspace)
    flash_reserve(workspace=workspace, customer=alice, sale_id=sale.id, qty=2, ref="A1")
    again = flash_reserve(workspace=workspace, customer=alice, sale_id=sale.id, qty=2, ref="A1")  # replay
    assert again.ref == "A1" and left(sale) == 1
    with pytest.raises(SiyuError) as error:
        flash_reserve(workspace=workspace, customer=alice, sale_id=sale.id, qty=1, ref="A2")
    assert error.value.code == "flash_limit_reached"
    with pytest.raises(SiyuError) as error:
        flash_reserve(workspace=workspace, customer=bob, sale_id=sale.id, qty=2, ref="B1")
    assert error.value.code == "flash_sold_out"
    assert left(sale) == 1 and not FlashReservation.objects.filter(ref="B1").exists()
    assert flash_release(ref="A1") is True
    assert flash_release(ref="A1") is False
    assert left(sale) == 3
    assert flash_commit(ref="A1") is False  # released units cannot be sold
    flash_reserve(workspace=workspace, customer=bob, sale_id=sale.id, qty=2, ref="B1")
    assert flash_commit(ref="B1") is True and flash_commit(ref="B1") is False
    assert flash_release(ref="B1") is False  # sold units stay sold
    assert left(sale) == 1 and flash_sold(sale=sale) == 2
    # Alice's limit was freed by the release.
    flash_reserve(workspace=workspace, customer=alice, sale_id=sale.id, qty=1, ref="A3")
    assert left(sale) == 0


def test_windows_foreign_sales_and_bad_input(workspace, other_workspace, sale):
    customer = make_customer(workspace)
    FlashSale.objects.filter(pk=sale.pk).update(starts_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(SiyuError) as error:
        flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=1, ref="X1")
    assert error.value.code == "flash_sale_not_started"
    FlashSale.objects.filter(pk=sale.pk).update(starts_at=timezone.now() - timedelta(hours=2),
                                                ends_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(SiyuError) as error:
        flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=1, ref="X1")
    assert error.value.code == "flash_sale_ended"
    with pytest.raises(SiyuError) as error:
        flash_reserve(workspace=other_workspace, customer=make_customer(other_workspace), sale_id=sale.id, qty=1,
                      ref="X2")
    assert error.value.status == 404
    for qty, ref in ((0, "X3"), (-1, "X3"), ("1", "X3"), (1, ""), (1, "x" * 65)):
        with pytest.raises(SiyuError):
            flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=qty, ref=ref)
    assert not FlashReservation.objects.exists() and left(sale) == 3


def test_same_ref_for_a_different_purchase_is_a_conflict(workspace, sale):
    customer = make_customer(workspace)
    flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=1, ref="R1")
    with pytest.raises(SiyuError) as error:
        flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=2, ref="R1")
    assert error.value.code == "ref_conflict"
    assert left(sale) == 2
