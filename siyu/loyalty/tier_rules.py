"""Member tiers as plain values: the tier a growth value or spend qualifies for. No ORM (tested in microseconds).

Defaults: the seeds name the tiers (普通/银卡/金卡/钻石, benefits 折扣/优先/专属/特权) but give no numbers, so these
are product defaults a workspace can change in the console: growth value = 1 per yuan paid (refunds subtract)
over the last 365 days; 银卡 from 1,000, 金卡 from 5,000 (about SPEC O3's "monthly spend ≥ 500" high-value
customer), 钻石 from 20,000; on spend the same thresholds in yuan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

TIER_CODES = ("normal", "silver", "gold", "diamond")
TIER_NAMES = {"normal": ("普通", "Regular"), "silver": ("银卡", "Silver"), "gold": ("金卡", "Gold"),
              "diamond": ("钻石", "Diamond")}


@dataclass(frozen=True)
class Tier:
    code: str
    rank: int
    growth_threshold: int
    spend_threshold_fen: int
    discount_percent: int  # percent off the price (5 → 95折)
    free_shipping: bool
    priority_service: bool
    exclusive_items: bool

    @property
    def name_zh(self) -> str:
        return TIER_NAMES[self.code][0]

    @property
    def name_en(self) -> str:
        return TIER_NAMES[self.code][1]

    def threshold(self, basis: str) -> int:
        return self.spend_threshold_fen if basis == "spend" else self.growth_threshold

    def discounted_fen(self, price_fen: int) -> int:
        """The tier discount applied to one price, rounded down to the fen (never below zero)."""
        return max(0, int(price_fen) * (100 - self.discount_percent) // 100)


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("normal", 0, 0, 0, 0, False, False, False),
    Tier("silver", 1, 1_000, 100_000, 2, False, False, False),
    Tier("gold", 2, 5_000, 500_000, 5, True, False, False),
    Tier("diamond", 3, 20_000, 2_000_000, 10, True, True, True),
)


def tiers_merge(overrides: dict[str, dict]) -> tuple[Tier, ...]:
    """The default tiers with a workspace's configured fields laid over them (normal always starts at 0)."""
    merged = []
    for tier in DEFAULT_TIERS:
        fields = {key: value for key, value in overrides.get(tier.code, {}).items()
                  if key in {"growth_threshold", "spend_threshold_fen", "discount_percent", "free_shipping",
                             "priority_service", "exclusive_items"}}
        tier = replace(tier, **fields)
        if tier.code == "normal":
            tier = replace(tier, growth_threshold=0, spend_threshold_fen=0)
        merged.append(tier)
    return tuple(merged)


def thresholds_problems(tiers: Sequence[Tier]) -> list[str]:
    """Thresholds must rise strictly with rank on both bases; discounts 0–90%."""
    problems = []
    ordered = sorted(tiers, key=lambda tier: tier.rank)
    for lower, higher in pairwise(ordered):
        if higher.growth_threshold <= lower.growth_threshold:
            problems.append(f"growth:{higher.code}")
        if higher.spend_threshold_fen <= lower.spend_threshold_fen:
            problems.append(f"spend:{higher.code}")
    for tier in ordered:
        if not 0 <= tier.discount_percent <= 90:
            problems.append(f"discount:{tier.code}")
    return problems


def tier_for_value(tiers: Sequence[Tier], *, basis: str, growth: int, spend_fen: int) -> Tier:
    """The highest tier whose threshold the value reaches (a negative value counts as zero)."""
    value = max(0, spend_fen if basis == "spend" else growth)
    best = min(tiers, key=lambda tier: tier.rank)
    for tier in sorted(tiers, key=lambda tier: tier.rank):
        if value >= tier.threshold(basis):
            best = tier
    return best


@dataclass(frozen=True)
class NextTier:
    tier: Tier
    threshold: int  # on the basis (growth value, or fen of spend)
    gap: int  # how much is still missing, same unit
    percent: int  # progress from the current tier's threshold to the next one's, 0–100


def next_tier(tiers: Sequence[Tier], *, current: Tier, basis: str, value: int) -> NextTier | None:
    """The tier above ``current`` and the progress of ``value`` towards it (None at the top tier)."""
    following = next((tier for tier in tiers if tier.rank > current.rank), None)
    if following is None:
        return None
    low, high = current.threshold(basis), following.threshold(basis)
    return NextTier(tier=following, threshold=high, gap=max(0, high - value),
                    percent=max(0, min(100, (value - low) * 100 // max(1, high - low))))
