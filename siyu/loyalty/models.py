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


# A lottery prize of points is an earn with reason "lottery" (its cost is a burn with the same reason).
EARN_REASONS = frozenset({Reason.PURCHASE, Reason.CHECKIN, Reason.SHARE, Reason.REVIEW, Reason.TASK,
                          Reason.LOTTERY})
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


# ------------------------------------------------------------------------------------- membership activities
# Check-in, share and review rewards, growth tasks (成长任务), the exchange mall and the lottery, and the
# notices of tier changes. Points always move through the ledger above (siyu.loyalty.points); these rows say
# why, and their unique keys make every reward happen exactly once.


class MemberRules(models.Model):
    """Per-workspace rules of the point sources and burns; a workspace without a row uses these defaults."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="member_rules")
    checkin_enabled = models.BooleanField(default=True)
    checkin_points = models.PositiveIntegerField(default=5)
    # {"streak day": bonus points}: a bonus on the day a streak reaches that length, e.g. {"7": 20, "30": 100}.
    checkin_streak_bonus = models.JSONField(default=dict, blank=True)
    share_points = models.PositiveIntegerField(default=2)
    share_daily_cap = models.PositiveSmallIntegerField(default=3)
    review_points = models.PositiveIntegerField(default=10)
    review_min_chars = models.PositiveSmallIntegerField(default=5)
    review_max_chars = models.PositiveSmallIntegerField(default=500)
    lottery_enabled = models.BooleanField(default=True)
    lottery_cost = models.PositiveIntegerField(default=50)
    lottery_daily_limit = models.PositiveSmallIntegerField(default=5)
    # Tier-change notices: a 公众号 template (to followers) and/or a 小程序 subscribe-message template.
    tier_notice_template_id = models.CharField(max_length=64, blank=True, default="")
    tier_notice_subscribe_template_id = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"member rules {self.workspace_id}"


class CheckIn(models.Model):
    """One check-in per customer per Shanghai day (the unique key makes concurrent taps one check-in)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="check_ins")
    day = models.DateField()
    streak = models.PositiveIntegerField()
    points = models.PositiveIntegerField(default=0)
    bonus = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "day"], name="loyalty_checkin_once_a_day")]
        indexes = [models.Index(fields=["workspace", "day"])]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.day} ×{self.streak}"


class ShareReward(models.Model):
    """A share of a product or page; rewarded while the day's cap lasts (points 0 beyond it)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    ref = models.CharField(max_length=128)
    target = models.CharField(max_length=200)
    day = models.DateField()
    points = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "customer", "ref"], name="loyalty_share_unique")]
        indexes = [models.Index(fields=["customer", "day"])]

    def __str__(self) -> str:
        return f"share {self.target} ({self.points})"


class TaskKind(models.TextChoices):
    NEWBIE = "newbie", _("新手任务")
    DAILY = "daily", _("日常任务")


class TaskTrigger(models.TextChoices):
    PROFILE_COMPLETED = "profile_completed", _("完善资料")
    FIRST_ORDER = "first_order", _("首单购买")
    COMMUNITY_JOINED = "community_joined", _("加入社群")
    CHECKIN = "checkin", _("签到")
    BROWSE = "browse", _("浏览商品")
    SHARE = "share", _("分享")


class GrowthTask(models.Model):
    """A growth task (成长任务): done after ``target`` distinct steps of its trigger; the reward is claimed once
    ever (新手) or once per Shanghai day (日常)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=TaskKind.choices)
    trigger = models.CharField(max_length=24, choices=TaskTrigger.choices)
    title = models.CharField(max_length=64)
    target = models.PositiveSmallIntegerField(default=1)
    reward_points = models.PositiveIntegerField(default=0)
    reward_growth = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    sort = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "sort", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "trigger"], name="loyalty_task_unique"),
                       models.CheckConstraint(condition=Q(target__gte=1), name="loyalty_task_target_positive")]

    def __str__(self) -> str:
        return self.title


class TaskProgress(models.Model):
    """A customer's progress on a task in one period ("once" for 新手, the Shanghai day for 日常)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(GrowthTask, on_delete=models.CASCADE, related_name="progress")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="task_progress")
    period = models.CharField(max_length=10)
    count = models.PositiveIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "customer", "period"], name="loyalty_progress_unique")]
        indexes = [models.Index(fields=["workspace", "period"])]

    def __str__(self) -> str:
        return f"{self.task_id}/{self.customer_id}/{self.period}: {self.count}"


class TaskStep(models.Model):
    """One distinct step counted towards a progress (a product viewed, a day checked in): a replayed event
    finds its step and counts nothing."""

    progress = models.ForeignKey(TaskProgress, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=128)
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["progress", "key"], name="loyalty_task_step_unique")]

    def __str__(self) -> str:
        return self.key


class RewardKind(models.TextChoices):
    COUPON = "coupon", _("优惠券")
    GIFT = "gift", _("实物礼品")
    POINTS = "points", _("积分")
    NOTHING = "nothing", _("谢谢参与")


class ExchangeItem(models.Model):
    """An item of the points mall: a coupon (of a promotions coupon template) or a gift, for points."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=RewardKind.choices)
    coupon_template_id = models.BigIntegerField(null=True, blank=True)  # commerce's id: loyalty sits below it
    points_cost = models.PositiveIntegerField()
    stock = models.PositiveIntegerField(default=0)
    per_customer_limit = models.PositiveSmallIntegerField(default=1)  # 0 = no limit
    is_active = models.BooleanField(default=True)
    sort = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort", "pk"]
        constraints = [models.CheckConstraint(condition=Q(points_cost__gte=1), name="loyalty_exchange_cost_positive"),
                       models.CheckConstraint(condition=Q(kind__in=["coupon", "gift"]),
                                              name="loyalty_exchange_kind_valid")]

    def __str__(self) -> str:
        return self.title


class ExchangeRedemption(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    item = models.ForeignKey(ExchangeItem, on_delete=models.PROTECT, related_name="redemptions")
    ref = models.CharField(max_length=96)
    points = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "ref"], name="loyalty_redemption_unique_ref")]
        indexes = [models.Index(fields=["item", "customer"])]

    def __str__(self) -> str:
        return f"{self.item_id} for {self.points} ({self.ref})"


class LotteryPrize(models.Model):
    """A row of the prize table: odds as an integer weight, stock that never goes below zero."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=RewardKind.choices)
    weight = models.PositiveIntegerField()
    stock = models.PositiveIntegerField(null=True, blank=True)  # None: unlimited (e.g. 谢谢参与)
    points = models.PositiveIntegerField(default=0)
    coupon_template_id = models.BigIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    sort = models.IntegerField(default=0)

    class Meta:
        ordering = ["sort", "pk"]

    def __str__(self) -> str:
        return self.name


class LotteryDraw(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    ref = models.CharField(max_length=96)
    prize = models.ForeignKey(LotteryPrize, null=True, blank=True, on_delete=models.PROTECT, related_name="draws")
    cost = models.PositiveIntegerField()
    day = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "ref"], name="loyalty_draw_unique_ref")]
        indexes = [models.Index(fields=["customer", "day"])]

    def __str__(self) -> str:
        return f"draw {self.ref}: {self.prize_id}"


class TierNotice(models.Model):
    """The notice of one tier change to the customer: one row per change (idempotent), with how it went."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    change = models.OneToOneField(TierChange, on_delete=models.CASCADE, related_name="notice")
    channel = models.CharField(max_length=12, blank=True, default="")  # official / miniapp / "" (none)
    status = models.CharField(max_length=12)  # sent / queued / skipped / failed
    detail = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"notice {self.change_id}: {self.status}"
