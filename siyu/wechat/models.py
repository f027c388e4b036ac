"""WeChat accounts a workspace connects (公众号, 小程序, 企业微信, 微信支付 merchant), their cached access
tokens, API issues shown in the console (quotas, rate limits, errors), and callback nonces seen (replays)."""

from __future__ import annotations

import json

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.crypto import decrypt_text
from siyu.core.models import Workspace


class AppKind(models.TextChoices):
    OFFICIAL = "official", _("公众号")
    MINIAPP = "miniapp", _("小程序")
    WORK = "work", _("企业微信")
    PAY = "pay", _("微信支付")


class WeChatApp(models.Model):
    """One WeChat account: ``appid`` is the AppID (公众号/小程序), the CorpID (企业微信) or the mchid (支付).

    Secrets (AppSecret, Token, EncodingAESKey, WeCom secrets, API v3 key, merchant keys) are one JSON
    object encrypted with the data key; only :mod:`siyu.wechat.credentials` writes them.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="wechat_apps")
    kind = models.CharField(_("类型"), max_length=16, choices=AppKind.choices)
    appid = models.CharField(_("AppID / CorpID / 商户号"), max_length=64)
    name = models.CharField(_("名称"), max_length=128)
    secrets_enc = models.BinaryField(editable=False)
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("微信账号")
        verbose_name_plural = _("微信账号")
        constraints = [models.UniqueConstraint(fields=["kind", "appid"], name="wechat_app_kind_appid_unique")]
        indexes = [models.Index(fields=["workspace", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name} ({self.appid})"

    def secrets(self) -> dict:
        """The decrypted secret fields (empty dict when none were stored); a fresh copy each time."""
        blob = bytes(self.secrets_enc) if self.secrets_enc else b""
        cached = getattr(self, "_secrets_cache", None)
        if cached is None or cached[0] != blob:  # decrypt once per stored value, not once per use
            text = decrypt_text(blob)
            cached = (blob, json.loads(text) if text else {})
            self._secrets_cache = cached
        return dict(cached[1])


class AccessToken(models.Model):
    """A cached access token of one app; ``key`` names which (e.g. "default", WeCom "contact" / "app")."""

    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="access_tokens")
    key = models.CharField(max_length=32, default="default")
    token_enc = models.BinaryField(null=True)
    expires_at = models.DateTimeField(null=True)
    refreshed_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="wechat_token_app_key_unique")]

    def __str__(self) -> str:
        return f"{self.app_id}/{self.key} until {self.expires_at}"

    def token(self) -> str | None:
        return decrypt_text(self.token_enc)


class ApiIssue(models.Model):
    """A WeChat API error worth an operator's attention (quota, rate limit, permission, repeated
    failure), one row per (app, api, errcode) while open, counted; resolved from the console."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="wechat_api_issues")
    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="api_issues")
    api = models.CharField(max_length=128)
    errcode = models.IntegerField()
    errmsg = models.CharField(max_length=512, blank=True, default="")
    count = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "api", "errcode"], condition=models.Q(resolved_at=None),
                                               name="wechat_open_issue_unique")]
        indexes = [models.Index(fields=["workspace", "resolved_at"])]

    def __str__(self) -> str:
        return f"{self.api} {self.errcode} x{self.count}"


class CallbackNonce(models.Model):
    """A (app, nonce) pair already accepted in a callback: inserting it again means a replay."""

    app = models.ForeignKey(WeChatApp, on_delete=models.CASCADE, related_name="callback_nonces")
    nonce = models.CharField(max_length=64)
    timestamp = models.BigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "nonce"], name="wechat_callback_nonce_unique")]

    def __str__(self) -> str:
        return f"{self.app_id}:{self.nonce}"
