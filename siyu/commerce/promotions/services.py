"""Promotions services: the quote (gather what applies, call the engine), coupons, flash-sale stock.

Every counter that must hold under concurrency (coupons issued per template and per customer, flash-sale
units left and per customer) moves only by one conditional UPDATE (``… WHERE counter + n <= limit``), so
two racing requests can never both take the last unit. State moves of coupons and flash reservations
are conditional UPDATEs keyed by ``ref`` (the order number): each happens exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from siyu.commerce.catalog.models import ProductStatus, Sku
from siyu.commerce.promotions import pricing, settings_cache
from siyu.commerce.promotions.models import (
    Coupon,
    CouponClaimTally,
    CouponKind,
    CouponState,
    CouponTemplate,
    FlashCustomerTally,
    FlashReservation,
    FlashReservationState,
    FlashSale,
    LimitedTimeDiscount,
    PromotionStatus,
    ShippingSettings,
)
from siyu.core.errors import SiyuError
from siyu.customers.models import Customer, Event

MAX_LINES = 50
MAX_QUANTITY = 999


# ------------------------------------------------------------------------------------------------ helpers


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _check_ref(ref) -> str:
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 64:
        raise SiyuError("invalid_ref", "单号无效", "The reference must be 1–64 characters")
    return ref


def _int(value, *, field: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SiyuError("invalid_input", f"{field} 必须是不小于 {minimum} 的整数",
                        f"{field} must be a whole number ≥ {minimum}", details={"field": field})
    return value


def _check_customer(workspace, customer) -> None:
    if customer is not None and customer.workspace_id != workspace.id:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)


def customer_tier(*, customer):
    """The customer's member tier (loyalty's ``tier_of``); everyone is 普通 when loyalty has no tiers yet."""
    from siyu.loyalty.tier_rules import DEFAULT_TIERS

    if customer is None:
        return DEFAULT_TIERS[0]
    try:
        from siyu.loyalty.tiers import tier_of
    except ImportError:
        return DEFAULT_TIERS[0]
    return tier_of(customer=customer)


def _points_balance(customer) -> int:
    from siyu.loyalty.points import points_balance

    return points_balance(customer=customer)


def _points_settings(workspace) -> tuple[int, int]:
    from siyu.loyalty.points import loyalty_settings

    settings = loyalty_settings(workspace=workspace)
    return settings.redeem_points_per_yuan or 100, settings.redeem_max_percent


def shipping_settings(*, workspace) -> ShippingSettings:
    return ShippingSettings.objects.filter(workspace=workspace).first() or ShippingSettings(workspace=workspace)


def _scope(kind: str, ids) -> pricing.Scope:
    return pricing.Scope(kind=kind, ids=frozenset(int(i) for i in ids or ()))


def merge_lines(lines) -> dict[int, int]:
    """Validate ``[(sku_id, qty), …]`` and add up repeated SKUs."""
    if not isinstance(lines, list | tuple) or not lines:
        raise SiyuError("invalid_lines", "购物车是空的", "The cart is empty")
    if len(lines) > MAX_LINES:
        raise SiyuError("invalid_lines", f"一次最多 {MAX_LINES} 种商品", f"At most {MAX_LINES} lines")
    merged: dict[int, int] = {}
    for line in lines:
        try:
            sku_id, qty = line
        except (TypeError, ValueError) as error:
            raise SiyuError("invalid_lines", "商品行格式错误", "Each line must be (sku_id, quantity)") from error
        _int(sku_id, field="sku_id", minimum=1)
        _int(qty, field="quantity", minimum=1)
        merged[sku_id] = merged.get(sku_id, 0) + qty
        if merged[sku_id] > MAX_QUANTITY:
            raise SiyuError("invalid_quantity", f"单个商品最多购买 {MAX_QUANTITY} 件",
                            f"At most {MAX_QUANTITY} of one item", details={"sku_id": sku_id})
    return merged


def _skus(workspace, sku_ids, known=None) -> dict[int, Sku]:
    """The SKUs (with their product) of the workspace, each active and on shelf; ``known``: rows the caller
    already read with their product (used when they cover every id, else read here)."""
    if known is not None and all(sku_id in known for sku_id in sku_ids):
        skus = {sku_id: known[sku_id] for sku_id in sku_ids if known[sku_id].workspace_id == workspace.id}
    else:
        skus = {sku.id: sku for sku in Sku.objects.filter(workspace=workspace, id__in=sku_ids)
                .select_related("product")}
    for sku_id in sku_ids:
        sku = skus.get(sku_id)
        if sku is None:
            raise SiyuError("sku_not_found", "商品不存在", "Product not found", status=404,
                            details={"sku_id": sku_id})
        if not sku.active or sku.product.status != ProductStatus.ON_SHELF:
            raise SiyuError("sku_unavailable", f"「{sku.product.title}」已下架", f"“{sku.product.title}” is off the shelf",
                            status=409, details={"sku_id": sku_id})
    return skus


def member_price_fen(*, sku: Sku, tier) -> int | None:
    """The SKU's member price for the tier: the catalog's own price for that tier, else the tier discount."""
    explicit = (sku.member_prices or {}).get(tier.code)
    if isinstance(explicit, int) and not isinstance(explicit, bool) and explicit >= 0:
        return explicit
    if getattr(tier, "discount_percent", 0):
        return tier.discounted_fen(sku.price_fen)
    return None


def _active(queryset, now):
    return queryset.filter(status=PromotionStatus.ACTIVE, starts_at__lte=now, ends_at__gt=now)


def limited_time_prices(*, workspace, skus, now: datetime, discounts=None) -> dict[int, tuple[int, int]]:
    """sku_id → (lowest limited-time price, discount id) for the SKUs some active discount covers
    (``discounts``: the active ones by id, when the caller has them)."""
    best: dict[int, tuple[int, int]] = {}
    if discounts is None:
        discounts = _active(LimitedTimeDiscount.objects.filter(workspace=workspace), now).order_by("id")
    for discount in discounts:
        sku_ids, product_ids = set(discount.sku_ids or ()), set(discount.product_ids or ())
        for sku in skus:
            if sku.id not in sku_ids and sku.product_id not in product_ids:
                continue
            if discount.price_fen is not None:
                price_fen = min(discount.price_fen, sku.price_fen)
            else:
                price_fen = sku.price_fen * (100 - discount.percent_off) // 100
            if sku.id not in best or price_fen < best[sku.id][0]:
                best[sku.id] = (price_fen, discount.id)
    return best


def _flash_sale(workspace, sale_id, now, sale: FlashSale | None = None) -> FlashSale:
    """The running sale ``sale_id`` of the workspace (``sale``: the row already read by the caller)."""
    if sale is None or sale.pk != sale_id or sale.workspace_id != workspace.id:
        sale = FlashSale.objects.filter(workspace=workspace, pk=sale_id).first() if isinstance(sale_id, int) else None
    if sale is None:
        raise SiyuError("flash_sale_not_found", "秒杀活动不存在", "Flash sale not found", status=404)
    if sale.status != PromotionStatus.ACTIVE or now >= sale.ends_at:
        raise SiyuError("flash_sale_ended", "秒杀活动已结束", "The flash sale has ended", status=409)
    if now < sale.starts_at:
        raise SiyuError("flash_sale_not_started", "秒杀活动尚未开始", "The flash sale has not started", status=409)
    return sale


def _coupon_offer(coupon: Coupon) -> pricing.CouponOffer:
    template = coupon.template
    return pricing.CouponOffer(
        coupon_id=coupon.id, kind=template.kind, threshold_fen=template.threshold_fen,
        amount_fen=template.amount_fen, percent_off=template.percent_off, cap_fen=template.cap_fen,
        scope=_scope(template.scope, template.scope_ids), stackable=template.stackable, name=template.name,
    )


def usable_coupons(*, workspace, customer, now: datetime | None = None):
    now = _now(now)
    return (Coupon.objects.filter(workspace=workspace, customer=customer, state=CouponState.AVAILABLE,
                                  starts_at__lte=now, expires_at__gt=now)
            .select_related("template").order_by("expires_at", "id"))


# ---------------------------------------------------------------------------------------------------- quote


@dataclass(frozen=True)
class PricingContext:
    """Everything active for one customer and cart, as engine inputs (shared by quote, 凑单 and best coupons)."""

    lines: tuple[pricing.LineInput, ...]
    full_reductions: tuple[pricing.FullReductionOffer, ...]
    shipping: pricing.ShippingOffer
    skus: dict[int, Sku]


def pricing_context(*, workspace, customer, lines, flash_sale_id=None, now: datetime | None = None,
                    flash_sale: FlashSale | None = None, skus: dict[int, Sku] | None = None) -> PricingContext:
    """``skus``: {id: Sku with its product} the caller already read (a product page's SKUs), so they are not
    read again; they are checked like the ones read here (this workspace's, active, on shelf)."""
    now = _now(now)
    _check_customer(workspace, customer)
    merged = merge_lines(lines)
    skus = _skus(workspace, list(merged), known=skus)
    cached, tier = settings_cache.pricing_settings_for(workspace=workspace, customer=customer)
    limited = limited_time_prices(workspace=workspace, skus=skus.values(), now=now, discounts=cached.limited_now(now))
    flash = None
    if flash_sale_id is not None:
        flash = _flash_sale(workspace, flash_sale_id, now, sale=flash_sale)
        if flash.sku_id not in merged:
            raise SiyuError("flash_sale_mismatch", "秒杀商品不在本次购买中", "The flash-sale item is not in the order")
        if merged[flash.sku_id] > flash.per_customer_limit:
            raise SiyuError("flash_limit_reached", f"秒杀商品每人限购 {flash.per_customer_limit} 件",
                            f"At most {flash.per_customer_limit} per customer in this flash sale", status=409)
    inputs = []
    for sku_id, qty in sorted(merged.items()):
        sku = skus[sku_id]
        sale_kind, sale_price, sale_id = "", None, None
        if flash is not None and flash.sku_id == sku_id:
            sale_kind, sale_price, sale_id = pricing.SALE_FLASH, flash.price_fen, flash.id
        elif sku_id in limited:
            sale_kind, (sale_price, sale_id) = pricing.SALE_LIMITED_TIME, limited[sku_id]
        inputs.append(pricing.LineInput(
            key=f"{sku_id:012d}", sku_id=sku_id, product_id=sku.product_id, category_id=sku.product.category_id,
            quantity=qty, unit_price_fen=sku.price_fen, member_price_fen=member_price_fen(sku=sku, tier=tier),
            sale_price_fen=sale_price, sale_kind=sale_kind, sale_id=sale_id, title=sku.product.title,
        ))
    rules = tuple(
        pricing.FullReductionOffer(rule_id=rule.id, tiers=tuple((int(t), int(a)) for t, a in rule.tiers),
                                   scope=_scope(rule.scope, rule.scope_ids), name=rule.name)
        for rule in cached.rules_now(now)
    )
    ship = cached.shipping
    shipping = pricing.ShippingOffer(fee_fen=ship.shipping_fee_fen, free_threshold_fen=ship.free_shipping_threshold_fen,
                                     tier_free_shipping=bool(getattr(tier, "free_shipping", False)))
    return PricingContext(lines=tuple(inputs), full_reductions=rules, shipping=shipping, skus=skus)


def quote(*, workspace, customer, lines, coupon_ids=(), points=0, flash_sale_id=None,
          now: datetime | None = None, skus: dict[int, Sku] | None = None) -> pricing.Quote:
    """Price a cart for a customer (None: a visitor) with everything active now; the one entry point for
    every price the store shows and every amount an order charges.

    Chosen coupons must be the customer's, usable now and applicable to this cart (else a clear error);
    points are capped by the balance and the workspace's deduction rules (``Quote.points_used`` says how
    many are actually used). ``skus``: rows the caller already read (see ``pricing_context``).
    """
    return checkout_quote(workspace=workspace, customer=customer, lines=lines, coupon_ids=coupon_ids, points=points,
                          flash_sale_id=flash_sale_id, now=now, skus=skus)[0]


def checkout_quote(*, workspace, customer, lines, coupon_ids=(), points=0, flash_sale_id=None,
                   now: datetime | None = None, flash_sale: FlashSale | None = None,
                   skus: dict[int, Sku] | None = None) -> tuple[pricing.Quote, PricingContext]:
    """``quote`` plus the context it was priced from (the SKUs read), for checkout; ``flash_sale``: the sale
    row the caller already read (saves reading it again)."""
    now = _now(now)
    _int(points, field="points")
    if not isinstance(coupon_ids, list | tuple | set | frozenset):
        raise SiyuError("invalid_input", "优惠券参数格式错误", "coupon_ids must be a list")
    coupon_ids = list(coupon_ids)
    for coupon_id in coupon_ids:
        _int(coupon_id, field="coupon_id", minimum=1)
    if customer is None and (coupon_ids or points):
        raise SiyuError("login_required", "请先登录", "Please sign in first", status=401)
    context = pricing_context(workspace=workspace, customer=customer, lines=lines, flash_sale_id=flash_sale_id,
                              now=now, flash_sale=flash_sale, skus=skus)
    coupons = []
    if coupon_ids:
        found = {c.id: c for c in usable_coupons(workspace=workspace, customer=customer, now=now)
                 .filter(id__in=coupon_ids)}
        missing = [cid for cid in coupon_ids if cid not in found]
        if missing:
            raise SiyuError("coupon_unavailable", "优惠券不可用（不存在、已使用或已过期）",
                            "The coupon cannot be used (unknown, used or expired)", details={"coupon_ids": missing})
        coupons = [_coupon_offer(found[cid]) for cid in dict.fromkeys(coupon_ids)]
    points_offer = pricing.PointsOffer()
    if points:
        per_yuan, max_percent = _points_settings(workspace)
        points_offer = pricing.PointsOffer(requested=points, available=_points_balance(customer),
                                           points_per_yuan=per_yuan, max_percent=max_percent)
    result = pricing.price(lines=context.lines, full_reductions=context.full_reductions, coupons=coupons,
                           points=points_offer, shipping=context.shipping)
    if result.unapplied:
        coupon_id, reason = result.unapplied[0]
        if reason == "coupon_threshold_not_met":
            raise SiyuError("coupon_threshold_not_met", "未达到优惠券使用门槛", "The order does not reach the coupon's "
                            "threshold", details={"coupon_id": coupon_id})
        raise SiyuError("coupon_not_applicable", "优惠券不适用于所选商品", "The coupon does not apply to these items",
                        details={"coupon_id": coupon_id})
    return result, context


def best_coupons(*, workspace, customer, lines, now: datetime | None = None) -> list[dict]:
    """The customer's usable coupons for this cart, each with what it would save on its own, best first;
    coupons that do not apply come last with the reason."""
    now = _now(now)
    if customer is None:
        return []
    context = pricing_context(workspace=workspace, customer=customer, lines=lines, now=now)
    base = pricing.price(lines=context.lines, full_reductions=context.full_reductions, shipping=context.shipping)
    out = []
    for coupon in usable_coupons(workspace=workspace, customer=customer, now=now):
        result = pricing.price(lines=context.lines, full_reductions=context.full_reductions,
                               coupons=[_coupon_offer(coupon)], shipping=context.shipping)
        reason = result.unapplied[0][1] if result.unapplied else ""
        out.append({"coupon_id": coupon.id, "name": coupon.template.name, "kind": coupon.template.kind,
                    "stackable": coupon.template.stackable, "expires_at": coupon.expires_at,
                    "saving_fen": base.total_fen - result.total_fen, "applicable": not reason, "reason": reason})
    out.sort(key=lambda row: (not row["applicable"], -row["saving_fen"], row["expires_at"], row["coupon_id"]))
    return out


def topup_suggestions(*, workspace, customer, lines, limit: int = 6, now: datetime | None = None) -> list[dict]:
    """凑单: on-shelf products that would lift the cart to the next 满减 tier or a held coupon's threshold,
    cheapest first. Each suggestion says which target it reaches, the gap and the reward."""
    now = _now(now)
    context = pricing_context(workspace=workspace, customer=customer, lines=lines, now=now)
    priced = pricing.price(lines=context.lines, shipping=context.shipping)
    at_item = {line.key: line.item_price_fen * line.quantity for line in priced.lines}
    promotable = [line for line in context.lines if line.sale_kind != pricing.SALE_FLASH]

    def eligible(scope: pricing.Scope) -> int:
        return sum(at_item[line.key] for line in promotable if scope.covers(line))

    targets = []  # (gap, reward, scope, label_zh, label_en)
    for rule in context.full_reductions:
        have = eligible(rule.scope)
        for threshold, amount in sorted(rule.tiers):
            if threshold > have:
                targets.append((threshold - have, amount, rule.scope, f"再买 {{gap}} 元可享满 {threshold / 100:g} 减 "
                                f"{amount / 100:g}", f"Add ¥{{gap}} more to save ¥{amount / 100:g}"))
                break
    if customer is not None:
        for coupon in usable_coupons(workspace=workspace, customer=customer, now=now):
            template = coupon.template
            scope = _scope(template.scope, template.scope_ids)
            have = eligible(scope)
            if template.threshold_fen > have:
                targets.append((template.threshold_fen - have, template.amount_fen, scope,
                                f"再买 {{gap}} 元可用「{template.name}」", f"Add ¥{{gap}} more to use “{template.name}”"))
    if not targets:
        return []
    tier = customer_tier(customer=customer)
    in_cart = set(context.skus)
    suggestions, seen = [], set()
    for gap, reward, scope, label_zh, label_en in sorted(targets, key=lambda t: (t[0], -t[1])):
        candidates = (Sku.objects.filter(workspace=workspace, active=True, product__status=ProductStatus.ON_SHELF,
                                         stock_on_hand__gt=F("stock_reserved"))
                      .exclude(id__in=in_cart).select_related("product").order_by("price_fen", "id"))
        if scope.kind == pricing.SCOPE_CATEGORIES:
            candidates = candidates.filter(product__category_id__in=scope.ids)
        elif scope.kind == pricing.SCOPE_PRODUCTS:
            candidates = candidates.filter(product_id__in=scope.ids)
        for sku in candidates.filter(price_fen__gte=gap)[:40]:
            member = member_price_fen(sku=sku, tier=tier)
            item_price = min(sku.price_fen, member) if member is not None else sku.price_fen
            if item_price < gap or sku.product_id in seen:
                continue
            seen.add(sku.product_id)
            gap_yuan = f"{gap / 100:.2f}"
            suggestions.append({
                "product_id": sku.product_id, "sku_id": sku.id, "title": sku.product.title,
                "price_fen": item_price, "gap_fen": gap, "reward_fen": reward,
                "reason_zh": label_zh.format(gap=gap_yuan), "reason_en": label_en.format(gap=gap_yuan),
            })
            break
        if len(suggestions) >= limit:
            break
    suggestions.sort(key=lambda row: (row["price_fen"], row["sku_id"]))
    return suggestions


# -------------------------------------------------------------------------------------------------- coupons


def _template(workspace, template_id) -> CouponTemplate:
    template = (CouponTemplate.objects.filter(workspace=workspace, pk=template_id).first()
                if isinstance(template_id, int) and not isinstance(template_id, bool) else None)
    if template is None:
        raise SiyuError("not_found", "优惠券不存在", "Coupon not found", status=404)
    return template


def is_newcomer(*, customer) -> bool:
    """A newcomer has never paid for an order (no order_paid / payment_succeeded event) nor used a coupon."""
    paid = Event.objects.filter(workspace_id=customer.workspace_id, identity__customer=customer,
                                type__in=("order_paid", "payment_succeeded")).exists()
    return not paid and not Coupon.objects.filter(customer=customer, state=CouponState.USED).exists()


def coupon_validity(template: CouponTemplate, now: datetime) -> tuple[datetime, datetime]:
    if template.valid_days:
        return now, now + timedelta(days=template.valid_days)
    return template.valid_from or now, template.valid_until


def _claim_refusal(template: CouponTemplate, customer, now: datetime) -> SiyuError | None:
    if template.status != PromotionStatus.ACTIVE:
        return SiyuError("coupon_ended", "该优惠券已停止发放", "This coupon is no longer issued", status=409)
    if not template.valid_days and (template.valid_until is None or template.valid_until <= now):
        return SiyuError("coupon_ended", "该优惠券已过期", "This coupon has expired", status=409)
    if (template.newcomer_only or template.kind == CouponKind.NEWCOMER) and not is_newcomer(customer=customer):
        return SiyuError("coupon_newcomer_only", "仅限新客领取", "For new customers only", status=409)
    return None


def _take_one(template: CouponTemplate, customer, now: datetime, source: str) -> Coupon:
    """Inside a transaction: the per-customer and total counters, then the coupon (rolls back on refusal)."""
    tally, _ = CouponClaimTally.objects.get_or_create(template=template, customer=customer)
    if not CouponClaimTally.objects.filter(pk=tally.pk, claimed__lt=template.per_customer_limit) \
            .update(claimed=F("claimed") + 1):
        raise SiyuError("coupon_limit_reached", f"每人限领 {template.per_customer_limit} 张",
                        f"At most {template.per_customer_limit} per customer", status=409)
    taken = CouponTemplate.objects.filter(pk=template.pk)
    if template.total_quantity:
        taken = taken.filter(issued_count__lt=F("total_quantity"))
    if not taken.update(issued_count=F("issued_count") + 1):
        raise SiyuError("coupon_sold_out", "优惠券已被领完", "All coupons have been claimed", status=409)
    starts_at, expires_at = coupon_validity(template, now)
    return Coupon.objects.create(workspace_id=template.workspace_id, template=template, customer=customer,
                                 claimed_at=now, starts_at=starts_at, expires_at=expires_at, source=source)


def coupon_claim(*, workspace, customer, template_id, now: datetime | None = None) -> Coupon:
    """A customer claims one coupon of a template: total quantity and per-customer limit hold under concurrency."""
    now = _now(now)
    _check_customer(workspace, customer)
    template = _template(workspace, template_id)
    refusal = _claim_refusal(template, customer, now)
    if refusal:
        raise refusal
    with transaction.atomic():
        return _take_one(template, customer, now, "claim")


def coupon_issue(*, workspace, template_id, customer_ids, now: datetime | None = None) -> dict:
    """The operator sends one coupon of a template to each listed customer of the workspace.

    Limits still hold: customers at their limit, non-newcomers for a newcomer coupon and everyone after
    the total runs out are skipped and counted. Returns {"issued", "skipped": {reason: count}}.
    """
    now = _now(now)
    template = _template(workspace, template_id)
    ids = sorted({int(i) for i in customer_ids if isinstance(i, int) and not isinstance(i, bool) and i > 0})
    if not ids:
        raise SiyuError("invalid_input", "请选择要发放的客户", "Choose the customers to send to")
    if template.status != PromotionStatus.ACTIVE:
        raise SiyuError("coupon_ended", "该优惠券已停止发放", "This coupon is no longer issued", status=409)
    customers = Customer.objects.filter(workspace=workspace, id__in=ids, merged_into__isnull=True)
    issued, skipped = 0, {}
    for customer in customers.order_by("id"):
        refusal = _claim_refusal(template, customer, now)
        if refusal is None:
            try:
                with transaction.atomic():
                    _take_one(template, customer, now, "issue")
                issued += 1
                continue
            except SiyuError as error:
                refusal = error
        skipped[refusal.code] = skipped.get(refusal.code, 0) + 1
    unknown = len(ids) - customers.count()
    if unknown:
        skipped["not_found"] = unknown
    return {"issued": issued, "skipped": skipped}


def coupons_lock(*, workspace, customer, coupon_ids, ref: str, now: datetime | None = None) -> int:
    """Hold the customer's coupons for an order (all or none). Calling again with the same ref is harmless."""
    now = _now(now)
    _check_ref(ref)
    _check_customer(workspace, customer)
    ids = sorted({_int(cid, field="coupon_id", minimum=1) for cid in coupon_ids})
    if not ids:
        return 0
    with transaction.atomic():
        already = Coupon.objects.filter(workspace=workspace, customer=customer, id__in=ids,
                                        state=CouponState.LOCKED, ref=ref).count()
        locked = (Coupon.objects.filter(workspace=workspace, customer=customer, id__in=ids,
                                        state=CouponState.AVAILABLE, starts_at__lte=now, expires_at__gt=now)
                  .update(state=CouponState.LOCKED, ref=ref))
        if already + locked != len(ids):
            raise SiyuError("coupon_unavailable", "优惠券不可用（不存在、已使用或已过期）",
                            "The coupon cannot be used (unknown, used or expired)", status=409)
    return len(ids)


def coupons_release(*, ref: str, now: datetime | None = None) -> bool:
    """Give back the coupons an order held or used (cancelled order): exactly once; a coupon past its
    expiry comes back as expired."""
    now = _now(now)
    _check_ref(ref)
    with transaction.atomic():
        held = Coupon.objects.filter(ref=ref, state__in=(CouponState.LOCKED, CouponState.USED))
        expired = held.filter(expires_at__lte=now).update(state=CouponState.EXPIRED, ref="", used_at=None)
        returned = held.update(state=CouponState.AVAILABLE, ref="", used_at=None)
    return bool(expired + returned)


def coupons_consume(*, ref: str, now: datetime | None = None) -> int:
    """The order was paid: its locked coupons become used (exactly once; returns how many moved)."""
    _check_ref(ref)
    return Coupon.objects.filter(ref=ref, state=CouponState.LOCKED).update(state=CouponState.USED,
                                                                           used_at=_now(now))


def coupons_expire(*, now: datetime | None = None) -> int:
    """Periodic: available coupons past their expiry become expired (locked ones wait for their order)."""
    return Coupon.objects.filter(state=CouponState.AVAILABLE, expires_at__lte=_now(now)) \
        .update(state=CouponState.EXPIRED)


# ---------------------------------------------------------------------------------------------- flash sales


def flash_reserve(*, workspace, customer, sale_id, qty, ref: str, now: datetime | None = None) -> FlashReservation:
    """Take ``qty`` units of a flash sale for an order: never more than its stock nor the per-customer limit.

    The hot sale row is touched last (one conditional UPDATE) so its row lock is held as briefly as possible.
    The same ref again returns the same reservation.
    """
    now = _now(now)
    _check_ref(ref)
    _check_customer(workspace, customer)
    _int(qty, field="quantity", minimum=1)
    existing = FlashReservation.objects.filter(ref=ref).first()
    if existing is not None:
        return _same_reservation(existing, sale_id, customer, qty)
    sale = _flash_sale(workspace, sale_id, now)
    try:
        with transaction.atomic():
            reservation = flash_hold(sale=sale, customer=customer, qty=qty, ref=ref)
            flash_take(sale_id=sale.pk, qty=qty)
    except IntegrityError:
        existing = FlashReservation.objects.filter(ref=ref).first()
        if existing is None:
            raise
        return _same_reservation(existing, sale_id, customer, qty)
    return reservation


def flash_hold(*, sale: FlashSale, customer, qty: int, ref: str) -> FlashReservation:
    """First half of a flash reservation, inside the caller's transaction: the customer's tally (one upsert,
    refused past the per-customer limit) and the held reservation. The sale's stock is NOT taken here: the
    caller ends its transaction with ``flash_take``, so the hot row's lock is held only from that UPDATE to
    the commit. ``sale`` is a running sale of the customer's workspace (``_flash_sale``)."""
    _check_ref(ref)
    _int(qty, field="quantity", minimum=1)
    if customer.workspace_id != sale.workspace_id:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    limit = sale.per_customer_limit
    if qty > limit or not _tally_add(sale_id=sale.pk, customer_id=customer.pk, qty=qty, limit=limit):
        raise SiyuError("flash_limit_reached", f"秒杀商品每人限购 {limit} 件",
                        f"At most {limit} per customer in this flash sale", status=409)
    return FlashReservation.objects.create(sale=sale, customer=customer, quantity=qty, ref=ref)


def _tally_add(*, sale_id: int, customer_id: int, qty: int, limit: int) -> bool:
    """Add ``qty`` to the customer's tally in one statement (insert, or update while within ``limit``)."""
    table = connection.ops.quote_name(FlashCustomerTally._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (sale_id, customer_id, quantity) VALUES (%s, %s, %s) "
            f"ON CONFLICT (sale_id, customer_id) DO UPDATE SET quantity = {table}.quantity + excluded.quantity "
            f"WHERE {table}.quantity + excluded.quantity <= %s RETURNING id",
            [sale_id, customer_id, qty, limit])
        return cursor.fetchone() is not None


def flash_take(*, sale_id: int, qty: int) -> None:
    """The sale's stock, taken by ONE conditional UPDATE of its (hot) row: the last statement of the
    reserving transaction, so nothing slow runs while other buyers wait on the row. Sold out → 409 (the
    caller's transaction, with its hold, rolls back)."""
    if not FlashSale.objects.filter(pk=sale_id, stock_left__gte=qty).update(stock_left=F("stock_left") - qty):
        raise SiyuError("flash_sold_out", "秒杀商品已抢光", "The flash sale is sold out", status=409)


def _same_reservation(existing: FlashReservation, sale_id, customer, qty) -> FlashReservation:
    if existing.sale_id != sale_id or existing.customer_id != customer.id or existing.quantity != qty:
        raise SiyuError("ref_conflict", "单号已被另一笔秒杀占用", "The reference is already used by another reservation",
                        status=409)
    return existing


def flash_release(*, ref: str) -> bool:
    """Give held units back to the sale (order cancelled or unpaid): exactly once."""
    _check_ref(ref)
    with transaction.atomic():
        reservation = FlashReservation.objects.filter(ref=ref, state=FlashReservationState.HELD).first()
        if reservation is None or not FlashReservation.objects.filter(
                pk=reservation.pk, state=FlashReservationState.HELD).update(state=FlashReservationState.RELEASED,
                                                                             updated_at=timezone.now()):
            return False
        FlashCustomerTally.objects.filter(sale_id=reservation.sale_id, customer_id=reservation.customer_id) \
            .update(quantity=F("quantity") - reservation.quantity)
        FlashSale.objects.filter(pk=reservation.sale_id).update(stock_left=F("stock_left") + reservation.quantity)
    return True


def flash_commit(*, ref: str) -> bool:
    """The order was paid: its held units are sold (exactly once; False if they were already released)."""
    _check_ref(ref)
    return bool(FlashReservation.objects.filter(ref=ref, state=FlashReservationState.HELD)
                .update(state=FlashReservationState.COMMITTED, updated_at=timezone.now()))


def flash_sold(*, sale: FlashSale) -> int:
    return (sale.reservations.filter(state=FlashReservationState.COMMITTED)
            .aggregate(total=Sum("quantity"))["total"] or 0)


__all__ = [
    "best_coupons", "checkout_quote", "coupon_claim", "coupon_issue", "coupons_consume", "coupons_expire", "coupons_lock",
    "coupons_release", "flash_commit", "flash_hold", "flash_release", "flash_reserve", "flash_take", "quote", "topup_suggestions",
]
