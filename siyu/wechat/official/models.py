"""公众号 data: per-account settings (type, replies, menu), keyword rules, channel QR codes, followers, and the
log of template / mass / customer-service sends with one row per recipient."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.wechat.models import WeChatApp


class AccountType(models.TextChoices):
    SUBSCRIPTION = "subscription", _("订阅号")
    SERVICE = "service", _("服务号")


class OfficialSettings(models.Model):
    """What Siyu knows about one 公众号 beyond its credentials: its type (which decides mass-send quotas),
    whether it is bound to an open platform (so ``user/info`` carries a unionid), replies and the menu."""

    app = models.OneToOneField(WeChatApp, on_delete=models.CASCADE, related_name="official_settings")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    account_type = models.CharField(_("账号类型"), max_length=16, choices=AccountType.choices,
                                    default=AccountType.SERVICE)
    unionid_access = models.BooleanField(_("已绑定开放平台（可获取 UnionID）"), default=True)
    welcome_reply = models.TextField(_("关注欢迎语"), blank=True, default="")
    default_reply = models.TextField(_("默认回复"), blank=True, default="")
    menu = models.JSONField(_("菜单草稿"), default=dict, blank=True)
    menu_published_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.app_id} {self.account_type}"


class MatchKind(models.TextChoices):
    EXACT = "exact", _("完全匹配")
    CONTAINS = "contains", _("包含")


class AutoReplyRule(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="auto_reply_rules")
    keyword = models.CharField(_("关键词"), max_length=64)
    match = models.CharField(_("匹配方式"), max_length=16, choices=MatchKind.choices, default=MatchKind.EXACT)
    reply_text = models.TextField(_("回复内容"))
    priority = models.IntegerField(_("优先级"), default=0)
    enabled = models.BooleanField(_("启用"), default=True)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return f"{self.keyword} ({self.match})"


class QrKind(models.TextChoices):
    TEMPORARY = "temporary", _("临时")
    PERMANENT = "permanent", _("永久")


class ChannelQrCode(models.Model):
    """A parametric QR code (公众号带参二维码) whose scene is bound to a channel (SPEC T2)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="qr_codes")
    name = models.CharField(_("名称"), max_length=64)
    channel = models.CharField(_("渠道"), max_length=32)
    kind = models.CharField(_("类型"), max_length=16, choices=QrKind.choices)
    scene_str = models.CharField(_("场景值"), max_length=64)
    expire_seconds = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ticket = models.CharField(max_length=256)
    url = models.CharField(max_length=512)
    scans = models.PositiveIntegerField(_("扫码次数"), default=0)
    subscribes = models.PositiveIntegerField(_("关注人数"), default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["app", "scene_str"], name="official_qr_scene_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.scene_str})"


class Follower(models.Model):
    """One openid of one 公众号 as Siyu saw it through callbacks: following or not, and when they last wrote
    (the 48-hour customer-service window opens there)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="followers")
    openid = models.CharField(max_length=64)
    unionid = models.CharField(max_length=64, blank=True, default="")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subscribed = models.BooleanField(default=False)
    subscribed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    last_interaction_at = models.DateTimeField(null=True, blank=True)
    qr_code = models.ForeignKey(ChannelQrCode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "openid"], name="official_follower_unique")]
        indexes = [models.Index(fields=["app", "subscribed"])]

    def __str__(self) -> str:
        return self.openid


class SendKind(models.TextChoices):
    TEMPLATE = "template", _("模板消息")
    MASS = "mass", _("群发")
    CUSTOM = "custom", _("客服消息")


class SendStatus(models.TextChoices):
    QUEUED = "queued", _("排队中")
    RETRYING = "retrying", _("等待重试")
    SENT = "sent", _("已发送")
    PARTIAL = "partial", _("部分失败")
    FAILED = "failed", _("失败")


class MessageSend(models.Model):
    """One send an operator asked for. The Huey task works through its pending recipients; a rate limit
    puts it in ``retrying`` with ``next_attempt_at`` (and an ApiIssue), never silently dropped."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="official_sends")
    kind = models.CharField(max_length=16, choices=SendKind.choices)
    status = models.CharField(max_length=16, choices=SendStatus.choices, default=SendStatus.QUEUED)
    target = models.JSONField(default=dict)  # {"to_all": true} | {"tag_id": 3} | {"openids": [...]}
    content = models.JSONField(default=dict)  # {"text": ...} | {"template_id", "data", "url"}
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=512, blank=True, default="")
    wechat_msg_id = models.CharField(max_length=64, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["app", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.status}"


class RecipientStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENT = "sent", _("已发送")
    FAILED = "failed", _("失败")
    UNKNOWN = "unknown", _("结果未知")  # the request timed out: WeChat may have delivered it; never resent


class MessageRecipient(models.Model):
    send = models.ForeignKey(MessageSend, on_delete=models.CASCADE, related_name="recipients")
    openid = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=RecipientStatus.choices, default=RecipientStatus.PENDING)
    errcode = models.IntegerField(null=True, blank=True)
    errmsg = models.CharField(max_length=256, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["send", "openid"], name="official_recipient_unique")]
        indexes = [models.Index(fields=["openid", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.send_id}:{self.openid} {self.status}"
