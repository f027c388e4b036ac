"""The layering presets as data (pure Python, no Django): seed 002's five tiers, seed 003's six classes and
the lifecycle stages 新 → 活跃 → 沉默 → 流失, with their default thresholds, the recommended strategy per layer,
and the rules that classify a customer's score.

A preset is an ordered list of rules; the first rule whose condition holds names the layer (the last rule
always holds, so every scored customer gets exactly one layer). A condition is a small expression tree that
is evaluated here in Python (``classify``) and compiled to one SQL ``CASE`` (``case_sql``) for the set-based
job: both read the same tree, and tests check they agree on random scores.

Inputs (``ScoreInputs``): days are whole days since the moment (floor), None when it never happened; money
is fen; windows end at the scoring moment ("in 30 days" = after now − 30 days).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from siyu.core.errors import SiyuError

RFM5, RFM6, LIFECYCLE = "rfm5", "rfm6", "lifecycle"
KINDS = (RFM5, RFM6, LIFECYCLE)

# Columns of a score a rule may read (the CustomerScore fields of the same names).
INPUT_FIELDS = ("frequency", "recency_days", "monetary_fen", "spend_30d_fen", "spend_365d_fen", "orders_365d",
                "coupon_orders_365d", "interactions_7d", "views_30d", "interaction_idle_days", "age_days")


@dataclass(frozen=True)
class ScoreInputs:
    frequency: int = 0
    recency_days: int | None = None
    monetary_fen: int = 0
    spend_30d_fen: int = 0
    spend_365d_fen: int = 0
    orders_365d: int = 0
    coupon_orders_365d: int = 0
    interactions_7d: int = 0
    views_30d: int = 0
    interaction_idle_days: int | None = None
    age_days: int = 0


# --- conditions ------------------------------------------------------------------------------------------
# A comparison's right side is a threshold key (looked up in the preset's thresholds) or a literal int.

_OPERATORS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
              "<": lambda a, b: a < b, "=": lambda a, b: a == b}


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    threshold: str | int

    def value(self, thresholds: Mapping[str, int]) -> int:
        return self.threshold if isinstance(self.threshold, int) else int(thresholds[self.threshold])

    def holds(self, inputs: ScoreInputs, thresholds: Mapping[str, int]) -> bool:
        left = getattr(inputs, self.field)
        return left is not None and _OPERATORS[self.op](left, self.value(thresholds))

    def sql(self, alias: str, thresholds: Mapping[str, int]) -> tuple[str, list]:
        return f"{alias}.{self.field} {self.op} %s", [self.value(thresholds)]


@dataclass(frozen=True)
class IsNull:
    field: str

    def holds(self, inputs: ScoreInputs, thresholds: Mapping[str, int]) -> bool:
        return getattr(inputs, self.field) is None

    def sql(self, alias: str, thresholds: Mapping[str, int]) -> tuple[str, list]:
        return f"{alias}.{self.field} IS NULL", []


@dataclass(frozen=True)
class ShareAtLeast:
    """part / whole ≥ percent / 100 with whole > 0, in integers (no rounding anywhere)."""

    part: str
    whole: str
    percent: str

    def holds(self, inputs: ScoreInputs, thresholds: Mapping[str, int]) -> bool:
        whole = getattr(inputs, self.whole)
        return whole > 0 and getattr(inputs, self.part) * 100 >= int(thresholds[self.percent]) * whole

    def sql(self, alias: str, thresholds: Mapping[str, int]) -> tuple[str, list]:
        return (f"({alias}.{self.whole} > 0 AND {alias}.{self.part} * 100 >= %s * {alias}.{self.whole})",
                [int(thresholds[self.percent])])


@dataclass(frozen=True)
class All:
    parts: tuple

    def holds(self, inputs, thresholds) -> bool:
        return all(part.holds(inputs, thresholds) for part in self.parts)

    def sql(self, alias, thresholds):
        return _join(" AND ", self.parts, alias, thresholds)


@dataclass(frozen=True)
class Any_:
    parts: tuple

    def holds(self, inputs, thresholds) -> bool:
        return any(part.holds(inputs, thresholds) for part in self.parts)

    def sql(self, alias, thresholds):
        return _join(" OR ", self.parts, alias, thresholds)


@dataclass(frozen=True)
class Always:
    def holds(self, inputs, thresholds) -> bool:
        return True

    def sql(self, alias, thresholds):
        return "1 = 1", []


def _join(glue: str, parts, alias, thresholds) -> tuple[str, list]:
    texts, params = [], []
    for part in parts:
        text, more = part.sql(alias, thresholds)
        texts.append(f"({text})")
        params.extend(more)
    return glue.join(texts), params


def all_of(*parts):
    return All(tuple(parts))


def any_of(*parts):
    return Any_(tuple(parts))


# --- presets ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Threshold:
    key: str
    label_zh: str
    label_en: str
    unit: str  # fen (edited in yuan) | days | count | percent
    default: int
    minimum: int = 0
    maximum: int = 10**12


@dataclass(frozen=True)
class Layer:
    code: str
    name_zh: str
    name_en: str
    rule_zh: str  # who is in it, as the operator reads it
    rule_en: str
    strategy_zh: str  # the recommended strategy (the seed's 运营策略, and its 转化目标 when given)
    strategy_en: str


@dataclass(frozen=True)
class Rule:
    code: str
    condition: Any


@dataclass(frozen=True)
class Preset:
    kind: str
    name_zh: str
    name_en: str
    source: str
    layers: tuple[Layer, ...]
    thresholds: tuple[Threshold, ...]
    rules: tuple[Rule, ...]
    checks: tuple = field(default=())  # (lower key, upper key, zh, en): lower must stay below upper

    def defaults(self) -> dict[str, int]:
        return {item.key: item.default for item in self.thresholds}

    def layer(self, code: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.code == code), None)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(layer.code for layer in self.layers)


R, F = "recency_days", "frequency"

RFM5_PRESET = Preset(
    kind=RFM5, name_zh="五层用户分层（种子 002）", name_en="Five tiers (seed 002)", source="seed 002",
    layers=(
        Layer("high_active", "高价值活跃用户", "High-value active",
              "近 30 天消费 ≥ 500 元，且近 7 天互动 ≥ 3 次", "Spent ≥ ¥500 in 30 days and ≥ 3 interactions in 7 days",
              "专属客服、新品内测资格；目标：客单价提升 30%",
              "Dedicated service, early access to new products; goal: +30% order value"),
        Layer("potential", "潜在高价值用户", "Potential high-value",
              "近 30 天消费 ≥ 200 元且浏览频繁（近 30 天浏览商品 ≥ 5 次）；以及其余仍在消费、非薅羊毛的客户",
              "Spent ≥ ¥200 in 30 days with frequent browsing (≥ 5 product views in 30 days); and the other "
              "customers still buying without living on coupons",
              "组合优惠推送、限时折扣；目标：转化率提升 15%", "Bundle offers, limited-time discounts; goal: +15% conversion"),
        Layer("silent", "沉默用户", "Silent",
              "3 个月（90 天）未消费，且这段时间互动 < 1 次（注册满 90 天）",
              "No purchase for 3 months (90 days) and no interaction in that time (registered ≥ 90 days ago)",
              "唤醒礼包、怀旧营销；目标：复购率恢复至 8%", "Wake-up gift pack, nostalgia campaigns; goal: repurchase back to 8%"),
        Layer("new", "新用户", "New",
              "注册 ≤ 7 天，未完成首单", "Registered ≤ 7 days ago, no first order yet",
              "新人优惠券、开箱教程；目标：首购转化率 40%+", "Welcome coupon, unboxing tutorial; goal: 40%+ first-order conversion"),
        Layer("low_value", "低价值用户", "Low-value",
              "近一年消费 < 200 元，或高频薅羊毛（近一年 ≥ 2 单且 ≥ 50% 的订单用了优惠）",
              "Spent < ¥200 in a year, or a coupon hunter (≥ 2 orders in a year, ≥ 50% of them discounted)",
              "积分兑换、限时清退；目标：边际成本降低 50%", "Points exchange, limited clearance; goal: −50% marginal cost"),
    ),
    thresholds=(
        Threshold("high_spend_30d_fen", "高价值：近 30 天消费 ≥（元）", "High value: spend in 30 days ≥ (¥)", "fen", 50000),
        Threshold("high_interactions_7d", "高价值：近 7 天互动 ≥（次）", "High value: interactions in 7 days ≥", "count", 3),
        Threshold("potential_spend_30d_fen", "潜在高价值：近 30 天消费 ≥（元）", "Potential: spend in 30 days ≥ (¥)",
                  "fen", 20000),
        Threshold("potential_views_30d", "潜在高价值：近 30 天浏览商品 ≥（次）", "Potential: product views in 30 days ≥",
                  "count", 5),
        Threshold("silent_days", "沉默：未消费且无互动 ≥（天）", "Silent: no purchase and no interaction for ≥ (days)",
                  "days", 90, 1, 3650),
        Threshold("new_days", "新用户：注册 ≤（天）", "New: registered ≤ (days)", "days", 7, 0, 365),
        Threshold("low_spend_365d_fen", "低价值：近一年消费 <（元）", "Low value: spend in a year < (¥)", "fen", 20000),
        Threshold("coupon_min_orders", "薅羊毛：近一年优惠订单 ≥（单）", "Coupon hunter: discounted orders in a year ≥",
                  "count", 2, 1, 10**6),
        Threshold("coupon_share_percent", "薅羊毛：优惠订单占比 ≥（%）", "Coupon hunter: share of discounted orders ≥ (%)",
                  "percent", 50, 1, 100),
    ),
    rules=(
        Rule("new", all_of(Compare(F, "=", 0), Compare("age_days", "<=", "new_days"))),
        Rule("high_active", all_of(Compare("spend_30d_fen", ">=", "high_spend_30d_fen"),
                                   Compare("interactions_7d", ">=", "high_interactions_7d"))),
        Rule("potential", all_of(Compare("spend_30d_fen", ">=", "potential_spend_30d_fen"),
                                 Compare("views_30d", ">=", "potential_views_30d"))),
        Rule("silent", all_of(Compare("age_days", ">=", "silent_days"),
                              any_of(IsNull(R), Compare(R, ">=", "silent_days")),
                              any_of(IsNull("interaction_idle_days"),
                                     Compare("interaction_idle_days", ">=", "silent_days")))),
        Rule("low_value", any_of(Compare("spend_365d_fen", "<", "low_spend_365d_fen"),
                                 all_of(Compare("coupon_orders_365d", ">=", "coupon_min_orders"),
                                        ShareAtLeast("coupon_orders_365d", "orders_365d", "coupon_share_percent")))),
        # Seed 002 has no "ordinary" tier: whoever still buys (≥ ¥200 a year, within 90 days) without living
        # on coupons is the base to develop.
        Rule("potential", Always()),
    ),
    checks=(("potential_spend_30d_fen", "high_spend_30d_fen", "潜在高价值的消费门槛必须低于高价值门槛",
             "The potential spend threshold must be below the high-value one"),),
)

RFM6_PRESET = Preset(
    kind=RFM6, name_zh="六类 RFM 分层（种子 003）", name_en="Six RFM classes (seed 003)", source="seed 003",
    layers=(
        Layer("important_value", "重要价值用户", "Important value",
              "高频、高额、最近购买", "Frequent, high spend, bought recently",
              "VIP 服务、专属客服、新品优先", "VIP service, dedicated staff, first access to new products"),
        Layer("important_keep", "重要保持用户", "Important to keep",
              "高频、高额、较久未购", "Frequent, high spend, not bought for a while",
              "激活召回、专属优惠、关怀服务", "Re-activation, exclusive offers, care calls"),
        Layer("important_develop", "重要发展用户", "Important to develop",
              "低频、高额、最近购买", "Infrequent, high spend, bought recently",
              "增加互动、提升频次、推荐适配商品", "More interaction, higher frequency, matching recommendations"),
        Layer("general_value", "一般价值用户", "General value",
              "中频、中额（其余有复购的客户）", "Medium frequency and spend (the other repeat buyers)",
              "常规营销、会员权益、促销活动", "Regular marketing, member benefits, promotions"),
        Layer("new", "新用户", "New",
              "首次购买或未购买（注册不久）", "First purchase or none yet (registered recently)",
              "新人福利、引导首单、建立信任", "Welcome benefits, guide to the first order, build trust"),
        Layer("dormant", "沉睡用户", "Dormant",
              "长期未购买", "Not bought for a long time",
              "唤醒券、情感召回、问题调研", "Wake-up coupon, emotional recall, survey"),
    ),
    thresholds=(
        Threshold("recent_days", "最近购买：距上次购买 <（天）", "Bought recently: last order < (days) ago", "days", 90, 1,
                  3650),
        Threshold("dormant_days", "沉睡：距上次购买 ≥（天）", "Dormant: last order ≥ (days) ago", "days", 180, 2, 3650),
        Threshold("high_frequency", "高频：累计订单 ≥（单）", "Frequent: paid orders ≥", "count", 3, 2, 10**6),
        Threshold("high_monetary_fen", "高额：累计消费 ≥（元）", "High spend: total spend ≥ (¥)", "fen", 100000, 1),
    ),
    rules=(
        Rule("new", all_of(Compare(F, "=", 0), Compare("age_days", "<", "dormant_days"))),
        Rule("dormant", any_of(Compare(F, "=", 0), Compare(R, ">=", "dormant_days"))),
        Rule("important_value", all_of(Compare(F, ">=", "high_frequency"), Compare("monetary_fen", ">=", "high_monetary_fen"),
                                       Compare(R, "<", "recent_days"))),
        Rule("important_keep", all_of(Compare(F, ">=", "high_frequency"),
                                      Compare("monetary_fen", ">=", "high_monetary_fen"))),
        Rule("important_develop", all_of(Compare("monetary_fen", ">=", "high_monetary_fen"), Compare(R, "<", "recent_days"))),
        Rule("new", Compare(F, "=", 1)),
        Rule("general_value", Always()),
    ),
    checks=(("recent_days", "dormant_days", "“最近购买”的天数必须小于“沉睡”的天数",
             "“Bought recently” must be fewer days than “dormant”"),),
)

LIFECYCLE_PRESET = Preset(
    kind=LIFECYCLE, name_zh="生命周期", name_en="Lifecycle", source="SPEC O5",
    layers=(
        Layer("new", "新客", "New", "注册不久、尚未下单", "Registered recently, no order yet",
              "新人礼包、引导首单", "Welcome pack, guide to the first order"),
        Layer("active", "活跃", "Active", "近期有购买或互动", "Bought or interacted recently",
              "会员权益、社群互动、复购推荐", "Member benefits, community, repurchase recommendations"),
        Layer("silent", "沉默", "Silent", "一段时间没有购买也没有互动", "No purchase and no interaction for a while",
              "唤醒礼包、怀旧营销", "Wake-up gift, nostalgia campaigns"),
        Layer("churned", "流失", "Churned", "很久没有购买也没有互动", "No purchase and no interaction for a long time",
              "召回券、问题调研，必要时停止打扰", "Win-back coupon, survey; stop contacting if it fails"),
    ),
    thresholds=(
        Threshold("new_days", "新客：注册 ≤（天）且未下单", "New: registered ≤ (days) ago, no order", "days", 7, 0, 365),
        Threshold("active_days", "活跃：最近购买或互动 <（天）", "Active: last purchase or interaction < (days) ago",
                  "days", 30, 1, 3650),
        Threshold("churn_days", "流失：无购买无互动 ≥（天）", "Churned: no purchase and no interaction for ≥ (days)",
                  "days", 180, 2, 3650),
    ),
    rules=(
        Rule("new", all_of(Compare(F, "=", 0), Compare("age_days", "<=", "new_days"))),
        Rule("active", any_of(Compare(R, "<", "active_days"), Compare("interaction_idle_days", "<", "active_days"))),
        Rule("churned", all_of(Compare("age_days", ">=", "churn_days"),
                               any_of(IsNull(R), Compare(R, ">=", "churn_days")),
                               any_of(IsNull("interaction_idle_days"),
                                      Compare("interaction_idle_days", ">=", "churn_days")))),
        Rule("silent", Always()),
    ),
    checks=(("active_days", "churn_days", "“活跃”的天数必须小于“流失”的天数", "“Active” must be fewer days than “churned”"),),
)

PRESETS: dict[str, Preset] = {RFM5: RFM5_PRESET, RFM6: RFM6_PRESET, LIFECYCLE: LIFECYCLE_PRESET}


def classify(preset: Preset, inputs: ScoreInputs, thresholds: Mapping[str, int] | None = None) -> str:
    """The layer code of ``inputs`` under ``preset`` (first rule that holds)."""
    values = {**preset.defaults(), **(thresholds or {})}
    for rule in preset.rules:
        if rule.condition.holds(inputs, values):
            return rule.code
    raise AssertionError("a preset's last rule always holds")  # pragma: no cover


def case_sql(preset: Preset, thresholds: Mapping[str, int] | None = None, *, alias: str = "s") -> tuple[str, list]:
    """The same classification as one SQL CASE expression over the score columns of ``alias``."""
    values = {**preset.defaults(), **(thresholds or {})}
    parts, params = ["CASE"], []
    for rule in preset.rules:
        text, more = rule.condition.sql(alias, values)
        parts.append(f"WHEN {text} THEN %s")
        params.extend([*more, rule.code])
    parts.append("END")
    return " ".join(parts), params


def thresholds_validate(kind: str, raw: Mapping[str, Any]) -> dict[str, int]:
    """Whole, in-range thresholds for ``kind`` from ``raw`` (missing keys keep their defaults), or a
    ``SiyuError`` naming the first bad one. Money is fen here (the console converts from yuan)."""
    preset = PRESETS.get(kind)
    if preset is None:
        raise SiyuError("rfm_preset_unknown", "未知的分层方案", "Unknown layering preset")
    values = preset.defaults()
    for item in preset.thresholds:
        if item.key not in raw:
            continue
        value = raw[item.key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SiyuError("rfm_threshold_invalid", f"“{item.label_zh}”必须是整数",
                            f"“{item.label_en}” must be a whole number", details={"key": item.key})
        if not item.minimum <= value <= item.maximum:
            raise SiyuError("rfm_threshold_out_of_range",
                            f"“{item.label_zh}”必须在 {_shown(item, item.minimum)} 到 {_shown(item, item.maximum)} 之间",
                            f"“{item.label_en}” must be between {_shown(item, item.minimum)} and "
                            f"{_shown(item, item.maximum)}", details={"key": item.key})
        values[item.key] = value
    unknown = sorted(set(raw) - set(values))
    if unknown:
        raise SiyuError("rfm_threshold_unknown", f"未知的阈值：{unknown[0]}", f"Unknown threshold: {unknown[0]}",
                        details={"key": unknown[0]})
    for lower, upper, message_zh, message_en in preset.checks:
        if values[lower] >= values[upper]:
            raise SiyuError("rfm_threshold_order", message_zh, message_en, details={"key": lower})
    return values


def _shown(item: Threshold, value: int) -> str:
    return f"{value / 100:g}" if item.unit == "fen" else str(value)
