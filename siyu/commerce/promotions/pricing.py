"""The one pricing engine (SPEC X2): every price Siyu shows or charges comes from ``price(...)``.

Pure Python, no Django, no database: the services gather what is active for a customer
(``siyu.commerce.promotions.services.quote``) and hand it here as plain values. Money is integer
fen throughout; nothing is ever rounded up in the customer's disfavour or created out of thin air.

Stacking rules, applied in this order:

1. **Item price.** A line's unit price is the lowest of its sale price (SKU price), its member price
   for the customer's tier and its limited-time price — only one of them, never a discount on a
   discount. A flash-sale (秒杀) line is priced at the flash price, full stop (the member price does
   not apply to it).
2. **Flash-sale lines take no order-level promotion** except points: they are outside the scope of
   every 满减 rule and coupon.
3. **满减 (full reduction).** Rules do not stack with one another: for each rule the highest tier whose
   threshold its eligible amount (lines in its scope, at item prices) reaches gives a reduction; the
   rule with the largest reduction applies (ties: lowest rule id). A reduction never exceeds the
   eligible amount.
4. **Coupons.** At most one non-stackable coupon per order; coupons whose template says stackable
   combine with it and with each other. A coupon's threshold is measured on its scope's amount at item
   prices (before 满减, so adding a 满减 never loses you a coupon); its deduction comes from what remains
   of that scope after 满减 and earlier coupons. Order: fixed-amount coupons (满减券, 无门槛券, 新人券)
   before percentage coupons (折扣券), each group by coupon id. A 折扣券 takes ``percent_off`` % of the
   remaining scope, rounded down, never more than its cap. A coupon that does not apply (threshold not
   reached, nothing in scope) is reported in ``Quote.unapplied`` and deducts nothing.
5. **Points.** Last of the deductions, on the goods amount left after coupons (never on shipping):
   at most ``max_percent`` % of it (rounded down), at most what the customer asked for and holds;
   ``points_per_yuan`` points are worth one yuan and the customer is charged the fewest whole points
   that buy the deducted fen.
6. **Shipping.** The fee is waived when the customer's tier has free shipping or when the goods amount
   at item prices reaches the free-shipping threshold (measured before order-level discounts, so
   adding a discount never makes the order dearer). Shipping is never discounted otherwise.
7. **Caps.** Every deduction is capped by its own cap and by what it applies to, so no line and no
   total is ever negative.
8. **Allocation.** Every order-level deduction (满减, each coupon, points) is spread over the lines it
   applied to in proportion to what each line still owed, by largest remainder (ties: line order by
   key), so each deduction's line shares add up to it exactly; a later refund of one line uses its
   share.
9. **Explanation.** ``Quote.adjustments`` starts with the subtotal at sale prices, then one entry per
   discount (negative) and shipping (positive); the entries sum to ``total_fen`` exactly.

Inputs are order-independent: lines are processed by ``key``, offers by id, so any permutation of
the same lines and offers gives the same quote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siyu.core.errors import SiyuError

SCOPE_ALL = "all"
SCOPE_CATEGORIES = "categories"
SCOPE_PRODUCTS = "products"

COUPON_THRESHOLD = "threshold"  # 满减券: threshold + amount
COUPON_PERCENT = "percent"  # 折扣券: percent off, with a cap
COUPON_NO_THRESHOLD = "no_threshold"  # 无门槛券
COUPON_NEWCOMER = "newcomer"  # 新人券: amount (optionally a threshold), only for new customers
COUPON_KINDS = (COUPON_THRESHOLD, COUPON_PERCENT, COUPON_NO_THRESHOLD, COUPON_NEWCOMER)

SALE_LIMITED_TIME = "limited_time"
SALE_FLASH = "flash"

# Labels of the explanation entries (Chinese first; English for the English UI).
LABELS = {
    "subtotal": ("商品金额", "Goods at sale price"),
    "member_price": ("会员价优惠", "Member price"),
    "limited_time": ("限时折扣", "Limited-time discount"),
    "flash": ("秒杀优惠", "Flash sale"),
    "full_reduction": ("满减", "Spend-and-save"),
    "coupon": ("优惠券", "Coupon"),
    "points": ("积分抵扣", "Points"),
    "shipping": ("运费", "Shipping"),
}


def _invalid(what: str, zh: str, en: str) -> SiyuError:
    return SiyuError("pricing_invalid", zh, en, status=400, details={"field": what})


@dataclass(frozen=True)
class Scope:
    """Which lines an offer covers: all, some categories, or some products (ids)."""

    kind: str = SCOPE_ALL
    ids: frozenset[int] = frozenset()

    def covers(self, line: LineInput) -> bool:
        if self.kind == SCOPE_ALL:
            return True
        if self.kind == SCOPE_CATEGORIES:
            return line.category_id is not None and line.category_id in self.ids
        if self.kind == SCOPE_PRODUCTS:
            return line.product_id in self.ids
        return False


@dataclass(frozen=True)
class LineInput:
    key: str  # unique per quote (the services use the SKU id)
    sku_id: int
    product_id: int
    category_id: int | None
    quantity: int
    unit_price_fen: int  # the SKU's sale price
    member_price_fen: int | None = None  # for the customer's tier, if the SKU has one
    sale_price_fen: int | None = None  # limited-time or flash price
    sale_kind: str = ""  # "" | limited_time | flash
    sale_id: int | None = None  # the LimitedTimeDiscount / FlashSale id
    title: str = ""


@dataclass(frozen=True)
class FullReductionOffer:
    rule_id: int
    tiers: tuple[tuple[int, int], ...]  # (threshold_fen, amount_fen)
    scope: Scope = Scope()
    name: str = ""


@dataclass(frozen=True)
class CouponOffer:
    coupon_id: int
    kind: str
    threshold_fen: int = 0
    amount_fen: int = 0
    percent_off: int = 0  # 折扣券: 20 means 8折
    cap_fen: int = 0  # 折扣券: 0 = no cap
    scope: Scope = Scope()
    stackable: bool = False
    name: str = ""


@dataclass(frozen=True)
class PointsOffer:
    requested: int = 0  # points the customer wants to use
    available: int = 0  # points the customer holds
    points_per_yuan: int = 100
    max_percent: int = 50  # of the goods amount left after coupons


@dataclass(frozen=True)
class ShippingOffer:
    fee_fen: int = 0
    free_threshold_fen: int = 0  # 0 = no threshold
    tier_free_shipping: bool = False


@dataclass(frozen=True)
class Adjustment:
    kind: str  # subtotal | member_price | limited_time | flash | full_reduction | coupon | points | shipping
    label_zh: str
    label_en: str
    amount_fen: int  # signed: discounts negative
    ref_id: int | None = None  # rule or coupon id


@dataclass(frozen=True)
class Allocation:
    kind: str  # full_reduction | coupon | points
    ref_id: int | None
    amount_fen: int


@dataclass(frozen=True)
class QuoteLine:
    key: str
    sku_id: int
    product_id: int
    quantity: int
    unit_price_fen: int  # sale price
    item_price_fen: int  # after rule 1
    price_kind: str  # sale | member_price | limited_time | flash
    subtotal_fen: int  # unit_price × quantity
    item_discount_fen: int  # (unit − item price) × quantity
    allocations: tuple[Allocation, ...]
    payable_fen: int  # what this line costs after every deduction (shipping excluded)
    sale_id: int | None = None

    @property
    def order_discount_fen(self) -> int:
        return sum(a.amount_fen for a in self.allocations if a.kind != "points")

    @property
    def points_fen(self) -> int:
        return sum(a.amount_fen for a in self.allocations if a.kind == "points")


@dataclass(frozen=True)
class Quote:
    lines: tuple[QuoteLine, ...]
    adjustments: tuple[Adjustment, ...]
    subtotal_fen: int
    discount_fen: int  # item-level + 满减 + coupons (points are separate)
    points_used: int
    points_fen: int
    shipping_fen: int
    total_fen: int
    applied_coupon_ids: tuple[int, ...] = ()
    full_reduction_rule_id: int | None = None
    unapplied: tuple[tuple[int, str], ...] = field(default=())  # (coupon id, reason code)

    @property
    def flash_lines(self) -> tuple[QuoteLine, ...]:
        return tuple(line for line in self.lines if line.price_kind == "flash")

    @property
    def goods_fen(self) -> int:
        return self.subtotal_fen - self.discount_fen


def allocate(amount: int, bases: list[int]) -> list[int]:
    """Split ``amount`` over ``bases`` in proportion, by largest remainder; ties go to the earlier base.

    Shares add up to ``amount`` exactly and none exceeds its base (the caller keeps amount ≤ sum).
    """
    total = sum(bases)
    if amount <= 0 or total <= 0:
        return [0] * len(bases)
    if amount > total:
        raise ValueError("allocate: amount exceeds its base")
    shares = [amount * base // total for base in bases]
    leftover = amount - sum(shares)
    order = sorted(range(len(bases)), key=lambda i: (-(amount * bases[i] % total), i))
    for i in order[:leftover]:
        shares[i] += 1
    return shares


def _validate(lines, full_reductions, coupons, points, shipping) -> None:
    keys = [line.key for line in lines]
    if len(set(keys)) != len(keys):
        raise _invalid("lines", "同一商品规格重复出现", "The same line appears twice")
    for line in lines:
        if not isinstance(line.quantity, int) or line.quantity < 1:
            raise _invalid("quantity", "购买数量必须是正整数", "Quantity must be a positive whole number")
        for value in (line.unit_price_fen, line.member_price_fen, line.sale_price_fen):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise _invalid("price", "价格不能为负数", "A price cannot be negative")
        if line.sale_kind not in ("", SALE_LIMITED_TIME, SALE_FLASH):
            raise _invalid("sale_kind", "未知的活动类型", "Unknown sale kind")
        if line.sale_kind and line.sale_price_fen is None:
            raise _invalid("sale_price", "活动价缺失", "The sale price is missing")
    for rule in full_reductions:
        for threshold, amount in rule.tiers:
            if threshold < 0 or amount < 0:
                raise _invalid("tiers", "满减档位不能为负数", "Spend-and-save tiers cannot be negative")
    ids = [c.coupon_id for c in coupons]
    if len(set(ids)) != len(ids):
        raise _invalid("coupons", "同一张优惠券不能使用两次", "A coupon cannot be used twice")
    for coupon in coupons:
        if coupon.kind not in COUPON_KINDS:
            raise _invalid("coupon_kind", "未知的优惠券类型", "Unknown coupon kind")
        if min(coupon.threshold_fen, coupon.amount_fen, coupon.cap_fen) < 0 or not 0 <= coupon.percent_off <= 100:
            raise _invalid("coupon", "优惠券面额无效", "Invalid coupon value")
    if sum(1 for c in coupons if not c.stackable) > 1:
        raise SiyuError("coupon_not_stackable", "每笔订单只能使用一张不可叠加的优惠券",
                        "Only one non-stackable coupon per order", status=400)
    if min(points.requested, points.available) < 0 or points.points_per_yuan < 1 \
            or not 0 <= points.max_percent <= 100:
        raise _invalid("points", "积分数量无效", "Invalid points amount")
    if shipping.fee_fen < 0 or shipping.free_threshold_fen < 0:
        raise _invalid("shipping", "运费设置无效", "Invalid shipping settings")


def _item_price(line: LineInput) -> tuple[int, str]:
    if line.sale_kind == SALE_FLASH:
        return line.sale_price_fen, "flash"
    best, kind = line.unit_price_fen, "sale"
    if line.member_price_fen is not None and line.member_price_fen < best:
        best, kind = line.member_price_fen, "member_price"
    if line.sale_kind == SALE_LIMITED_TIME and line.sale_price_fen < best:
        best, kind = line.sale_price_fen, "limited_time"
    return best, kind


def _tier_reduction(rule: FullReductionOffer, eligible_fen: int) -> int:
    reached = [amount for threshold, amount in rule.tiers if eligible_fen >= threshold and eligible_fen > 0]
    return min(max(reached), eligible_fen) if reached else 0


def price(*, lines, full_reductions=(), coupons=(), points: PointsOffer | None = None,
          shipping: ShippingOffer | None = None) -> Quote:
    """Price ``lines`` with the offers; see the module docstring for the rules. Raises SiyuError on bad input."""
    points = points or PointsOffer()
    shipping = shipping or ShippingOffer()
    lines = sorted(lines, key=lambda line: line.key)
    full_reductions = sorted(full_reductions, key=lambda rule: rule.rule_id)
    coupons = sorted(coupons, key=lambda c: (c.kind == COUPON_PERCENT, c.coupon_id))
    _validate(lines, full_reductions, coupons, points, shipping)
    if not lines:
        raise _invalid("lines", "购物车是空的", "The cart is empty")

    priced = [_item_price(line) for line in lines]
    at_item = [price_fen * line.quantity for line, (price_fen, _) in zip(lines, priced, strict=True)]
    remaining = list(at_item)  # what each line still owes
    allocations: list[list[Allocation]] = [[] for _ in lines]
    adjustments: list[Adjustment] = []
    promotable = [line.sale_kind != SALE_FLASH for line in lines]

    subtotal = sum(line.unit_price_fen * line.quantity for line in lines)
    adjustments.append(Adjustment("subtotal", *LABELS["subtotal"], subtotal))
    item_discount = 0
    for kind in ("member_price", "limited_time", "flash"):
        amount = sum(line.unit_price_fen * line.quantity - at_item[i]
                     for i, line in enumerate(lines) if priced[i][1] == kind)
        if amount:
            adjustments.append(Adjustment(kind, *LABELS[kind], -amount))
            item_discount += amount

    def apply(kind: str, ref_id: int | None, amount: int, members: list[int], label: tuple[str, str]) -> None:
        shares = allocate(amount, [remaining[i] for i in members])
        for i, share in zip(members, shares, strict=True):
            remaining[i] -= share
            if share:
                allocations[i].append(Allocation(kind, ref_id, share))
        adjustments.append(Adjustment(kind, label[0], label[1], -amount, ref_id))

    # Rule 3: the single best 满减.
    best_rule, best_amount, best_members = None, 0, []
    for rule in full_reductions:
        members = [i for i, line in enumerate(lines) if promotable[i] and rule.scope.covers(line)]
        amount = _tier_reduction(rule, sum(at_item[i] for i in members))
        if amount > best_amount:
            best_rule, best_amount, best_members = rule, amount, members
    order_discount = 0
    if best_rule is not None:
        name = best_rule.name
        label = (f"满减 {name}".strip(), f"Spend-and-save {name}".strip())
        apply("full_reduction", best_rule.rule_id, best_amount, best_members, label)
        order_discount += best_amount

    # Rule 4: coupons.
    applied: list[int] = []
    unapplied: list[tuple[int, str]] = []
    for coupon in coupons:
        members = [i for i, line in enumerate(lines) if promotable[i] and coupon.scope.covers(line)]
        scope_at_item = sum(at_item[i] for i in members)
        base = sum(remaining[i] for i in members)
        if not members or scope_at_item == 0:
            unapplied.append((coupon.coupon_id, "coupon_scope_empty"))
            continue
        if scope_at_item < coupon.threshold_fen:
            unapplied.append((coupon.coupon_id, "coupon_threshold_not_met"))
            continue
        if coupon.kind == COUPON_PERCENT:
            amount = base * coupon.percent_off // 100
            if coupon.cap_fen:
                amount = min(amount, coupon.cap_fen)
        else:
            amount = coupon.amount_fen
        amount = min(amount, base)
        name = coupon.name
        apply("coupon", coupon.coupon_id, amount, members,
              (f"优惠券 {name}".strip(), f"Coupon {name}".strip()))
        applied.append(coupon.coupon_id)
        order_discount += amount

    # Rule 5: points.
    goods_left = sum(remaining)
    wanted = min(points.requested, points.available)
    points_fen = min(goods_left * points.max_percent // 100, wanted * 100 // points.points_per_yuan)
    points_used = -(-points_fen * points.points_per_yuan // 100) if points_fen else 0
    if points_fen:
        apply("points", None, points_fen, list(range(len(lines))), LABELS["points"])

    # Rule 6: shipping.
    goods_at_item = sum(at_item)
    free = shipping.tier_free_shipping or (
        shipping.free_threshold_fen > 0 and goods_at_item >= shipping.free_threshold_fen)
    shipping_fen = 0 if free else shipping.fee_fen
    if shipping_fen:
        adjustments.append(Adjustment("shipping", *LABELS["shipping"], shipping_fen))

    quote_lines = tuple(
        QuoteLine(
            key=line.key, sku_id=line.sku_id, product_id=line.product_id, quantity=line.quantity,
            unit_price_fen=line.unit_price_fen, item_price_fen=priced[i][0], price_kind=priced[i][1],
            subtotal_fen=line.unit_price_fen * line.quantity,
            item_discount_fen=line.unit_price_fen * line.quantity - at_item[i],
            allocations=tuple(allocations[i]), payable_fen=remaining[i],
            sale_id=line.sale_id if priced[i][1] in ("flash", "limited_time") else None,
        )
        for i, line in enumerate(lines)
    )
    total = sum(remaining) + shipping_fen
    return Quote(
        lines=quote_lines, adjustments=tuple(adjustments), subtotal_fen=subtotal,
        discount_fen=item_discount + order_discount, points_used=points_used, points_fen=points_fen,
        shipping_fen=shipping_fen, total_fen=total, applied_coupon_ids=tuple(sorted(applied)),
        full_reduction_rule_id=best_rule.rule_id if best_rule else None, unapplied=tuple(unapplied),
    )
