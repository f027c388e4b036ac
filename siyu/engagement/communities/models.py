"""社群: a community is one group (usually a WeCom customer group) with a type, rules and members; its
messages (from the archive bridge or the event API), the moderation log, the weekly rhythm plan and the
KOC awards of each period."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.wechat.models import WeChatApp


class CommunityType(models.TextChoices):
    NEWCOMER = "newcomer", _("新人群")
    VIP = "vip", _("VIP群")
    CAMPAIGN = "campaign", _("活动群")
    EXCHANGE = "exchange", _("交流群")
    WELFARE = "welfare", _("福利群")
    INTEREST = "interest", _("兴趣群")
    HONOR = "honor", _("荣誉群")


class Community(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("群名称"), max_length=64)
    type = models.CharField(_("群类型"), max_length=16, choices=CommunityType.choices)
    # The WeCom customer group (chat_id) it is linked to; blank for a group tracked by hand.
    wecom_chat_id = models.CharField(max_length=64, blank=True, default="")
    app = models.ForeignKey(WeChatApp, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rules = models.TextField(_("群规"), blank=True, default="")
    active = models.BooleanField(default=True)
    # The staff member who runs the group in the console (service staff see the groups they own).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    # Expected daily messages; null means the type's default (domain.EXPECTED_DAILY_MESSAGES).
    expected_min = models.PositiveIntegerField(null=True, blank=True)
    expected_max = models.PositiveIntegerField(null=True, blank=True)
    # Violations (within 30 days) after which a member is always put forward for removal.
    escalate_after = models.PositiveIntegerField(default=3)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "wecom_chat_id"],
                                               condition=~models.Q(wecom_chat_id=""),
                                               name="community_wecom_chat_unique")]
        indexes = [models.Index(fields=["workspace", "type"])]

    def __str__(self) -> str:
        return self.name


class CommunityMember(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="members")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="community_memberships")
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)  # null: still a member
    member_id = models.CharField(max_length=64, blank=True, default="")  # external_userid in the group
    invited_by = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["community", "customer"], name="community_member_unique")]
        indexes = [models.Index(fields=["customer", "left_at"])]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.community_id}"


class RuleKind(models.TextChoices):
    KEYWORD = "keyword", _("违规关键词")
    LINK = "link", _("发链接")
    CARD = "card", _("二维码/小程序卡片")
    CONTACT = "contact", _("手机号/微信号")
    REPEAT = "repeat", _("重复刷屏")
    FLOOD = "flood", _("短时间大量发言")


class RuleAction(models.TextChoices):
    WARN = "warn", _("群内提醒")
    TAG = "tag", _("打违规标签")
    REMOVE = "remove", _("建任务移出群")


class CommunityRule(models.Model):
    """One structured rule of a group; ``threshold``/``window_seconds`` matter for repeat and flood."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="moderation_rules")
    kind = models.CharField(max_length=12, choices=RuleKind.choices)
    keywords = models.JSONField(default=list, blank=True)
    threshold = models.PositiveIntegerField(default=0)
    window_seconds = models.PositiveIntegerField(default=0)
    actions = models.JSONField(default=list, blank=True)  # subset of RuleAction values
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["community", "kind"], name="community_rule_unique")]

    def __str__(self) -> str:
        return f"{self.community_id}:{self.kind}"


class MessageSource(models.TextChoices):
    BRIDGE = "bridge", _("会话存档桥接")
    EVENT = "event", _("事件接口")


class GroupMessage(models.Model):
    """A message said in a group; one row per (workspace, msg_id) whatever path brought it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="messages")
    msg_id = models.CharField(max_length=96)
    sender_id = models.CharField(max_length=64, blank=True, default="")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_staff = models.BooleanField(default=False)
    msg_type = models.CharField(max_length=16, default="text")
    content = models.TextField(blank=True, default="")
    reply_to = models.CharField(max_length=96, blank=True, default="")
    sent_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=MessageSource.choices, default=MessageSource.BRIDGE)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "msg_id"], name="community_message_unique")]
        indexes = [models.Index(fields=["community", "sent_at"]), models.Index(fields=["customer", "sent_at"])]

    def __str__(self) -> str:
        return self.msg_id


class ModerationRecord(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="moderation_records")
    message = models.ForeignKey(GroupMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sender_id = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=12, choices=RuleKind.choices)
    excerpt = models.CharField(max_length=200, blank=True, default="")
    actions = models.JSONField(default=list, blank=True)  # what was done: warn / tag / remove
    violation_no = models.PositiveIntegerField(default=1)  # the member's count within 30 days, this one included
    escalated = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "kind"], name="community_moderation_unique")]
        indexes = [models.Index(fields=["workspace", "created_at"]), models.Index(fields=["customer", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.sender_id}"


class RhythmAction(models.TextChoices):
    TASK = "task", _("员工任务")
    MASS_SEND = "mass_send", _("企业微信群发（群主确认）")


EVERY_DAY = 7


class RhythmSlot(models.Model):
    """One item of a group type's weekly plan: weekday 0 (Monday) … 6 (Sunday), or 7 for every day."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community_type = models.CharField(max_length=16, choices=CommunityType.choices)
    weekday = models.PositiveSmallIntegerField()
    at = models.TimeField()  # Asia/Shanghai
    theme = models.CharField(max_length=64)
    content = models.TextField(blank=True, default="")
    action = models.CharField(max_length=10, choices=RhythmAction.choices, default=RhythmAction.TASK)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["weekday", "at", "pk"]
        indexes = [models.Index(fields=["workspace", "community_type"])]

    def __str__(self) -> str:
        return f"{self.community_type} {self.weekday} {self.at} {self.theme}"


class RhythmRun(models.Model):
    """What one slot produced for one group on one (Shanghai) day — at most one, by the unique key."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="rhythm_runs")
    slot = models.ForeignKey(RhythmSlot, on_delete=models.CASCADE, related_name="runs")
    day = models.DateField()
    planned_at = models.DateTimeField()
    outcome = models.CharField(max_length=12)  # task | mass_send
    task_id = models.BigIntegerField(null=True, blank=True)
    msgid = models.CharField(max_length=64, blank=True, default="")
    error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["community", "slot", "day"], name="community_rhythm_run_unique")]

    def __str__(self) -> str:
        return f"{self.community_id}/{self.slot_id}/{self.day}"


class CommunitySettings(models.Model):
    """Workspace settings of KOC identification and incentives (defaults from seed 002)."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    koc_percent = models.PositiveSmallIntegerField(default=15)
    step_points = models.JSONField(default=list)  # points of steps 1, 2, 3
    coupon_template_id = models.BigIntegerField(null=True, blank=True)  # step 2's coupon
    honor_community = models.ForeignKey(Community, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    bridge_key_id = models.CharField(max_length=32, blank=True, default="")
    bridge_secret_enc = models.BinaryField(null=True, blank=True)

    def __str__(self) -> str:
        return f"communities settings {self.workspace_id}"


class KocAward(models.Model):
    """A customer marked KOC for a period, in one group or (community null) across the workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=7)  # YYYY-MM (Shanghai)
    score = models.IntegerField()
    rank = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "customer", "period"], name="community_koc_unique"),
            models.UniqueConstraint(fields=["workspace", "customer", "period"], condition=models.Q(community=None),
                                    name="community_koc_workspace_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "period"])]

    def __str__(self) -> str:
        return f"KOC {self.customer_id} {self.period}"


class KocIncentive(models.Model):
    """The incentive step given to one KOC for one period — once: the unique key makes a replay a no-op."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=7)
    step = models.PositiveSmallIntegerField()  # 1 内容共创 · 2 福利优先 · 3 商业分成
    points = models.PositiveIntegerField(default=0)
    coupons = models.PositiveIntegerField(default=0)
    task_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "customer", "period"],
                                               name="community_koc_incentive_unique")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.period} step {self.step}"
