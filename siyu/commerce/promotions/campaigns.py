"""The operator's side of promotions: create, edit and end 满减 rules, limited-time discounts, flash sales and
coupon templates. Everything is validated before anything is written; every change is audited.

Customer-facing writes (claim, lock, flash reserve …) are in ``services.py``.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.commerce.catalog.models import Category, Product, Sku
from siyu.commerce.promotions.models import (
    CouponKind,
    CouponTemplate,
    FlashSale,
    FullReductionRule,
    LimitedTimeDiscount,
    PromotionStatus,
    Scope,
)
from siyu.commerce.promotions.settings_cache import settings_changed
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record

MAX_FEN = 100_000_000  # one million yuan: anything above is a typo


def _bad(code: str, zh: str, en: str) -> SiyuError:
    return SiyuError(code, zh, en, status=400)


def _name(name) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > 64:
        raise _bad("invalid_name", "请填写名称（最多 64 字）", "A name of at most 64 characters is required")
    return name


def _fen(value, *, zh: str, en: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_FEN:
        raise _bad("invalid_amount", f"{zh}无效", f"{en} is invalid")
    return value


def _window(starts_at, ends_at) -> tuple[datetime, datetime]:
    if not isinstance(starts_at, datetime) or not isinstance(ends_at, datetime) \
            or timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise _bad("invalid_window", "请填写开始和结束时间", "Start and end times are required")
    if ends_at <= starts_at:
        raise _bad("invalid_window", "结束时间必须晚于开始时间", "The end must be after the start")
    return starts_at, ends_at


def _scope(workspace, scope, scope_ids) -> tuple[str, list[int]]:
    if scope not in Scope.values:
        raise _bad("invalid_scope", "适用范围无效", "Invalid scope")
    ids = sorted({int(i) for i in scope_ids or () if isinstance(i, int) and not isinstance(i, bool)})
    if scope == Scope.ALL:
        return scope, []
    model = Category if scope == Scope.CATEGORIES else Product
    if not ids or model.objects.filter(workspace=workspace, pk__in=ids).count() != len(ids):
        raise _bad("invalid_scope", "请选择本店的分类或商品", "Choose categories or products of this shop")
    return scope, ids


def _existing(model, workspace, pk, what_zh: str, what_en: str):
    if pk is None:
        return model(workspace=workspace)
    row = model.objects.filter(workspace=workspace, pk=pk).first()
    if row is None:
        raise SiyuError("not_found", f"{what_zh}不存在", f"{what_en} not found", status=404)
    if row.status != PromotionStatus.ACTIVE:
        raise SiyuError("promotion_ended", "已结束的活动不能修改", "An ended promotion cannot be changed", status=409)
    return row


def full_reduction_save(*, workspace, actor, rule_id: int | None = None, name, tiers, scope=Scope.ALL,
                        scope_ids=(), starts_at, ends_at) -> FullReductionRule:
    """满减 tiers as [(threshold_fen, amount_fen), …]: each amount positive and below its threshold."""
    name = _name(name)
    clean = []
    for tier in tiers or ():
        try:
            threshold, amount = tier
        except (TypeError, ValueError) as error:
            raise _bad("invalid_tiers", "满减档位格式错误", "Each tier is (threshold, amount)") from error
        threshold = _fen(threshold, zh="满减门槛", en="Threshold", minimum=1)
        amount = _fen(amount, zh="减免金额", en="Reduction", minimum=1)
        if amount >= threshold:
            raise _bad("invalid_tiers", "减免金额必须小于门槛", "A reduction must be below its threshold")
        clean.append([threshold, amount])
    if not clean or len(clean) > 5:
        raise _bad("invalid_tiers", "请设置 1 至 5 个满减档位", "Set one to five tiers")
    clean.sort()
    if len({t for t, _ in clean}) != len(clean):
        raise _bad("invalid_tiers", "满减门槛不能重复", "Thresholds must differ")
    scope, ids = _scope(workspace, scope, scope_ids)
    starts_at, ends_at = _window(starts_at, ends_at)
    with transaction.atomic():
        rule = _existing(FullReductionRule, workspace, rule_id, "满减活动", "Spend-and-save rule")
        rule.name, rule.tiers, rule.scope, rule.scope_ids = name, clean, scope, ids
        rule.starts_at, rule.ends_at = starts_at, ends_at
        rule.save()
        audit_record(workspace=workspace, actor=actor, action="promotion.full_reduction_saved",
                     target_type="full_reduction", target_id=rule.pk, tiers=clean)
    return rule


def limited_discount_save(*, workspace, actor, discount_id: int | None = None, name, product_ids=(), sku_ids=(),
                          percent_off: int = 0, price_fen: int | None = None, starts_at, ends_at
                          ) -> LimitedTimeDiscount:
    """A percent off (1–99) or a fixed price (only for listed SKUs) on some products / SKUs."""
    name = _name(name)
    products = sorted({int(i) for i in product_ids or () if isinstance(i, int)})
    skus = sorted({int(i) for i in sku_ids or () if isinstance(i, int)})
    if not products and not skus:
        raise _bad("invalid_scope", "请选择参加活动的商品或 SKU", "Choose the products or SKUs on sale")
    if Product.objects.filter(workspace=workspace, pk__in=products).count() != len(products) \
            or Sku.objects.filter(workspace=workspace, pk__in=skus).count() != len(skus):
        raise _bad("invalid_scope", "请选择本店的商品", "Choose products of this shop")
    if price_fen is not None:
        price_fen = _fen(price_fen, zh="活动价", en="Sale price")
        if products:
            raise _bad("invalid_discount", "固定活动价只能用于指定 SKU", "A fixed price applies to listed SKUs only")
        percent_off = 0
    elif isinstance(percent_off, bool) or not isinstance(percent_off, int) or not 1 <= percent_off <= 99:
        raise _bad("invalid_discount", "折扣须为 1–99 的减免百分比，或填写活动价",
                   "Give a percent off between 1 and 99, or a fixed price")
    starts_at, ends_at = _window(starts_at, ends_at)
    with transaction.atomic():
        discount = _existing(LimitedTimeDiscount, workspace, discount_id, "限时折扣", "Limited-time discount")
        discount.name, discount.product_ids, discount.sku_ids = name, products, skus
        discount.percent_off, discount.price_fen = percent_off, price_fen
        discount.starts_at, discount.ends_at = starts_at, ends_at
        discount.save()
        audit_record(workspace=workspace, actor=actor, action="promotion.limited_discount_saved",
                     target_type="limited_discount", target_id=discount.pk)
    return discount


def flash_sale_save(*, workspace, actor, sale_id: int | None = None, sku_id, name, price_fen, stock_total,
                    per_customer_limit: int = 1, starts_at, ends_at) -> FlashSale:
    """A flash sale of one SKU. Editing the stock moves what is left by the same amount, never below what is
    already held or sold (one conditional UPDATE, safe while the sale runs)."""
    name = _name(name)
    sku = Sku.objects.filter(workspace=workspace, pk=sku_id).first() if isinstance(sku_id, int) else None
    if sku is None:
        raise SiyuError("not_found", "SKU 不存在", "SKU not found", status=404)
    price_fen = _fen(price_fen, zh="秒杀价", en="Flash price")
    if price_fen >= sku.price_fen:
        raise _bad("invalid_price", "秒杀价必须低于售价", "The flash price must be below the sale price")
    stock_total = _fen(stock_total, zh="秒杀库存", en="Flash stock", minimum=1)
    if isinstance(per_customer_limit, bool) or not isinstance(per_customer_limit, int) \
            or not 1 <= per_customer_limit <= 99:
        raise _bad("invalid_limit", "每人限购须为 1–99", "The per-customer limit must be 1–99")
    starts_at, ends_at = _window(starts_at, ends_at)
    with transaction.atomic():
        sale = _existing(FlashSale, workspace, sale_id, "秒杀活动", "Flash sale")
        if sale.pk is None:
            sale.sku, sale.stock_total, sale.stock_left = sku, stock_total, stock_total
        else:
            if sale.sku_id != sku.pk:
                raise _bad("invalid_sku", "秒杀活动的商品不能更换", "The SKU of a flash sale cannot change")
            delta = stock_total - sale.stock_total
            moved = FlashSale.objects.filter(pk=sale.pk, stock_left__gte=-delta).update(
                stock_total=F("stock_total") + delta, stock_left=F("stock_left") + delta)
            if not moved:
                raise SiyuError("flash_stock_in_use", "库存不能少于已售出和已锁定的数量",
                                "The stock cannot go below what is sold or held", status=409)
            sale.refresh_from_db()
        sale.name, sale.price_fen, sale.per_customer_limit = name, price_fen, per_customer_limit
        sale.starts_at, sale.ends_at = starts_at, ends_at
        sale.save(update_fields=None if sale.pk is None else
                  ["name", "price_fen", "per_customer_limit", "starts_at", "ends_at"])
        audit_record(workspace=workspace, actor=actor, action="promotion.flash_sale_saved",
                     target_type="flash_sale", target_id=sale.pk, stock_total=sale.stock_total)
    return sale


PROMOTION_MODELS = {"full_reduction": FullReductionRule, "limited_discount": LimitedTimeDiscount,
                    "flash_sale": FlashSale, "coupon_template": CouponTemplate}


def promotion_end(*, workspace, actor, kind: str, promotion_id) -> bool:
    """End a promotion now (coupons already claimed stay usable until their own expiry). True if it moved."""
    model = PROMOTION_MODELS.get(kind)
    if model is None:
        raise _bad("invalid_kind", "未知的活动类型", "Unknown promotion kind")
    if not model.objects.filter(workspace=workspace, pk=promotion_id).exists():
        raise SiyuError("not_found", "活动不存在", "Promotion not found", status=404)
    with transaction.atomic():
        moved = model.objects.filter(workspace=workspace, pk=promotion_id, status=PromotionStatus.ACTIVE) \
            .update(status=PromotionStatus.ENDED)
        if moved:
            settings_changed(workspace_id=workspace.id)  # quotes in every process stop applying it
            audit_record(workspace=workspace, actor=actor, action="promotion.ended", target_type=kind,
                         target_id=promotion_id)
    return bool(moved)


def coupon_template_save(*, workspace, actor, template_id: int | None = None, name, kind, threshold_fen: int = 0,
                         amount_fen: int = 0, percent_off: int = 0, cap_fen: int = 0, scope=Scope.ALL,
                         scope_ids=(), valid_days: int = 0, valid_from=None, valid_until=None,
                         total_quantity: int = 0, per_customer_limit: int = 1, newcomer_only: bool = False,
                         stackable: bool = False) -> CouponTemplate:
    name = _name(name)
    if kind not in CouponKind.values:
        raise _bad("invalid_kind", "未知的优惠券类型", "Unknown coupon kind")
    threshold_fen = _fen(threshold_fen, zh="使用门槛", en="Threshold")
    cap_fen = _fen(cap_fen, zh="最高优惠", en="Cap")
    if kind == CouponKind.PERCENT:
        if isinstance(percent_off, bool) or not isinstance(percent_off, int) or not 1 <= percent_off <= 99:
            raise _bad("invalid_percent", "折扣须为 1–99 的减免百分比（如 20 = 8 折）",
                       "The percent off must be 1–99 (20 means 20% off)")
        amount_fen = 0
    else:
        amount_fen = _fen(amount_fen, zh="面额", en="Amount", minimum=1)
        percent_off, cap_fen = 0, 0
        if kind == CouponKind.NO_THRESHOLD:
            threshold_fen = 0
        if kind == CouponKind.THRESHOLD and threshold_fen <= amount_fen:
            raise _bad("invalid_threshold", "满减券的门槛必须高于面额", "The threshold must be above the amount")
    if kind == CouponKind.NEWCOMER:
        newcomer_only = True
    scope, ids = _scope(workspace, scope, scope_ids)
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or not 0 <= valid_days <= 3650:
        raise _bad("invalid_validity", "有效天数无效", "Invalid number of days")
    if valid_days:
        valid_from = valid_until = None
    else:
        if not isinstance(valid_until, datetime) or timezone.is_naive(valid_until) or valid_until <= timezone.now():
            raise _bad("invalid_validity", "请填写未来的有效期结束时间，或领取后有效天数",
                       "Give a future end of validity, or a number of days after claiming")
        if valid_from is not None and (not isinstance(valid_from, datetime) or valid_from >= valid_until):
            raise _bad("invalid_validity", "有效期开始必须早于结束", "The validity must start before it ends")
    for value, zh, en, low in ((total_quantity, "发放总量", "Total quantity", 0),
                               (per_customer_limit, "每人限领", "Per-customer limit", 1)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10_000_000:
            raise _bad("invalid_quantity", f"{zh}无效", f"{en} is invalid")
    with transaction.atomic():
        template = _existing(CouponTemplate, workspace, template_id, "优惠券", "Coupon")
        if template.pk and total_quantity and total_quantity < template.issued_count:
            raise SiyuError("invalid_quantity", f"发放总量不能少于已发放的 {template.issued_count} 张",
                            f"The total cannot go below the {template.issued_count} already issued", status=409)
        if template.pk and template.kind != kind and template.issued_count:
            raise SiyuError("invalid_kind", "已发放的优惠券不能更换类型", "An issued coupon cannot change kind",
                            status=409)
        for field, value in dict(name=name, kind=kind, threshold_fen=threshold_fen, amount_fen=amount_fen,
                                 percent_off=percent_off, cap_fen=cap_fen, scope=scope, scope_ids=ids,
                                 valid_days=valid_days, valid_from=valid_from, valid_until=valid_until,
                                 total_quantity=total_quantity, per_customer_limit=per_customer_limit,
                                 newcomer_only=bool(newcomer_only), stackable=bool(stackable)).items():
            setattr(template, field, value)
        template.save()
        audit_record(workspace=workspace, actor=actor, action="promotion.coupon_template_saved",
                     target_type="coupon_template", target_id=template.pk)
    return template
