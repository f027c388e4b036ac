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
