"""Orders, their lines and history, refunds, after-sales requests and complaints.

Money is integer fen and the database itself refuses impossible amounts (CHECK constraints): totals add
up, nothing is negative, nothing is refunded beyond what was paid. A line keeps a snapshot of the SKU as it
was sold (title, specs, unit price): later catalog edits never rewrite an order, so lines hold the SKU's
id, not a foreign key. The delivery address is personal data: stored encrypted (siyu.core.crypto).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from siyu.commerce.orders import domain
from siyu.core.crypto import decrypt_text
from siyu.core.models import Workspace
from siyu.customers.models import Customer


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = domain.PENDING_PAYMENT, _("待付款")
    CONFIRMED = domain.CONFIRMED, _("已确认")
    COMPLETED = domain.COMPLETED, _("已完成")
    CANCELLED = domain.CANCELLED, _("已取消")


class PaymentStatus(models.TextChoices):
    UNPAID = domain.UNPAID, _("未支付")
    PAID = domain.PAID, _("已支付")
    PARTIALLY_REFUNDED = domain.PARTIALLY_REFUNDED, _("部分退款")
    REFUNDED = domain.REFUNDED, _("已退款")


class FulfilmentStatus(models.TextChoices):
    UNFULFILLED = domain.UNFULFILLED, _("待发货")
    SHIPPED = domain.SHIPPED, _("已发货")
    DELIVERED = domain.DELIVERED, _("已签收")
    RETURNED = domain.RETURNED, _("已退货")


class OrderSource(models.TextChoices):
    H5 = "h5", _("H5 商城")
    MINIAPP = "miniapp", _("小程序")


class Order(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    number = models.CharField(max_length=32, unique=True)  # also the WeChat Pay out_trade_no
    order_status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT)
    payment_status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.UNPAID)
    fulfilment_status = models.CharField(max_length=12, choices=FulfilmentStatus.choices,
                                         default=FulfilmentStatus.UNFULFILLED)
    subtotal_fen = models.BigIntegerField()
    discount_fen = models.BigIntegerField(default=0)
    points_used = models.BigIntegerField(default=0)
    points_fen = models.BigIntegerField(default=0)
    shipping_fen = models.BigIntegerField(default=0)
    total_fen = models.BigIntegerField()
    paid_fen = models.BigIntegerField(default=0)
    refunded_fen = models.BigIntegerField(default=0)  # refunds that succeeded
    price_explanation = models.JSONField(default=dict, blank=True)  # the quote as the customer saw it
    coupon_ids = models.JSONField(default=list, blank=True)
    flash_sale_id = models.BigIntegerField(null=True, blank=True)
    address_enc = models.BinaryField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=OrderSource.choices, default=OrderSource.H5)
    buyer_note = models.CharField(max_length=200, blank=True, default="")
    remark = models.TextField(blank=True, default="")  # operators' notes, never shown to the buyer
    pay_expires_at = models.DateTimeField()
    transaction_id = models.CharField(max_length=32, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    carrier = models.CharField(max_length=32, blank=True, default="")
    tracking_number = models.CharField(max_length=40, blank=True, default="")
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=120, blank=True, default="")
    # Exactly-once bookkeeping of what the order holds elsewhere (set once, under the order's row lock).
    holds_released_at = models.DateTimeField(null=True, blank=True)
    points_returned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(subtotal_fen__gte=0, discount_fen__gte=0, points_fen__gte=0,
                                               points_used__gte=0, shipping_fen__gte=0, total_fen__gte=0,
                                               paid_fen__gte=0, refunded_fen__gte=0),
                                   name="order_amounts_not_negative"),
            models.CheckConstraint(condition=Q(total_fen=F("subtotal_fen") - F("discount_fen") - F("points_fen")
                                               + F("shipping_fen")),
                                   name="order_total_adds_up"),
            models.CheckConstraint(condition=Q(paid_fen__lte=F("total_fen")), name="order_paid_within_total"),
            models.CheckConstraint(condition=Q(refunded_fen__lte=F("paid_fen")), name="order_refunded_within_paid"),
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="order_recent"),
            models.Index(fields=["workspace", "customer", "-created_at"], name="order_customer"),
            models.Index(fields=["order_status", "pay_expires_at"], name="order_pay_expiry"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def address(self) -> dict:
        text = decrypt_text(self.address_enc)
        return json.loads(text) if text else {}

    def belongs_to(self, customer: Customer) -> bool:
        """The customer placed it — or a profile later merged into this customer did."""
        if self.customer_id == customer.pk:
            return True
        return Customer.objects.filter(pk=self.customer_id, merged_into_id=customer.pk).exists()

    @property
    def reservation_ref(self) -> str:
        """The reference under which stock, flash stock, coupons and points are held for this order."""
        return f"order:{self.number}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku_id = models.BigIntegerField()
    product_id = models.BigIntegerField(null=True, blank=True)
    title = models.CharField(max_length=120)
    specs = models.JSONField(default=dict, blank=True)
    unit_price_fen = models.BigIntegerField()
    quantity = models.PositiveIntegerField()
    discount_fen = models.BigIntegerField(default=0)  # promotions and points allocated to this line
    payable_fen = models.BigIntegerField()
    refunded_fen = models.BigIntegerField(default=0)  # refunds requested against this line (in flight or done)
    refunded_quantity = models.PositiveIntegerField(default=0)
    flash_sale = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0, unit_price_fen__gte=0, discount_fen__gte=0,
                                               refunded_fen__gte=0), name="order_line_amounts_valid"),
            models.CheckConstraint(condition=Q(payable_fen=F("unit_price_fen") * F("quantity") - F("discount_fen"))
                                   & Q(payable_fen__gte=0), name="order_line_payable_adds_up"),
            models.CheckConstraint(condition=Q(refunded_fen__lte=F("payable_fen"))
                                   & Q(refunded_quantity__lte=F("quantity")), name="order_line_refund_within"),
        ]

    def __str__(self) -> str:
        return f"{self.title} × {self.quantity}"

    @property
    def specs_text(self) -> str:
        return " ".join(f"{key}:{value}" for key, value in (self.specs or {}).items())


class HistoryField(models.TextChoices):
    ORDER_STATUS = domain.ORDER_STATUS, _("订单状态")
    PAYMENT_STATUS = domain.PAYMENT_STATUS, _("支付状态")
    FULFILMENT_STATUS = domain.FULFILMENT_STATUS, _("履约状态")
    NOTE = "note", _("备注与操作")


class OrderHistory(models.Model):
    """One row per status move (and per operator note or action worth keeping)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="history")
    field = models.CharField(max_length=20, choices=HistoryField.choices)
    from_value = models.CharField(max_length=24, blank=True, default="")
    to_value = models.CharField(max_length=24, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=32, blank=True, default="")  # customer | system | wechat_pay
    reason = models.CharField(max_length=200, blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.field} {self.from_value}→{self.to_value}"


class RefundStatus(models.TextChoices):
    REQUESTED = "requested", _("退款中")
    SUCCEEDED = "succeeded", _("退款成功")
    FAILED = "failed", _("退款失败")


class OrderRefund(models.Model):
    """Money going back for an order: counted against what may still be refunded from the moment it is
    requested, applied to the order (payment status, points) when WeChat Pay confirms it."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    aftersale = models.ForeignKey("AfterSale", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="refunds")
    out_refund_no = models.CharField(max_length=64, unique=True)
    amount_fen = models.BigIntegerField()
    lines = models.JSONField(default=dict, blank=True)  # {line_id: fen}
    quantities = models.JSONField(default=dict, blank=True)  # {line_id: units returned}
    status = models.CharField(max_length=12, choices=RefundStatus.choices, default=RefundStatus.REQUESTED)
    automatic = models.BooleanField(default=False)  # a payment that arrived for a cancelled order
    restock = models.BooleanField(default=False)
    reason = models.CharField(max_length=80, blank=True, default="")
    failure = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount_fen__gt=0), name="order_refund_amount_positive")]

    def __str__(self) -> str:
        return f"{self.out_refund_no} {self.amount_fen} {self.status}"


class AfterSaleKind(models.TextChoices):
    REFUND_ONLY = domain.REFUND_ONLY, _("仅退款")
    RETURN_REFUND = domain.RETURN_REFUND, _("退货退款")
    EXCHANGE = domain.EXCHANGE, _("换货")


class AfterSaleStatus(models.TextChoices):
    REQUESTED = domain.AS_REQUESTED, _("待审核")
    APPROVED = domain.AS_APPROVED, _("已同意")
    REJECTED = domain.AS_REJECTED, _("已拒绝")
    RETURNED = domain.AS_RETURNED, _("已收到退货")
    REFUNDED = domain.AS_REFUNDED, _("已退款")
    CLOSED = domain.AS_CLOSED, _("已关闭")


class AfterSale(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="aftersales")
    kind = models.CharField(max_length=16, choices=AfterSaleKind.choices)
    status = models.CharField(max_length=12, choices=AfterSaleStatus.choices, default=AfterSaleStatus.REQUESTED)
    amount_fen = models.BigIntegerField(default=0)  # the refund asked for (0 for an exchange)
    reason = models.CharField(max_length=80)
    description = models.CharField(max_length=500, blank=True, default="")
    decision_note = models.CharField(max_length=200, blank=True, default="")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    return_carrier = models.CharField(max_length=32, blank=True, default="")
    return_tracking_number = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gte=0), name="aftersale_amount_not_negative"),
            models.UniqueConstraint(fields=["order"], condition=Q(status__in=sorted(domain.AFTERSALE_OPEN)),
                                    name="aftersale_one_open_per_order"),
        ]
        indexes = [models.Index(fields=["workspace", "status", "-created_at"], name="aftersale_queue")]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.status}"


class AfterSaleLine(models.Model):
    aftersale = models.ForeignKey(AfterSale, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="aftersale_line_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.line_id} × {self.quantity}"


class ComplaintStatus(models.TextChoices):
    OPEN = "open", _("待处理")
    RESOLVED = "resolved", _("已处理")


class Complaint(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="complaints")
    category = models.CharField(max_length=32)
    content = models.CharField(max_length=1000)
    status = models.CharField(max_length=12, choices=ComplaintStatus.choices, default=ComplaintStatus.OPEN)
    resolution = models.CharField(max_length=500, blank=True, default="")
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "status", "-created_at"], name="complaint_queue")]

    def __str__(self) -> str:
        return f"{self.category} {self.status}"
