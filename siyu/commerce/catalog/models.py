"""Catalog and inventory tables: categories, products, SKUs (price and stock), images, stock reservations,
the stock movement ledger and the storefront page.

Stock invariant: for every SKU, ``stock_on_hand`` equals the sum of its movements' ``delta_on_hand`` and
``stock_reserved`` the sum of their ``delta_reserved`` (only ``inventory.py`` writes either, always both).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace


class Category(models.Model):
    """A node of the workspace's category tree (two or three levels in practice)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    name = models.CharField(_("名称"), max_length=64)
    icon = models.CharField(_("图标"), max_length=64, blank=True, default="",
                            help_text=_("一个表情符号或图片编号"))
    sort = models.IntegerField(_("排序"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "parent", "name"], name="catalog_category_unique_name"),
            models.UniqueConstraint(fields=["workspace", "name"], condition=Q(parent__isnull=True),
                                    name="catalog_category_unique_root_name"),
        ]

    def __str__(self) -> str:
        return self.name


class ProductStatus(models.TextChoices):
    ON_SHELF = "on_shelf", _("已上架")
    OFF_SHELF = "off_shelf", _("已下架")


class Product(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    title = models.CharField(_("标题"), max_length=120)
    subtitle = models.CharField(_("副标题"), max_length=200, blank=True, default="")
    # Already sanitised (siyu.commerce.catalog.sanitize) when stored: safe to render with |safe.
    description_html = models.TextField(_("详情"), blank=True, default="")
    status = models.CharField(_("状态"), max_length=16, choices=ProductStatus.choices, default=ProductStatus.OFF_SHELF)
    sort = models.IntegerField(_("排序"), default=0)
    tags = models.JSONField(_("标签"), default=list, blank=True)
    # "|tag1|tag2|": substring search over tags on SQLite and PostgreSQL alike.
    tags_text = models.CharField(max_length=600, blank=True, default="")
    # Spec names in the operator's order ("颜色" before "尺码"): PostgreSQL's jsonb does not keep key order.
    spec_names = models.JSONField(default=list, blank=True)
    # 会员专享: only customers of this tier or above may buy ("" = everyone); a loyalty tier code.
    min_tier = models.CharField(_("专享会员等级"), max_length=8, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort", "-id"]
        indexes = [models.Index(fields=["workspace", "status", "sort"])]
        constraints = [models.CheckConstraint(condition=Q(status__in=["on_shelf", "off_shelf"]),
                                              name="catalog_product_status_valid")]

    def __str__(self) -> str:
        return self.title

    @property
    def on_shelf(self) -> bool:
        return self.status == ProductStatus.ON_SHELF


class CatalogImage(models.Model):
    """An uploaded picture kept in the database (no CDN, no media directory to back up separately).

    Product pictures have ``product`` set; banner pictures of the storefront have it empty.
    Served by ``console:commerce_image`` at a URL that includes the content digest (cache forever).
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.CASCADE, related_name="images")
    content = models.BinaryField()
    content_type = models.CharField(max_length=32)
    digest = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    position = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"Image {self.pk}"


class Sku(models.Model):
    """One purchasable variant of a product: its specs, price and stock."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="skus")
    specs = models.JSONField(_("规格"), default=dict, blank=True)
    # Canonical JSON of specs (sorted keys): makes "one SKU per spec combination" a database constraint.
    specs_key = models.CharField(max_length=400)
    code = models.CharField(_("编码"), max_length=64, blank=True, default="")
    price_fen = models.BigIntegerField(_("售价（分）"))
    list_price_fen = models.BigIntegerField(_("划线价（分）"), default=0)
    member_prices = models.JSONField(_("会员价"), default=dict, blank=True)
    stock_on_hand = models.BigIntegerField(_("实物库存"), default=0)
    stock_reserved = models.BigIntegerField(_("已预占"), default=0)
    low_stock_threshold = models.BigIntegerField(_("低库存阈值"), default=0)
    active = models.BooleanField(_("启用"), default=True)
    sort = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "specs_key"], name="catalog_sku_unique_specs"),
            models.UniqueConstraint(fields=["workspace", "code"], condition=~Q(code=""),
                                    name="catalog_sku_unique_code"),
            models.CheckConstraint(condition=Q(price_fen__gte=0), name="catalog_sku_price_nonnegative"),
            models.CheckConstraint(condition=Q(list_price_fen__gte=0), name="catalog_sku_list_price_nonnegative"),
            models.CheckConstraint(condition=Q(stock_reserved__gte=0), name="catalog_sku_reserved_nonnegative"),
            models.CheckConstraint(condition=Q(stock_on_hand__gte=F("stock_reserved")),
                                   name="catalog_sku_reserved_within_on_hand"),
            models.CheckConstraint(condition=Q(low_stock_threshold__gte=0), name="catalog_sku_threshold_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}:{self.specs_label or self.code or self.pk}"

    @property
    def available(self) -> int:
        return self.stock_on_hand - self.stock_reserved

    @property
    def specs_label(self) -> str:
        specs = self.specs or {}
        # The product's order when it is at hand (select_related): jsonb keeps no key order.
        order = [name for name in (self.product.spec_names or []) if name in specs] \
            if "product" in self._state.fields_cache else []
        names = order + [name for name in specs if name not in order]
        return " / ".join(f"{name}:{specs[name]}" for name in names)


class ReservationState(models.TextChoices):
    HELD = "held", _("预占中")
    RELEASED = "released", _("已释放")
    COMMITTED = "committed", _("已出库")
    RETURNED = "returned", _("已退回")


class StockReservation(models.Model):
    """Units of one SKU held for one reference (an order number, a cart checkout) until commit or release."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="reservations")
    ref = models.CharField(max_length=64)
    qty = models.BigIntegerField()
    returned_qty = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=ReservationState.choices, default=ReservationState.HELD)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["state", "expires_at"]), models.Index(fields=["ref"])]
        constraints = [
            models.UniqueConstraint(fields=["ref", "sku"], name="catalog_reservation_unique_ref_sku"),
            models.CheckConstraint(condition=Q(qty__gt=0), name="catalog_reservation_qty_positive"),
            models.CheckConstraint(condition=Q(returned_qty__gte=0) & Q(returned_qty__lte=F("qty")),
                                   name="catalog_reservation_returned_within_qty"),
        ]

    def __str__(self) -> str:
        return f"{self.ref} sku={self.sku_id} ×{self.qty} {self.state}"


class MovementReason(models.TextChoices):
    RESERVE = "reserve", _("下单预占")
    RELEASE = "release", _("释放预占")
    EXPIRE = "expire", _("预占超时释放")
    COMMIT = "commit", _("支付出库")
    RETURN = "return", _("退款退货回库")
    ADJUST = "adjust", _("人工调整")


class StockMovement(models.Model):
    """Append-only ledger: every change of a SKU's stock, with why, for what and by whom."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="movements")
    delta_on_hand = models.BigIntegerField(default=0)
    delta_reserved = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=16, choices=MovementReason.choices)
    note = models.CharField(max_length=200, blank=True, default="")
    ref = models.CharField(max_length=64, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["sku", "id"])]

    def __str__(self) -> str:
        return f"sku={self.sku_id} {self.reason} {self.delta_on_hand:+}/{self.delta_reserved:+}"


class StorePage(models.Model):
    """The decorated home page of a workspace's store: an ordered list of validated blocks
    (siyu.commerce.catalog.storefront_blocks describes each type)."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=64, blank=True, default="")
    blocks = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    def __str__(self) -> str:
        return f"StorePage {self.workspace_id}"
