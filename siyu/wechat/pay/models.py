"""微信支付 records: payment intents, refunds, and the inbox of notifications WeChat Pay sent us.

Amounts are integer fen. ``out_trade_no`` is unique per merchant (WeChat's own rule), so a retried
prepay finds its intent instead of creating another. The notification inbox row is inserted first, under
unique keys, so a notification is applied exactly once however often and however concurrently it arrives.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.wechat.pay import domain


class IntentStatus(models.TextChoices):
    CREATED = domain.CREATED, _("待支付")
    PAID = domain.PAID, _("已支付")
    CLOSED = domain.CLOSED, _("已关闭")
    REFUNDED_PARTIALLY = domain.REFUNDED_PARTIALLY, _("部分退款")
    REFUNDED = domain.REFUNDED, _("已全额退款")


class PaymentIntent(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    mchid = models.CharField(max_length=32)
    appid = models.CharField(max_length=32)
    out_trade_no = models.CharField(max_length=32)
    amount_fen = models.BigIntegerField()
    currency = models.CharField(max_length=8, default="CNY")
    payer_openid = models.CharField(max_length=128)
    description = models.CharField(max_length=127)
    status = models.CharField(max_length=24, choices=IntentStatus.choices, default=IntentStatus.CREATED)
    transaction_id = models.CharField(max_length=32, blank=True, default="")
    prepay_id = models.CharField(max_length=64, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    paid_after_close = models.BooleanField(default=False)
    refunded_fen = models.BigIntegerField(default=0)  # succeeded refunds only
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mchid", "out_trade_no"], name="wechat_pay_intent_unique_trade_no"),
            models.CheckConstraint(condition=models.Q(amount_fen__gt=0), name="wechat_pay_intent_amount_positive"),
            models.CheckConstraint(condition=models.Q(refunded_fen__gte=0)
                                   & models.Q(refunded_fen__lte=models.F("amount_fen")),
                                   name="wechat_pay_intent_refunded_within_amount"),
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="wechat_pay_intent_recent")]

    def __str__(self) -> str:
        return f"{self.mchid}/{self.out_trade_no} {self.status}"


class RefundStatus(models.TextChoices):
    PENDING = domain.REFUND_PENDING, _("待提交")
    PROCESSING = domain.REFUND_PROCESSING, _("退款处理中")
    SUCCEEDED = domain.REFUND_SUCCEEDED, _("退款成功")
    ABNORMAL = domain.REFUND_ABNORMAL, _("退款异常")
    CLOSED = domain.REFUND_CLOSED, _("退款关闭")
    FAILED = domain.REFUND_FAILED, _("被微信支付拒绝")


class Refund(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    intent = models.ForeignKey(PaymentIntent, on_delete=models.CASCADE, related_name="refunds")
    mchid = models.CharField(max_length=32)
    out_refund_no = models.CharField(max_length=64)
    amount_fen = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    refund_id = models.CharField(max_length=32, blank=True, default="")
    reason = models.CharField(max_length=80, blank=True, default="")
    automatic = models.BooleanField(default=False)  # e.g. a payment that arrived after the intent closed
    failure = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mchid", "out_refund_no"], name="wechat_pay_refund_unique_no"),
            models.CheckConstraint(condition=models.Q(amount_fen__gt=0), name="wechat_pay_refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.mchid}/{self.out_refund_no} {self.amount_fen} {self.status}"


class NotificationOutcome(models.TextChoices):
    ACCEPTED = "accepted", _("已处理")
    DUPLICATE = "duplicate", _("重复通知")
    STALE = "stale", _("过期通知（状态已是最新）")
    REJECTED = "rejected", _("已拒绝")


class PaymentNotification(models.Model):
    """One notification as received. ``notification_key`` and ``resource_key`` are set only on the row that
    was applied; duplicates and rejections are recorded with both empty (NULL) and point to the reason."""

    workspace = models.ForeignKey(Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    mchid = models.CharField(max_length=32)
    kind = models.CharField(max_length=16)  # transaction | refund
    notification_id = models.CharField(max_length=64, blank=True, default="")
    event_type = models.CharField(max_length=32, blank=True, default="")
    notification_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    resource_key = models.CharField(max_length=160, null=True, blank=True, unique=True)
    out_trade_no = models.CharField(max_length=32, blank=True, default="")
    transaction_id = models.CharField(max_length=32, blank=True, default="")
    out_refund_no = models.CharField(max_length=64, blank=True, default="")
    state = models.CharField(max_length=24, blank=True, default="")  # trade_state / refund_status
    amount_fen = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=NotificationOutcome.choices)
    reason = models.CharField(max_length=48, blank=True, default="")
    detail = models.CharField(max_length=300, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-received_at"], name="wechat_pay_notification_recent")]

    def __str__(self) -> str:
        return f"{self.mchid} {self.event_type} {self.outcome}"
