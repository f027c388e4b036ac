"""The presets' rules at their threshold boundaries, and threshold validation (pure Python, no database)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from siyu.core.errors import SiyuError
from siyu.engagement.rfm.presets import (
    LIFECYCLE_PRESET,
    PRESETS,
    RFM5_PRESET,
    RFM6_PRESET,
    ScoreInputs,
    classify,
    thresholds_validate,
)

# A regular customer: registered long ago, bought recently, no coupon habit, quiet this week.
REGULAR = ScoreInputs(frequency=4, recency_days=10, monetary_fen=80000, spend_30d_fen=10000, spend_365d_fen=80000,
                      orders_365d=4, coupon_orders_365d=0, interactions_7d=0, views_30d=0, interaction_idle_days=10,
                      age_days=400)


def rfm5(inputs: ScoreInputs, **thresholds) -> str:
    return classify(RFM5_PRESET, inputs, thresholds)


def test_every_rule_names_a_layer_of_its_preset_and_every_layer_is_reachable():
    for preset in PRESETS.values():
        assert {rule.code for rule in preset.rules} == set(preset.codes)
        assert all(layer.strategy_zh and layer.strategy_en for layer in preset.layers)


def test_rfm5_high_value_active_at_500_yuan_and_3_interactions():
    at = replace(REGULAR, spend_30d_fen=50000, interactions_7d=3)
    assert rfm5(at) == "high_active"
    assert rfm5(replace(at, spend_30d_fen=49999)) == "potential"  # falls to the base of buyers
    assert rfm5(replace(at, interactions_7d=2)) == "potential"


def test_rfm5_potential_at_200_yuan_with_5_views():
    at = replace(REGULAR, spend_30d_fen=20000, spend_365d_fen=20000, views_30d=5)
    assert rfm5(at) == "potential"
    # Below ¥200 in the month and the year: low value.
    assert rfm5(replace(at, spend_30d_fen=19999, spend_365d_fen=19999)) == "low_value"


def test_rfm5_silent_after_90_days_without_purchase_or_interaction():
    at = replace(REGULAR, recency_days=90, interaction_idle_days=90, spend_30d_fen=0, spend_365d_fen=80000)
    assert rfm5(at) == "silent"
    assert rfm5(replace(at, recency_days=89)) == "potential"
    assert rfm5(replace(at, interaction_idle_days=89)) == "potential"  # one interaction in the window
    assert rfm5(replace(at, recency_days=None, interaction_idle_days=None)) == "silent"  # never did anything
    assert rfm5(at, silent_days=91) == "potential"
    # Registered less than 90 days ago: not silent yet, whatever it did.
    assert rfm5(replace(at, age_days=89, recency_days=None, interaction_idle_days=None, spend_365d_fen=0)) == "low_value"


def test_rfm5_new_within_7_days_and_no_first_order():
    fresh = ScoreInputs(age_days=7)
    assert rfm5(fresh) == "new"
    assert rfm5(replace(fresh, age_days=8, interaction_idle_days=1)) == "low_value"
    assert rfm5(replace(fresh, frequency=1, recency_days=0, spend_30d_fen=100, spend_365d_fen=100,
                        orders_365d=1)) == "low_value"


def test_rfm5_low_value_coupon_hunter_at_2_orders_and_50_percent():
    hunter = replace(REGULAR, orders_365d=4, coupon_orders_365d=2)
    assert rfm5(hunter) == "low_value"
    assert rfm5(replace(hunter, coupon_orders_365d=1, orders_365d=2)) == "potential"  # below 2 discounted orders
    assert rfm5(replace(hunter, orders_365d=5)) == "potential"  # 2 of 5 = 40%
    assert rfm5(replace(REGULAR, spend_365d_fen=19999)) == "low_value"


def rfm6(inputs: ScoreInputs, **thresholds) -> str:
    return classify(RFM6_PRESET, inputs, thresholds)


def test_rfm6_classes_at_their_boundaries():
    value = replace(REGULAR, frequency=3, monetary_fen=100000, recency_days=89)
    assert rfm6(value) == "important_value"
    assert rfm6(replace(value, recency_days=90)) == "important_keep"
    assert rfm6(replace(value, recency_days=179)) == "important_keep"
    assert rfm6(replace(value, recency_days=180)) == "dormant"
    assert rfm6(replace(value, frequency=2)) == "important_develop"
    assert rfm6(replace(value, frequency=2, recency_days=90)) == "general_value"
    assert rfm6(replace(value, monetary_fen=99999)) == "general_value"
    assert rfm6(replace(value, frequency=1, monetary_fen=5000)) == "new"  # first purchase
    assert rfm6(ScoreInputs(age_days=179)) == "new"  # no purchase yet
    assert rfm6(ScoreInputs(age_days=180)) == "dormant"  # never bought, long ago
    assert rfm6(value, high_monetary_fen=100001) == "general_value"


def lifecycle(inputs: ScoreInputs, **thresholds) -> str:
    return classify(LIFECYCLE_PRESET, inputs, thresholds)


def test_lifecycle_stages_and_their_rules():
    assert lifecycle(ScoreInputs(age_days=7)) == "new"
    assert lifecycle(ScoreInputs(age_days=8, interaction_idle_days=29)) == "active"
    assert lifecycle(ScoreInputs(age_days=8, interaction_idle_days=30)) == "silent"
    assert lifecycle(ScoreInputs(age_days=200, frequency=1, recency_days=29)) == "active"
    assert lifecycle(ScoreInputs(age_days=200, frequency=1, recency_days=179, interaction_idle_days=200)) == "silent"
    assert lifecycle(ScoreInputs(age_days=200, frequency=1, recency_days=180, interaction_idle_days=180)) == "churned"
    assert lifecycle(ScoreInputs(age_days=200)) == "churned"  # never bought nor interacted
    # A first order ends 新 at once.
    assert lifecycle(ScoreInputs(age_days=1, frequency=1, recency_days=0)) == "active"
    # Configurable: a longer active window keeps the customer active.
    assert lifecycle(ScoreInputs(age_days=8, interaction_idle_days=30), active_days=45) == "active"


@pytest.mark.parametrize(("kind", "raw", "code"), [
    ("rfm5", {"high_spend_30d_fen": "500"}, "rfm_threshold_invalid"),
    ("rfm5", {"high_spend_30d_fen": 1.5}, "rfm_threshold_invalid"),
    ("rfm5", {"high_interactions_7d": True}, "rfm_threshold_invalid"),
    ("rfm5", {"high_spend_30d_fen": -1}, "rfm_threshold_out_of_range"),
    ("rfm5", {"coupon_share_percent": 101}, "rfm_threshold_out_of_range"),
    ("rfm5", {"potential_spend_30d_fen": 60000}, "rfm_threshold_order"),
    ("rfm5", {"nonsense": 1}, "rfm_threshold_unknown"),
    ("rfm6", {"recent_days": 200}, "rfm_threshold_order"),
    ("lifecycle", {"active_days": 0}, "rfm_threshold_out_of_range"),
    ("lifecycle", {"active_days": 180}, "rfm_threshold_order"),
    ("loyalty", {}, "rfm_preset_unknown"),
])
def test_bad_thresholds_are_refused_with_a_code_and_both_languages(kind, raw, code):
    with pytest.raises(SiyuError) as caught:
        thresholds_validate(kind, raw)
    assert caught.value.code == code
    assert caught.value.message_zh and caught.value.message_en and caught.value.status == 400


def test_valid_thresholds_keep_defaults_for_missing_keys():
    values = thresholds_validate("rfm6", {"high_frequency": 5})
    assert values == {**RFM6_PRESET.defaults(), "high_frequency": 5}
