"""Points ledger (append-only, double-entry) and member tiers.

Ledger: a ``PointsTransaction`` is one movement; its ``PointsEntry`` rows (two or more) sum to zero across
accounts — the customer's own account and the workspace's system accounts (issued, redeemed, expired,
reversed, adjusted). A customer account caches its balance (updated in the same transaction as the entries,
under a row lock, never below zero by a CHECK constraint); system accounts do not cache theirs, because a
cached system balance would be one hot row every earn in the workspace must update.

``PointsLot`` rows are the earned points still unspent, consumed first-to-expire-first (FIFO), so that expiry
only ever takes points that were earned and not yet spent. The sum of a customer's lots' ``remaining`` is
their balance (checked by ``siyu.loyalty.points.ledger_check``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class AccountKind(models.TextChoices):
    CUSTOMER = "customer", _("客户")
    ISSUED = "issued", _("发放")
    REDEEMED = "redeemed", _("消耗")
    EXPIRED = "expired", _("过期")
    REVERSED = "reversed", _("冲正")
    ADJUSTED = "adjusted", _("人工调整")
    TRANSFERRED = "transferred", _("合并转移")


SYSTEM_ACCOUNT_KINDS = (AccountKind.ISSUED, AccountKind.REDEEMED, AccountKind.EXPIRED, AccountKind.REVERSED,
                        AccountKind.ADJUSTED, AccountKind.TRANSFERRED)


class PointsAccount(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=AccountKind.choices)
    customer = models.OneToOneField(Customer, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="points_account")
    # Cached for customer accounts only (see module docstring); 0 for system accounts.
    balance = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="loyalty_account_balance_not_negative"),
            models.CheckConstraint(
                condition=(Q(kind="customer", customer__isnull=False) | (~Q(kind="customer") & Q(customer__isnull=True))),
                name="loyalty_account_customer_iff_customer_kind"),
            models.UniqueConstraint(fields=["workspace", "kind"], condition=Q(customer__isnull=True),
                                    name="loyalty_system_account_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.customer_id or self.workspace_id}"


class TransactionKind(models.TextChoices):
    EARN = "earn", _("获得")
    BURN = "burn", _("使用")
    EXPIRE = "expire", _("过期")
    REVERSE = "reverse", _("冲正")
    ADJUST = "adjust", _("人工调整")
    TRANSFER = "transfer", _("合并转移")


class Reason(models.TextChoices):
    PURCHASE = "purchase", _("消费")
    CHECKIN = "checkin", _("签到")
    SHARE = "share", _("分享")
    REVIEW = "review", _("评价")
    TASK = "task", _("任务")
    CHECKOUT = "checkout", _("下单抵现")
    EXCHANGE = "exchange", _("积分兑换")
    LOTTERY = "lottery", _("抽奖")
    EXPIRY = "expiry", _("到期")
    SPEND_RETURNED = "spend_returned", _("订单取消/退款退回")
    EARN_REVERSED = "earn_reversed", _("订单退款扣回")
    MANUAL = "manual", _("人工调整")
    MERGE_OUT = "merge_out", _("客户合并转出")
    MERGE_IN = "merge_in", _("客户合并转入")


EARN_REASONS = frozenset({Reason.PURCHASE, Reason.CHECKIN, Reason.SHARE, Reason.REVIEW, Reason.TASK})
BURN_REASONS = frozenset({Reason.CHECKOUT, Reason.EXCHANGE, Reason.LOTTERY})


class PointsTransaction(models.Model):
    """One movement of points. Never updated or deleted; a correction is another transaction."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="points_transactions")
    kind = models.CharField(max_length=8, choices=TransactionKind.choices)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    # Idempotency: one transaction per (workspace, kind, ref) — a replayed call finds it and changes nothing.
    ref = models.CharField(max_length=128)
    # What the customer's balance moved by (signed); the entries say the same from both sides.
    amount = models.BigIntegerField()
    # The transaction this one reverses (a returned spend, an earn taken back after a refund).
    reverses = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals")
    note = models.CharField(max_length=255, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "ref"], name="loyalty_tx_unique_ref")]
        indexes = [models.Index(fields=["customer", "created_at"]),
                   models.Index(fields=["workspace", "created_at"]),
                   models.Index(fields=["ref"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} ({self.ref})"


class PointsEntry(models.Model):
    transaction = models.ForeignKey(PointsTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(PointsAccount, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="loyalty_entry_not_zero")]
        indexes = [models.Index(fields=["account", "transaction"])]

    def __str__(self) -> str:
        return f"{self.account_id} {self.amount:+d}"


class PointsLot(models.Model):
    """Points that arrived together (an earn, a positive adjustment) and share one expiry date."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="points_lots")
    # The earn / positive adjustment that created the lot (or the merge transfer that carried it over).
    transaction = models.ForeignKey(PointsTransaction, on_delete=models.PROTECT, related_name="lots")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    earned_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")),
                                              name="loyalty_lot_remaining_in_range")]
        indexes = [models.Index(fields=["customer", "expires_at", "id"])]

    def __str__(self) -> str:
        return f"lot {self.remaining}/{self.amount} until {self.expires_at:%Y-%m-%d}"


class PointsLotUse(models.Model):
    """How much of a lot a transaction took (spend, expiry, reversal), so a returned spend restores the same lots."""

    lot = models.ForeignKey(PointsLot, on_delete=models.PROTECT, related_name="uses")
    transaction = models.ForeignKey(PointsTransaction, on_delete=models.PROTECT, related_name="lot_uses")
    amount = models.BigIntegerField()

    def __str__(self) -> str:
        return f"lot {self.lot_id} -{self.amount}"


class PointsWriteOff(models.Model):
    """Points an order refund should have taken back but could not (already spent or expired): forgiven.

    Also the idempotency marker of a reversal that took nothing, so a replayed OrderRefunded stays harmless.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    ref = models.CharField(max_length=128)
    earn = models.ForeignKey(PointsTransaction, on_delete=models.PROTECT, related_name="write_offs")
    points = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "ref"], name="loyalty_write_off_unique_ref")]

    def __str__(self) -> str:
        return f"write-off {self.points} ({self.ref})"


class TierBasis(models.TextChoices):
    GROWTH = "growth", _("成长值")
    SPEND = "spend", _("消费金额")


class LoyaltySettings(models.Model):
    """Per-workspace knobs; a workspace without a row uses the defaults below."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="loyalty_settings")
    # Points earned per yuan paid (OrderPaid), and growth value per yuan paid.
    earn_points_per_yuan = models.DecimalField(max_digits=8, decimal_places=2, default=1)
    growth_per_yuan = models.DecimalField(max_digits=8, decimal_places=2, default=1)
    # How many points deduct one yuan at checkout, and the largest share of an order points may pay.
    redeem_points_per_yuan = models.PositiveIntegerField(default=100)
    redeem_max_percent = models.PositiveSmallIntegerField(default=50)
    tier_basis = models.CharField(max_length=8, choices=TierBasis.choices, default=TierBasis.GROWTH)
    # Growth value / spend is counted over this many days back (0: since the first order).
    tier_window_days = models.PositiveIntegerField(default=365)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"loyalty settings {self.workspace_id}"


class TierCode(models.TextChoices):
    NORMAL = "normal", _("普通")
    SILVER = "silver", _("银卡")
    GOLD = "gold", _("金卡")
    DIAMOND = "diamond", _("钻石")


TIER_ORDER = (TierCode.NORMAL, TierCode.SILVER, TierCode.GOLD, TierCode.DIAMOND)


class TierLevel(models.Model):
    """A workspace's configuration of one tier (absent rows fall back to siyu.loyalty.tiers.DEFAULT_TIERS)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=8, choices=TierCode.choices)
    growth_threshold = models.PositiveBigIntegerField(default=0)
    spend_threshold_fen = models.PositiveBigIntegerField(default=0)
    discount_percent = models.PositiveSmallIntegerField(default=0)
    free_shipping = models.BooleanField(default=False)
    priority_service = models.BooleanField(default=False)
    exclusive_items = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "code"], name="loyalty_tier_level_unique"),
                       models.CheckConstraint(condition=Q(discount_percent__lte=90), name="loyalty_tier_discount_cap")]

    def __str__(self) -> str:
        return f"{self.code} @ {self.workspace_id}"


class GrowthEntry(models.Model):
    """Append-only growth value and spend: + on OrderPaid, − on OrderRefunded (and, later, growth tasks)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="growth_entries")
    source = models.CharField(max_length=16)  # order_paid / order_refunded / task
    ref = models.CharField(max_length=128)
    growth = models.BigIntegerField()
    spend_fen = models.BigIntegerField(default=0)
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "source", "ref"], name="loyalty_growth_unique")]
        indexes = [models.Index(fields=["customer", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.source} {self.growth:+d} ({self.ref})"


class CustomerTier(models.Model):
    """A customer's current tier (no row: 普通)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="tier")
    code = models.CharField(max_length=8, choices=TierCode.choices, default=TierCode.NORMAL)
    since = models.DateTimeField()
    evaluated_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "code"])]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.code}"


class TierChange(models.Model):
    """History: every upgrade and downgrade, with the numbers it was decided on."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tier_changes")
    from_code = models.CharField(max_length=8, choices=TierCode.choices)
    to_code = models.CharField(max_length=8, choices=TierCode.choices)
    direction = models.CharField(max_length=8)  # up / down
    growth_value = models.BigIntegerField(default=0)
    spend_fen = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=32, default="evaluation")
    at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["customer", "at"])]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.from_code} → {self.to_code}"
