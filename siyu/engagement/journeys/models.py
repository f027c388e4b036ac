"""Journeys: a versioned definition (trigger + a graph of steps), one run per customer and entry, one execution
row per (run, step) and one outbox message per (run, step) — the unique keys are what make a replayed trigger,
a retried worker or a crashed send harmless (see ``engine`` and ``delivery``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    ACTIVE = "active", _("运行中")
    PAUSED = "paused", _("已暂停")
    ARCHIVED = "archived", _("已归档")


class Journey(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=255, blank=True, default="")
    status = models.CharField(max_length=10, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT)
    definition = models.JSONField(default=dict)  # the draft being edited
    version = models.PositiveIntegerField(default=0)  # the last activated version (0: never activated)
    trigger_type = models.CharField(max_length=16, blank=True, default="")  # of the active version, for lookups
    activated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="journey_name_unique")]
        indexes = [models.Index(fields=["workspace", "status", "trigger_type"])]

    def __str__(self) -> str:
        return self.name


class JourneyVersion(models.Model):
    """The definition as activated: runs keep following the version they entered with."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    activated_at = models.DateTimeField()
    activated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["journey", "version"], name="journey_version_unique")]

    def __str__(self) -> str:
        return f"journey {self.journey_id} v{self.version}"


class RunStatus(models.TextChoices):
    ACTIVE = "active", _("进行中")
    COMPLETED = "completed", _("已完成")
    EXITED = "exited", _("已退出")
    FAILED = "failed", _("出错")


class JourneyRun(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="runs")
    version = models.PositiveIntegerField()
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    entry_key = models.CharField(max_length=96)  # "once", or the event / date / move that let them in
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    current_step = models.CharField(max_length=32, blank=True, default="")
    next_at = models.DateTimeField(null=True, blank=True)  # when the current step is due (null: finished)
    variant = models.CharField(max_length=32, blank=True, default="")  # A/B branch taken (first split)
    route = models.CharField(max_length=8, blank=True, default="")  # 721 routing: auto | junior | expert
    entered_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["journey", "customer", "entry_key"], name="journey_run_unique")]
        indexes = [models.Index(fields=["status", "next_at"]), models.Index(fields=["journey", "current_step"]),
                   models.Index(fields=["customer", "entered_at"])]

    def __str__(self) -> str:
        return f"run {self.pk} of journey {self.journey_id} for {self.customer_id}"


class StepExecution(models.Model):
    """A step done for a run — inserted in the transaction that does the step, so it happens once."""

    run = models.ForeignKey(JourneyRun, on_delete=models.CASCADE, related_name="executions")
    step_id = models.CharField(max_length=32)
    step_type = models.CharField(max_length=16)
    outcome = models.CharField(max_length=32, blank=True, default="")  # yes/no, branch, sent, capped, skipped…
    detail = models.JSONField(default=dict, blank=True)
    executed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "step_id"], name="journey_step_once")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step_id}: {self.outcome}"


class Channel(models.TextChoices):
    OFFICIAL_TEMPLATE = "official_template", _("公众号模板消息")
    OFFICIAL_CUSTOM = "official_custom", _("公众号客服消息")
    MINIAPP_SUBSCRIBE = "miniapp_subscribe", _("小程序订阅消息")
    WECOM_MASS = "wecom_mass", _("企业微信群发（员工确认）")
    WEBHOOK = "webhook", _("Webhook")


class MessageStatus(models.TextChoices):
    PLANNED = "planned", _("待发送")
    DEFERRED = "deferred", _("免打扰顺延")
    SENDING = "sending", _("发送中")
    SENT = "sent", _("已发送")
    UNKNOWN = "unknown", _("结果未知（不重发）")
    FAILED = "failed", _("失败")
    CAPPED = "capped", _("超出频次上限")
    SUPPRESSED = "suppressed", _("未发送（退订/未关注）")


# Messages that take a place under the frequency caps (failed, capped and suppressed ones do not).
CAP_COUNTED = (MessageStatus.PLANNED, MessageStatus.DEFERRED, MessageStatus.SENDING, MessageStatus.SENT,
               MessageStatus.UNKNOWN)


class JourneyMessage(models.Model):
    """The outbox and message log: one row per (run, step); the delivery worker sends it at most once."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="messages")
    run = models.ForeignKey(JourneyRun, on_delete=models.CASCADE, related_name="messages")
    step_id = models.CharField(max_length=32)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.PLANNED)
    idempotency_key = models.CharField(max_length=64, unique=True)
    payload = models.JSONField(default=dict)
    due_at = models.DateTimeField()
    cap_day = models.DateField()  # the Shanghai day the message counts against
    attempts = models.PositiveSmallIntegerField(default=0)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_ref = models.CharField(max_length=64, blank=True, default="")  # msgid / mass send id / HTTP status
    error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "step_id"], name="journey_message_once")]
        indexes = [models.Index(fields=["status", "due_at"]),
                   models.Index(fields=["customer", "channel", "cap_day"]),
                   models.Index(fields=["journey", "status"])]

    def __str__(self) -> str:
        return f"{self.channel} to {self.customer_id}: {self.status}"


class ContactLimiter(models.Model):
    """One row per (customer, channel), locked while a message is planned: caps hold under concurrent workers."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=20)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "channel"], name="journey_limiter_unique")]

    def __str__(self) -> str:
        return f"{self.customer_id}/{self.channel}"


class JourneySettings(models.Model):
    """Per-workspace guards (defaults in ``rules.DEFAULT_CAPS`` / ``DEFAULT_QUIET``)."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    caps = models.JSONField(default=dict, blank=True)  # {channel: {"day": n, "week": n}}
    quiet_start = models.CharField(max_length=5, default="22:00")
    quiet_end = models.CharField(max_length=5, default="08:00")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"journey settings of {self.workspace_id}"
