"""The service bot's data: per-workspace settings (threshold), FAQ entries, keyword rules, and the
conversations it holds with customers on a channel (公众号 openid, WeCom 微信客服 external user), message by
message with who spoke (customer, bot, staff) and why the bot said what it said.

An incoming message is stored once: ``(workspace, channel, external_id)`` is unique, so WeChat's retries of
a callback and a re-run Huey task find the row and answer nothing twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.wechat.models import WeChatApp

DEFAULT_THRESHOLD = 0.45


class ServiceSettings(models.Model):
    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(_("启用智能客服"), default=False)  # off until an operator turns it on
    threshold = models.FloatField(_("置信度阈值"), default=DEFAULT_THRESHOLD)
    handoff_reply = models.CharField(_("转人工提示"), max_length=500, blank=True,
                                     default="您的问题已转给人工客服，我们会尽快回复您。")
    handoff_sla_minutes = models.PositiveIntegerField(_("人工响应时限（分钟）"), default=30)
    priority_sla_minutes = models.PositiveIntegerField(_("优先客服时限（分钟）"), default=10)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"service settings of workspace {self.workspace_id}"


class FaqEntry(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    question = models.CharField(_("标准问题"), max_length=200)
    variants = models.JSONField(_("相似问法"), default=list, blank=True)  # list[str]
    synonyms = models.JSONField(_("同义词"), default=list, blank=True)  # list[str], also taught to the tokenizer
    answer = models.TextField(_("答案"))
    enabled = models.BooleanField(default=True)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "enabled"])]

    def __str__(self) -> str:
        return self.question


class MatchKind(models.TextChoices):
    EXACT = "exact", _("精确匹配")
    CONTAINS = "contains", _("包含")
    REGEX = "regex", _("正则")


class KeywordRule(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    pattern = models.CharField(_("关键词"), max_length=200)
    match = models.CharField(_("匹配方式"), max_length=8, choices=MatchKind.choices, default=MatchKind.CONTAINS)
    reply = models.TextField(_("回复"))
    priority = models.IntegerField(_("优先级"), default=0)
    enabled = models.BooleanField(default=True)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.match}:{self.pattern}"


class Channel(models.TextChoices):
    OFFICIAL = "official", _("公众号")
    WECOM_KF = "wecom_kf", _("微信客服")


class ConversationStatus(models.TextChoices):
    BOT = "bot", _("机器人接待")
    HANDOFF = "handoff", _("已转人工")


class Conversation(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=12, choices=Channel.choices)
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    peer = models.CharField(max_length=64)  # openid (公众号) or external_userid (微信客服)
    account = models.CharField(max_length=64, blank=True, default="")  # the 微信客服 open_kfid
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=8, choices=ConversationStatus.choices, default=ConversationStatus.BOT)
    handoff_task_id = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    last_message_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "channel", "account", "peer"],
                                               name="service_conversation_unique")]
        indexes = [models.Index(fields=["workspace", "customer", "last_message_at"])]

    def __str__(self) -> str:
        return f"{self.channel}:{self.peer}"


class Direction(models.TextChoices):
    IN = "in", _("收到")
    OUT = "out", _("发出")


class Sender(models.TextChoices):
    CUSTOMER = "customer", _("客户")
    BOT = "bot", _("机器人")
    STAFF = "staff", _("员工")


class Resolution(models.TextChoices):
    KEYWORD = "keyword", _("关键词")
    FAQ = "faq", _("知识库")
    HANDOFF = "handoff", _("转人工")
    DEFERRED = "deferred", _("公众号已回复")  # the official account's own keyword rule answered at once
    STAFF = "staff", _("人工回复")


class ConversationMessage(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    channel = models.CharField(max_length=12, choices=Channel.choices)
    external_id = models.CharField(max_length=128, blank=True, default="")  # WeChat's MsgId for incoming ones
    direction = models.CharField(max_length=4, choices=Direction.choices)
    sender = models.CharField(max_length=8, choices=Sender.choices)
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    text = models.TextField()
    resolution = models.CharField(max_length=8, choices=Resolution.choices, blank=True, default="")
    faq = models.ForeignKey(FaqEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule = models.ForeignKey(KeywordRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    score = models.FloatField(null=True, blank=True)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    delivery = models.CharField(max_length=64, blank=True, default="")  # how an outgoing one left: "mp-send:12" …
    delivery_error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "channel", "external_id"],
                                               condition=~Q(external_id=""), name="service_message_once")]
        indexes = [models.Index(fields=["conversation", "created_at"]),
                   models.Index(fields=["workspace", "direction", "created_at"])]

    def __str__(self) -> str:
        return f"{self.direction}:{self.sender}:{self.text[:20]}"


class KfCursor(models.Model):
    """Where this workspace's reading of a 微信客服 account stands (``kf/sync_msg`` cursor)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    open_kfid = models.CharField(max_length=64)
    cursor = models.CharField(max_length=128, blank=True, default="")
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "open_kfid"], name="service_kf_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.open_kfid}@{self.cursor}"
