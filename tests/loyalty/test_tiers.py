"""Member tiers: pure thresholds, configuration, growth from orders, upgrades at once, downgrades periodically."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.core.models import AuditLog
from siyu.loyalty.models import CustomerTier, GrowthEntry, TierChange, TierLevel
from siyu.loyalty.tier_rules import DEFAULT_TIERS, thresholds_problems, tier_for_value, tiers_merge
from siyu.loyalty.tiers import (
    TIER_CHANGED,
    growth_of,
    growth_record,
    tier_config_update,
    tier_evaluate,
    tier_levels,
    tier_of,
    tiers_reevaluate,
)
from tests.loyalty.factories import make_customer


def test_defaults_rise_and_name_the_four_tiers():
    assert [tier.code for tier in DEFAULT_TIERS] == ["normal", "silver", "gold", "diamond"]
    assert [tier.name_zh for tier in DEFAULT_TIERS] == ["普通", "银卡", "金卡", "钻石"]
    assert thresholds_problems(DEFAULT_TIERS) == []
    assert tier_for_value(DEFAULT_TIERS, basis="growth", growth=999, spend_fen=0).code == "normal"
    assert tier_for_value(DEFAULT_TIERS, basis="growth", growth=1000, spend_fen=0).code == "silver"
    assert tier_for_value(DEFAULT_TIERS, basis="spend", growth=10**9, spend_fen=499_999).code == "silver"
    assert tier_for_value(DEFAULT_TIERS, basis="growth", growth=-50, spend_fen=0).code == "normal"
    assert DEFAULT_TIERS[2].discounted_fen(9999) == 9499  # 95折, rounded down to the fen


@given(st.integers(min_value=-10**6, max_value=10**8), st.integers(min_value=-10**6, max_value=10**8))
def test_more_value_never_means_a_lower_tier(a, b):
    low, high = sorted((a, b))
    for basis in ("growth", "spend"):
        assert (tier_for_value(DEFAULT_TIERS, basis=basis, growth=low, spend_fen=low).rank
                <= tier_for_value(DEFAULT_TIERS, basis=basis, growth=high, spend_fen=high).rank)


def test_merge_keeps_normal_at_zero():
    tiers = tiers_merge({"normal": {"growth_threshold": 50}, "gold": {"discount_percent": 8}})
    assert tiers[0].growth_threshold == 0 and tiers[2].discount_percent == 8


@pytest.mark.django_db
def test_tier_config_validation_and_audit(workspace, admin_membership):
    with pytest.raises(SiyuError) as error:
        tier_config_update(workspace=workspace, levels={"gold": {"growth_threshold": 500}})  # below silver
    assert error.value.code == "tier_thresholds_invalid"
    with pytest.raises(SiyuError) as error:
        tier_config_update(workspace=workspace, levels={"platinum": {"growth_threshold": 1}})
    assert error.value.code == "tier_code_invalid"
    with pytest.raises(SiyuError) as error:
        tier_config_update(workspace=workspace, levels={"silver": {"discount_percent": "abc"}})
    assert error.value.code == "tier_value_invalid"
    with pytest.raises(SiyuError):
        tier_config_update(workspace=workspace, levels={}, basis="vibes")
    assert not TierLevel.objects.exists()
    tiers = tier_config_update(workspace=workspace, levels={"silver": {"growth_threshold": 200, "free_shipping": True}},
                               basis="spend", window_days=180, actor=admin_membership.user)
    assert tiers[1].growth_threshold == 200 and tiers[1].free_shipping
    assert tier_levels(workspace=workspace)[1].growth_threshold == 200
    assert AuditLog.objects.filter(action="tier_config_update").count() == 1


@pytest.mark.django_db
def test_upgrade_at_once_downgrade_on_reevaluation(workspace):
    customer = make_customer(workspace)
    seen = []

    def listener(**payload):
        seen.append(payload)

    domain_events.subscribe(TIER_CHANGED, listener)
    try:
        assert tier_of(customer=customer).code == "normal"
        long_ago = timezone.now() - timedelta(days=300)
        growth_record(workspace=workspace, customer=customer, source="order_paid", ref="order:1",
                      spend_fen=600_000, at=long_ago)
        assert growth_record(workspace=workspace, customer=customer, source="order_paid", ref="order:1",
                             spend_fen=600_000, at=long_ago) is False
        assert growth_of(customer=customer) == (6000, 600_000)
        change = tier_evaluate(customer=customer)
        assert (change.from_code, change.to_code, change.direction) == ("normal", "gold", "up")
        tier = tier_of(customer=customer)
        assert tier.code == "gold" and tier.free_shipping and tier.discount_percent == 5
        assert tier_evaluate(customer=customer) is None  # nothing changed
        # 100 days later the order left the 365-day window: the periodic run downgrades.
        later = timezone.now() + timedelta(days=100)
        assert tiers_reevaluate(workspace=workspace, now=later) == {"evaluated": 1, "up": 0, "down": 1}
        assert tier_of(customer=customer).code == "normal"
        assert list(TierChange.objects.order_by("pk").values_list("to_code", "direction")) == [
            ("gold", "up"), ("normal", "down")]
    finally:
        domain_events.unsubscribe(TIER_CHANGED, listener)


@pytest.mark.django_db
def test_no_downgrade_when_not_allowed_and_refunds_subtract(workspace):
    customer = make_customer(workspace)
    growth_record(workspace=workspace, customer=customer, source="order_paid", ref="order:1", spend_fen=150_000)
    tier_evaluate(customer=customer)
    assert tier_of(customer=customer).code == "silver"
    growth_record(workspace=workspace, customer=customer, source="order_refunded", ref="refund:1", spend_fen=-100_000)
    assert growth_of(customer=customer) == (500, 50_000)
    assert tier_evaluate(customer=customer, allow_downgrade=False) is None
    assert tier_of(customer=customer).code == "silver"
    assert tier_evaluate(customer=customer).to_code == "normal"
    assert CustomerTier.objects.get(customer=customer).code == "normal"
    assert GrowthEntry.objects.count() == 2


@pytest.mark.django_db
def test_tier_on_spend_basis(workspace):
    tier_config_update(workspace=workspace, levels={}, basis="spend")
    customer = make_customer(workspace)
    growth_record(workspace=workspace, customer=customer, source="order_paid", ref="o", spend_fen=2_000_000,
                  growth=0)
    assert tier_evaluate(customer=customer).to_code == "diamond"
    assert tier_of(customer=customer).exclusive_items
