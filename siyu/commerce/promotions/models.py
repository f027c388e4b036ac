"""Promotions the operator sets up (coupons, 满减, limited-time discounts, flash sales) and what customers hold.

Prices are computed by ``pricing.py`` only; these rows say what is on offer, for whom and when.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class Scope(models.TextChoices):
    ALL = "all", _("全部商品")
    CATEGORIES = "categories", _("指定分类")
    PRODUCTS = "products", _("指定商品")


class CouponKind(models.TextChoices):
    THRESHOLD = "threshold", _("满减券")
    PERCENT = "percent", _("折扣券")
    NO_THRESHOLD = "no_threshold", _("无门槛券")
    NEWCOMER = "newcomer", _("新人券")


class PromotionStatus(models.TextChoices):
    ACTIVE = "active", _("进行中")
    ENDED = "ended", _("已结束")


class ShippingSettings(models.Model):
    """Per-workspace shipping fee and free-shipping threshold (points settings are loyalty's)."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    shipping_fee_fen = models.PositiveIntegerField(_("运费（分）"), default=1000)
    free_shipping_threshold_fen = models.PositiveIntegerField(_("包邮门槛（分）"), default=9900)

    def __str__(self) -> str:
        return f"ShippingSettings {self.workspace_id}"


class CouponTemplate(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("名称"), max_length=64)
    kind = models.CharField(_("类型"), max_length=16, choices=CouponKind.choices)
    threshold_fen = models.PositiveIntegerField(_("使用门槛（分）"), default=0)
    amount_fen = models.PositiveIntegerField(_("面额（分）"), default=0)
    percent_off = models.PositiveSmallIntegerField(_("折扣（减免百分比）"), default=0)  # 20 = 8折
    cap_fen = models.PositiveIntegerField(_("最高优惠（分）"), default=0)  # 0 = no cap
    scope = models.CharField(_("适用范围"), max_length=16, choices=Scope.choices, default=Scope.ALL)
    scope_ids = models.JSONField(default=list, blank=True)  # category or product ids
    valid_from = models.DateTimeField(_("有效期开始"), null=True, blank=True)
    valid_until = models.DateTimeField(_("有效期结束"), null=True, blank=True)
    valid_days = models.PositiveIntegerField(_("领取后有效天数"), default=0)  # > 0: relative validity
    total_quantity = models.PositiveIntegerField(_("发放总量"), default=0)  # 0 = unlimited
    issued_count = models.PositiveIntegerField(default=0)  # moved only by conditional UPDATE
    per_customer_limit = models.PositiveSmallIntegerField(_("每人限领"), default=1)
    newcomer_only = models.BooleanField(_("仅限新客"), default=False)
    stackable = models.BooleanField(_("可与其他券叠加"), default=False)
    status = models.CharField(max_length=8, choices=PromotionStatus.choices, default=PromotionStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total_quantity=0) | Q(issued_count__lte=models.F("total_quantity")),
                                   name="coupon_template_not_overissued"),
        ]

    def __str__(self) -> str:
        return self.name


class CouponState(models.TextChoices):
    AVAILABLE = "available", _("可用")
    LOCKED = "locked", _("已锁定")
    USED = "used", _("已使用")
    EXPIRED = "expired", _("已过期")


class Coupon(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="coupons")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=12, choices=CouponState.choices, default=CouponState.AVAILABLE)
    claimed_at = models.DateTimeField()
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ref = models.CharField(max_length=64, blank=True, default="", db_index=True)  # the order holding it
    source = models.CharField(max_length=8, default="claim")  # claim | issue
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["expires_at", "id"]
        indexes = [models.Index(fields=["customer", "state"])]

    def __str__(self) -> str:
        return f"Coupon {self.pk} {self.state}"


class CouponClaimTally(models.Model):
    """How many coupons of a template a customer holds: the per-customer limit is a conditional UPDATE here."""

    template = models.ForeignKey(CouponTemplate, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    claimed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["template", "customer"], name="coupon_tally_once")]

    def __str__(self) -> str:
        return f"{self.template_id}/{self.customer_id}: {self.claimed}"


class FullReductionRule(models.Model):
    """满减: tiers [[threshold_fen, amount_fen], …] on the lines in scope, within a window."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("名称"), max_length=64)
    tiers = models.JSONField(default=list)
    scope = models.CharField(_("适用范围"), max_length=16, choices=Scope.choices, default=Scope.ALL)
    scope_ids = models.JSONField(default=list, blank=True)
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    status = models.CharField(max_length=8, choices=PromotionStatus.choices, default=PromotionStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class LimitedTimeDiscount(models.Model):
    """限时折扣: a percent off, or a fixed price, for some products / SKUs within a window."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("名称"), max_length=64)
    product_ids = models.JSONField(default=list, blank=True)
    sku_ids = models.JSONField(default=list, blank=True)
    percent_off = models.PositiveSmallIntegerField(_("减免百分比"), default=0)
    price_fen = models.PositiveIntegerField(_("活动价（分）"), null=True, blank=True)  # set: a fixed price instead
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    status = models.CharField(max_length=8, choices=PromotionStatus.choices, default=PromotionStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class FlashSale(models.Model):
    """秒杀: one SKU at a flash price with its own stock counter (moved only by conditional UPDATEs)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    sku = models.ForeignKey("commerce_catalog.Sku", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("名称"), max_length=64)
    price_fen = models.PositiveIntegerField(_("秒杀价（分）"))
    stock_total = models.PositiveIntegerField(_("秒杀库存"))
    stock_left = models.PositiveIntegerField(default=0)  # sold = committed reservations (selectors)
    per_customer_limit = models.PositiveSmallIntegerField(_("每人限购"), default=1)
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    status = models.CharField(max_length=8, choices=PromotionStatus.choices, default=PromotionStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(stock_left__lte=models.F("stock_total")), name="flash_stock_bounded"),
        ]

    def __str__(self) -> str:
        return self.name


class FlashReservationState(models.TextChoices):
    HELD = "held", _("已锁定")
    RELEASED = "released", _("已释放")
    COMMITTED = "committed", _("已成交")


class FlashReservation(models.Model):
    sale = models.ForeignKey(FlashSale, on_delete=models.CASCADE, related_name="reservations")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField()
    ref = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=12, choices=FlashReservationState.choices,
                             default=FlashReservationState.HELD)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.ref} ×{self.quantity} {self.state}"


class FlashCustomerTally(models.Model):
    """Units a customer holds or bought in a sale: the per-customer limit is a conditional UPDATE here."""

    sale = models.ForeignKey(FlashSale, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sale", "customer"], name="flash_tally_once")]

    def __str__(self) -> str:
        return f"{self.sale_id}/{self.customer_id}: {self.quantity}"


class PromotionsVersion(models.Model):
    """A token that changes whenever a workspace's pricing settings change (满减 rules, limited-time
    discounts, shipping): each process caches those settings under it and re-reads them when it moved."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, primary_key=True, related_name="+")
    token = models.CharField(max_length=32)

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.token}"
