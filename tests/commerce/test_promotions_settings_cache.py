"""The workspace's pricing settings are cached per process under a token that every change replaces."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from siyu.commerce.promotions import settings_cache
from siyu.commerce.promotions.campaigns import promotion_end
from siyu.commerce.promotions.models import PromotionsVersion, ShippingSettings
from siyu.commerce.promotions.services import quote
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.promotions_fixtures import make_customer, make_full_reduction, make_limited_discount

pytestmark = pytest.mark.django_db


@pytest.fixture
def cart(workspace):
    _, skus = make_product(workspace, title="大衣", price_fen=20000)
    return [(skus[0].pk, 1)], make_customer(workspace)


def _discount(workspace, cart) -> int:
    lines, customer = cart
    return quote(workspace=workspace, customer=customer, lines=lines).discount_fen


def test_a_repeated_quote_reads_the_settings_once(workspace, cart):
    make_full_reduction(workspace, tiers=((10000, 1000),))
    assert _discount(workspace, cart) == 1000
    with CaptureQueriesContext(connection) as again:
        assert _discount(workspace, cart) == 1000
    tables = " ".join(query["sql"] for query in again.captured_queries)
    assert "commerce_promotions_fullreductionrule" not in tables
    assert "commerce_promotions_limitedtimediscount" not in tables
    assert "commerce_promotions_shippingsettings" not in tables


def test_every_change_is_seen_by_the_next_quote(workspace, cart, admin_membership):
    rule = make_full_reduction(workspace, tiers=((10000, 1000),))
    assert _discount(workspace, cart) == 1000
    rule.tiers = [[10000, 2000]]
    rule.save()  # saved from the console: the signal replaces the token
    assert _discount(workspace, cart) == 2000
    assert promotion_end(workspace=workspace, actor=admin_membership.user, kind="full_reduction", promotion_id=rule.pk)
    assert _discount(workspace, cart) == 0  # ended by a bulk UPDATE: bumped explicitly
    discount = make_limited_discount(workspace, percent_off=10, sku_ids=[cart[0][0][0]])
    assert quote(workspace=workspace, customer=cart[1], lines=cart[0]).lines[0].item_price_fen == 18000
    discount.delete()
    assert quote(workspace=workspace, customer=cart[1], lines=cart[0]).lines[0].item_price_fen == 20000
    ShippingSettings.objects.create(workspace=workspace, shipping_fee_fen=1200, free_shipping_threshold_fen=99_999_00)
    assert quote(workspace=workspace, customer=cart[1], lines=cart[0]).shipping_fen == 1200


def test_a_change_committed_by_another_process_is_picked_up(workspace, cart):
    make_full_reduction(workspace, tiers=((10000, 1000),))
    assert _discount(workspace, cart) == 1000
    # Another process changed the rules (no signal here): its transaction wrote a new token.
    from siyu.commerce.promotions.models import FullReductionRule

    FullReductionRule.objects.filter(workspace=workspace).update(tiers=[[10000, 3000]])
    assert _discount(workspace, cart) == 1000  # this process has not been told
    PromotionsVersion.objects.filter(workspace=workspace).update(token="from-another-process")
    assert _discount(workspace, cart) == 3000
    assert settings_cache.pricing_settings(workspace=workspace).token == "from-another-process"


def test_member_tiers_come_from_the_cache_and_every_tier_change_is_seen(workspace, cart, admin_membership):
    from django.utils import timezone

    from siyu.loyalty.models import CustomerTier
    from siyu.loyalty.tiers import tier_config_update

    lines, customer = cart
    assert quote(workspace=workspace, customer=customer, lines=lines).lines[0].price_kind == "sale"
    now = timezone.now()
    row = CustomerTier.objects.create(workspace=workspace, customer=customer, code="gold", since=now, evaluated_at=now)
    with CaptureQueriesContext(connection) as again:  # the customer's own tier is read on every quote
        first = quote(workspace=workspace, customer=customer, lines=lines).lines[0]
    assert (first.item_price_fen, first.price_kind) == (19000, "member_price")  # 金卡 default: 5 % off
    tables = " ".join(query["sql"] for query in again.captured_queries)
    assert "loyalty_tierlevel" not in tables and "loyalty_customertier" in tables
    assert len(again.captured_queries) == 2  # the SKUs, then the token with the customer's tier in one statement
    tier_config_update(workspace=workspace, actor=admin_membership.user, levels={"gold": {"discount_percent": 20}})
    assert quote(workspace=workspace, customer=customer, lines=lines).lines[0].item_price_fen == 16000
    row.code = "silver"
    row.save()
    assert quote(workspace=workspace, customer=customer, lines=lines).lines[0].item_price_fen == 19600  # 银卡 2 %
    row.delete()
    assert quote(workspace=workspace, customer=customer, lines=lines).lines[0].price_kind == "sale"
    assert quote(workspace=workspace, customer=None, lines=lines).lines[0].price_kind == "sale"


def test_a_deleted_workspace_takes_its_cached_settings_rows_along(workspace, cart):
    from siyu.core.models import Workspace
    from siyu.loyalty.models import TierLevel

    make_full_reduction(workspace, tiers=((10000, 1000),))
    TierLevel.objects.create(workspace=workspace, code="gold", growth_threshold=5000, spend_threshold_fen=500000,
                             discount_percent=5)
    assert _discount(workspace, cart) == 1000
    Workspace.objects.filter(pk=workspace.pk).delete()  # the rows' delete signals never re-create a token
    assert not PromotionsVersion.objects.filter(workspace_id=workspace.pk).exists()
