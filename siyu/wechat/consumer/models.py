"""Consumer sessions (a logged-in mini-program user or H5 visitor) and mini-program subscribe-message quota.

A session token is shown to the client once and stored only as its SHA-256; the mini-program's
session_key (needed only to decrypt data WeChat signs for us) is kept encrypted and never leaves Siyu.
A session names the identity it was opened with: merges move identities between customers, so the
identity's current owner is always the session's customer.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer, Identity
from siyu.wechat.models import WeChatApp


class SessionKind(models.TextChoices):
    MINIAPP = "miniapp", _("小程序")
    H5 = "h5", _("H5 网页授权")


class ConsumerSession(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="consumer_sessions")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=SessionKind.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    session_key_enc = models.BinaryField(null=True, blank=True)  # 小程序 only; encrypted, never returned
    scope = models.CharField(max_length=16, blank=True, default="")  # H5: snsapi_base | snsapi_userinfo
    is_new_customer = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "created_at"]),
            models.Index(fields=["workspace", "revoked_at", "expires_at"]),
            models.Index(fields=["customer", "revoked_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} session {self.pk} of customer {self.customer_id}"

    def is_active(self, now=None) -> bool:
        return self.revoked_at is None and self.expires_at > (now or timezone.now())


class SubscribeAuthorisation(models.Model):
    """How many one-time sends of a template a mini-program user has granted us and we have not used."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+")  # the openid in this app
    template_id = models.CharField(max_length=64)
    remaining = models.PositiveIntegerField(default=0)
    accepted_total = models.PositiveIntegerField(default=0)
    rejected_total = models.PositiveIntegerField(default=0)
    sent_total = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "identity", "template_id"], name="consumer_subscribe_auth_unique"),
        ]
        indexes = [models.Index(fields=["workspace", "template_id"])]

    def __str__(self) -> str:
        return f"{self.template_id} x{self.remaining} for identity {self.identity_id}"


class SendStatus(models.TextChoices):
    SENT = "sent", _("已发送")
    REFUSED = "refused", _("用户未授权(43101)")
    FAILED = "failed", _("发送失败")


class SubscribeSend(models.Model):
    """One subscribe message we asked WeChat to deliver, and how it went."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="+")
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+")
    template_id = models.CharField(max_length=64)
    page = models.CharField(max_length=256, blank=True, default="")
    status = models.CharField(max_length=8, choices=SendStatus.choices)
    errcode = models.IntegerField(default=0)
    msgid = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "created_at"])]

    def __str__(self) -> str:
        return f"{self.template_id} → identity {self.identity_id}: {self.status}"
