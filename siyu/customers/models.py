"""Customers, their identities, tags, consent records, merge history and the append-only event log.

Events point at the *identity* that was observed, never at a customer: a merge or un-merge moves
identities between customers, so every event always belongs to exactly one live customer without the
event table ever being rewritten (it stays append-only and partition-friendly).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.crypto import decrypt_text
from siyu.core.models import Workspace


class IdentityKind(models.TextChoices):
    UNIONID = "unionid", "UnionID"
    OPENID = "openid", "OpenID"
    EXTERNAL_USERID = "external_userid", _("企业微信外部联系人")
    PHONE = "phone", _("手机号")
    DEVICE = "device", _("设备")
    LEAD = "lead", _("外部平台线索")


# Identities that prove two profiles are one person (issue 2: same unionid, same phone hash).
STRONG_KINDS = frozenset({IdentityKind.UNIONID, IdentityKind.PHONE})
# Identities a household or a shop counter may share: never a reason to move or merge anything.
WEAK_KINDS = frozenset({IdentityKind.DEVICE})
# Which identity names an observation when it carries several.
KIND_RANK = {
    IdentityKind.UNIONID: 0,
    IdentityKind.PHONE: 1,
    IdentityKind.EXTERNAL_USERID: 2,
    IdentityKind.OPENID: 3,
    IdentityKind.LEAD: 4,
    IdentityKind.DEVICE: 5,
}


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", _("正常")
    MERGED = "merged", _("已合并")


class Customer(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="customers")
    status = models.CharField(max_length=8, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Personal data: AES-GCM ciphertext plus a keyed hash for exact look-up (siyu.core.crypto).
    name_enc = models.BinaryField(null=True, blank=True)
    name_hash = models.CharField(max_length=64, blank=True, default="")
    phone_enc = models.BinaryField(null=True, blank=True)
    phone_hash = models.CharField(max_length=64, blank=True, default="")
    gender = models.CharField(max_length=8, blank=True, default="")
    city = models.CharField(max_length=32, blank=True, default="")
    first_channel = models.CharField(_("首次来源渠道"), max_length=32, blank=True, default="")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_customers"
    )
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "status", "first_seen_at"]),
            models.Index(fields=["workspace", "phone_hash"]),
            models.Index(fields=["workspace", "name_hash"]),
            models.Index(fields=["workspace", "first_channel", "first_seen_at"]),
        ]

    def __str__(self) -> str:
        return f"Customer {self.pk}"

    @property
    def name(self) -> str | None:
        return decrypt_text(self.name_enc)

    @property
    def phone(self) -> str | None:
        return decrypt_text(self.phone_enc)

    @property
    def is_live(self) -> bool:
        return self.status == CustomerStatus.ACTIVE


class Identity(models.Model):
    """One way of recognising a customer: (kind, namespace, value) is unique in a workspace.

    namespace: the AppID for an openid, the CorpID for an external_userid, the platform for a lead or a
    device; empty for unionid and phone. A phone's value is its keyed hash, never the number.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="identities")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    namespace = models.CharField(max_length=64, blank=True, default="")
    value = models.CharField(max_length=128)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "kind", "namespace", "value"], name="identity_unique_key")
        ]
        indexes = [models.Index(fields=["workspace", "value"])]

    def __str__(self) -> str:
        return f"{self.kind}:{self.namespace}:{self.value}"


class MergeReason(models.TextChoices):
    UNIONID = "unionid", _("相同 UnionID")
    PHONE = "phone", _("相同手机号")
    EXPLICIT = "explicit", _("手动关联")


class MergeRecord(models.Model):
    """One merge of ``loser`` into ``winner``, with exactly what moved so that un-merge can restore it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    winner = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_won")
    loser = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_lost")
    reason = models.CharField(max_length=16, choices=MergeReason.choices)
    moved_identity_ids = models.JSONField(default=list)
    added_tag_ids = models.JSONField(default=list)
    moved_consent_ids = models.JSONField(default=list)
    # Winner fields the merge changed: {field: [before, after]}; un-merge puts back those still at ``after``.
    winner_before = models.JSONField(default=dict)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    merged_at = models.DateTimeField(auto_now_add=True)
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        indexes = [models.Index(fields=["workspace", "winner"]), models.Index(fields=["workspace", "loser"])]

    def __str__(self) -> str:
        return f"merge {self.loser_id} -> {self.winner_id} ({self.reason})"


class TagGroup(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tag_groups")
    name = models.CharField(_("名称"), max_length=32)
    exclusive = models.BooleanField(_("单选"), default=False, help_text=_("一个客户在该组内最多一个标签"))
    sort_order = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="taggroup_unique_name")]
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.name


class TagKind(models.TextChoices):
    MANUAL = "manual", _("手动标签")
    RULE = "rule", _("规则标签")
    AUTO = "auto", _("自动标签")


class Tag(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tags")
    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(_("名称"), max_length=32)
    kind = models.CharField(max_length=8, choices=TagKind.choices, default=TagKind.MANUAL)
    # For rule tags: see siyu.customers.tag_rules for the language.
    rule = models.JSONField(null=True, blank=True)
    color = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "group", "name"], name="tag_unique_name")]
        ordering = ["group__sort_order", "group_id", "id"]

    def __str__(self) -> str:
        return self.name


class CustomerTag(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="customer_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="customer_tags")
    source = models.CharField(max_length=16, default="manual")  # manual | bulk | rule | merge | auto | api
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tag"], name="customertag_unique")]
        indexes = [models.Index(fields=["workspace", "tag"])]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.tag_id}"


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", _("营销消息")
    PERSONAL_DATA = "personal_data", _("个人信息处理")
    PHONE_CONTACT = "phone_contact", _("电话联系")
    ANALYTICS = "analytics", _("行为分析")


class ConsentRecord(models.Model):
    """Append-only: the current consent for a purpose is the latest record (PIPL, SPEC S1)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="consents")
    purpose = models.CharField(max_length=24, choices=ConsentPurpose.choices)
    granted = models.BooleanField()
    source = models.CharField(max_length=32, blank=True, default="")
    evidence = models.CharField(max_length=255, blank=True, default="")
    recorded_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["customer", "purpose", "recorded_at"])]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.purpose}={self.granted}"


class EventDefinition(models.Model):
    """A workspace's own event type, on top of the built-in catalogue (siyu.customers.event_catalogue)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="event_definitions")
    name = models.CharField(max_length=48)
    label = models.CharField(max_length=64, blank=True, default="")
    # {"property": {"type": "string|integer|number|boolean|fen", "required": bool}}
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="eventdef_unique_name")]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """Append-only behavioural event. Deduplicated by the client's ``event_id`` within a workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    event_id = models.CharField(max_length=64)
    type = models.CharField(max_length=48)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    identity = models.ForeignKey(Identity, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    channel = models.CharField(max_length=32, blank=True, default="")
    utm_source = models.CharField(max_length=64, blank=True, default="")
    utm_medium = models.CharField(max_length=64, blank=True, default="")
    utm_campaign = models.CharField(max_length=128, blank=True, default="")
    utm_content = models.CharField(max_length=128, blank=True, default="")
    utm_term = models.CharField(max_length=128, blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "event_id"], name="event_unique_id")]
        indexes = [
            models.Index(fields=["workspace", "occurred_at"]),
            models.Index(fields=["identity", "occurred_at"]),
            # Covering: segment event windows read events of a type in a time window and need only the
            # identity, so they are index-only scans (identity last: a key column, not INCLUDE, so SQLite too).
            models.Index(fields=["workspace", "type", "occurred_at", "identity"], name="event_type_time_cover"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class LastSeenTouch(models.Model):
    """Identities one ingestion batch observed, with the latest time per identity, waiting to be folded
    into ``Identity.last_seen_at`` and ``Customer.last_seen_at`` by ``siyu.customers.last_seen`` (a
    background job, every minute). One row per batch instead of one row update per customer and identity
    on the ingestion path; written in the batch's transaction, so nothing committed is ever missed.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    # JSON text {"ids": [identity id, …], "at": [epoch microseconds, …]} (text: no jsonb parse per batch)
    seen = models.TextField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"last-seen touch {self.pk}"
