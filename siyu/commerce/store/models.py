"""The consumer's cart: one per customer and workspace, a line per SKU (quantity validated by the cart services)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class Cart(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("购物车")
        verbose_name_plural = _("购物车")
        constraints = [models.UniqueConstraint(fields=["workspace", "customer"], name="store_cart_customer_unique")]

    def __str__(self) -> str:
        return f"cart of customer {self.customer_id}"


class CartItem(models.Model):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")
    sku = models.ForeignKey("commerce_catalog.Sku", on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField(_("数量"))
    selected = models.BooleanField(_("选中结算"), default=True)
    added_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("购物车商品")
        verbose_name_plural = _("购物车商品")
        constraints = [
            models.UniqueConstraint(fields=["cart", "sku"], name="store_cart_item_sku_unique"),
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="store_cart_item_quantity_positive"),
        ]
        ordering = ["added_at", "pk"]

    def __str__(self) -> str:
        return f"{self.quantity} × sku {self.sku_id}"


class ReviewStatus(models.TextChoices):
    PUBLISHED = "published", _("已发布")
    HIDDEN = "hidden", _("已隐藏")


class ProductReview(models.Model):
    """A buyer's review of one line of a delivered order (one per line), rewarded with points once."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    order_line = models.OneToOneField("commerce_orders.OrderLine", on_delete=models.CASCADE, related_name="review")
    product_id = models.BigIntegerField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(_("评分"))
    text = models.TextField(_("评价内容"))
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PUBLISHED)
    points = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("商品评价")
        verbose_name_plural = _("商品评价")
        constraints = [models.CheckConstraint(condition=models.Q(rating__gte=1) & models.Q(rating__lte=5),
                                              name="store_review_rating_range")]
        indexes = [models.Index(fields=["workspace", "product_id", "-created_at"])]

    def __str__(self) -> str:
        return f"review of line {self.order_line_id}: {self.rating}★"
