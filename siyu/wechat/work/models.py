"""企业微信 as Siyu records it: staff, their relations with customers (external contacts), 「联系我」
codes per channel with staff rotation and daily caps, the corp tag library mirrored into Siyu tags,
customer groups and members, mass-send and moments tasks, and transfers of a leaving member's customers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer, Tag
from siyu.wechat.models import WeChatApp

DEFAULT_DAILY_CAP = 100


class StaffStatus(models.TextChoices):
    ACTIVE = "active", _("在职")
    LEFT = "left", _("已离职")


class Staff(models.Model):
    """A member of the corp (企业成员) who has external contacts."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="work_staff")
    userid = models.CharField(max_length=64)
    name = models.CharField(_("姓名"), max_length=64, blank=True, default="")
    status = models.CharField(max_length=8, choices=StaffStatus.choices, default=StaffStatus.ACTIVE)
    left_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "userid"], name="work_staff_unique")]

    def __str__(self) -> str:
        return f"{self.name or self.userid} ({self.userid})"


class ContactWay(models.Model):
    """A 「联系我」 code of one channel (SPEC T2). ``state`` is sent back in every add callback and names
    the code, hence the channel; staff take turns, each up to a daily cap."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="work_contact_ways")
    name = models.CharField(_("名称"), max_length=30)
    channel = models.CharField(_("渠道"), max_length=32)
    state = models.CharField(max_length=30)
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.URLField(max_length=500, blank=True, default="")
    welcome_text = models.TextField(_("欢迎语"), blank=True, default="")
    skip_verify = models.BooleanField(_("无需验证"), default=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    fallback = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text=_("所有成员达到上限时接待的成员"))
    active = models.BooleanField(default=True)
    rotation_synced = models.JSONField(default=list, blank=True)  # userids WeCom currently rotates over
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "state"], name="work_contact_way_state_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class ContactWayStaff(models.Model):
    contact_way = models.ForeignKey(ContactWay, on_delete=models.CASCADE, related_name="members")
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="+")
    daily_cap = models.PositiveIntegerField(_("每日上限"), default=DEFAULT_DAILY_CAP)
    position = models.PositiveIntegerField(default=0)
    paused_on = models.DateField(null=True, blank=True)  # the Shanghai day the cap was reached

    class Meta:
        ordering = ["position", "pk"]
        constraints = [models.UniqueConstraint(fields=["contact_way", "staff"], name="work_way_staff_unique")]

    def __str__(self) -> str:
        return f"{self.contact_way_id}/{self.staff_id} cap {self.daily_cap}"


class RelationStatus(models.TextChoices):
    ACTIVE = "active", _("正常")
    REMOVED = "removed", _("已删除")
    TRANSFERRED = "transferred", _("已转接")


class ContactRelation(models.Model):
    """One staff member ↔ one external contact (a customer), as WeCom reports it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="relations")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    external_userid = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=RelationStatus.choices, default=RelationStatus.ACTIVE)
    state = models.CharField(max_length=30, blank=True, default="")
    contact_way = models.ForeignKey(ContactWay, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="relations")
    remark = models.CharField(max_length=64, blank=True, default="")
    added_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.CharField(max_length=12, blank=True, default="")  # customer | staff | transfer
    welcome_code = models.CharField(max_length=128, blank=True, default="")
    welcomed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "staff", "external_userid"],
                                               name="work_relation_unique")]
        indexes = [models.Index(fields=["app", "external_userid"]), models.Index(fields=["contact_way", "added_at"]),
                   models.Index(fields=["customer"])]

    def __str__(self) -> str:
        return f"{self.staff_id}↔{self.external_userid} {self.status}"


class WorkTag(models.Model):
    """A tag of the corp library (企业客户标签) and the Siyu tag mirroring it (group "企业微信")."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="work_tags")
    wecom_id = models.CharField(max_length=64)
    wecom_group_id = models.CharField(max_length=64)
    group_name = models.CharField(max_length=30)
    name = models.CharField(max_length=30)
    tag = models.ForeignKey(Tag, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "wecom_id"], name="work_tag_unique")]

    def __str__(self) -> str:
        return f"{self.group_name}/{self.name}"


class RelationTag(models.Model):
    """A corp tag WeCom has on one relation, as last seen or set by Siyu (the base of two-way sync)."""

    relation = models.ForeignKey(ContactRelation, on_delete=models.CASCADE, related_name="wecom_tags")
    work_tag = models.ForeignKey(WorkTag, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["relation", "work_tag"], name="work_relation_tag_unique")]

    def __str__(self) -> str:
        return f"{self.relation_id}:{self.work_tag_id}"


class CustomerGroup(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="work_groups")
    chat_id = models.CharField(max_length=64)
    name = models.CharField(max_length=128, blank=True, default="")
    owner_userid = models.CharField(max_length=64, blank=True, default="")
    dismissed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)  # in WeCom
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "chat_id"], name="work_group_unique")]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupMember(models.Model):
    group = models.ForeignKey(CustomerGroup, on_delete=models.CASCADE, related_name="members")
    member_id = models.CharField(max_length=64)  # userid (staff) or external_userid
    is_staff = models.BooleanField(default=False)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    joined_at = models.DateTimeField(null=True, blank=True)
    join_scene = models.IntegerField(default=0)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "member_id"], name="work_group_member_unique")]

    def __str__(self) -> str:
        return f"{self.group_id}:{self.member_id}"


class MassSendStatus(models.TextChoices):
    QUEUED = "queued", _("排队中（接口限流，稍后重试）")
    CREATED = "created", _("已创建，等待成员确认")
    FINISHED = "finished", _("成员均已发送")
    FAILED = "failed", _("创建失败")


class MassSend(models.Model):
    """A 企业群发 task: WeCom only creates it; each staff member confirms before anything is sent."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    msgid = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, choices=MassSendStatus.choices, default=MassSendStatus.QUEUED)
    error = models.CharField(max_length=255, blank=True, default="")
    skipped_over_limit = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"群发 {self.pk} {self.status}"


class MassSendStaff(models.Model):
    mass_send = models.ForeignKey(MassSend, on_delete=models.CASCADE, related_name="staff_tasks")
    userid = models.CharField(max_length=64)
    sent = models.BooleanField(default=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mass_send", "userid"], name="work_mass_staff_unique")]

    def __str__(self) -> str:
        return f"{self.mass_send_id}:{self.userid}"


class RecipientStatus(models.IntegerChoices):
    PENDING = 0, _("待成员确认")
    SENT = 1, _("已送达")
    NOT_FRIEND = 2, _("已非好友，未发送")
    OVER_LIMIT = 3, _("已收到其他群发，未发送")


class MassSendRecipient(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    mass_send = models.ForeignKey(MassSend, on_delete=models.CASCADE, related_name="recipients")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    external_userid = models.CharField(max_length=64)
    userid = models.CharField(max_length=64, blank=True, default="")
    status = models.SmallIntegerField(choices=RecipientStatus.choices, default=RecipientStatus.PENDING)
    month = models.CharField(max_length=7)  # YYYY-MM in Shanghai: the month the message counts for
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mass_send", "external_userid"], name="work_recipient_unique")]
        indexes = [models.Index(fields=["workspace", "customer", "month"])]

    def __str__(self) -> str:
        return f"{self.mass_send_id}:{self.external_userid} {self.status}"


class MomentTask(models.Model):
    """A 客户朋友圈 task: staff members publish it from their WeCom client."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    senders = models.JSONField(default=list, blank=True)
    jobid = models.CharField(max_length=64, blank=True, default="")
    moment_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, default="queued")  # queued | running | done | failed
    invalid_senders = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"朋友圈 {self.pk} {self.status}"


class TransferStatus(models.IntegerChoices):
    REQUEST_FAILED = 0, _("提交失败")
    DONE = 1, _("接替完毕")
    WAITING = 2, _("等待接替")
    REFUSED = 3, _("客户拒绝")
    TAKEOVER_FULL = 4, _("接替成员客户已达上限")


class Transfer(models.Model):
    """One customer of a leaving member handed to another (在职/离职继承), as requested and as it ended."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    handover = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="+")
    takeover = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="+")
    external_userid = models.CharField(max_length=64)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.SmallIntegerField(choices=TransferStatus.choices, default=TransferStatus.WAITING)
    errcode = models.IntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["app", "handover", "status"])]

    def __str__(self) -> str:
        return f"{self.handover_id}→{self.takeover_id} {self.external_userid} {self.status}"
