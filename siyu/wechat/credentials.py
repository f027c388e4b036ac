"""Registering WeChat accounts and their secrets (admins only, audited), and finding the account a
callback or an API call belongs to."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from django.db import IntegrityError, transaction

from siyu.core.crypto import encrypt_text
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.wechat.models import AccessToken, AppKind, WeChatApp

# Secret fields per kind: name -> (required on create, validator name)
SECRET_FIELDS: dict[str, dict[str, bool]] = {
    AppKind.OFFICIAL: {"app_secret": True, "token": True, "encoding_aes_key": False, "message_mode": False},
    AppKind.MINIAPP: {"app_secret": True},
    AppKind.WORK: {"contact_secret": False, "app_secret": False, "kf_secret": False, "agent_id": False,
                   "token": False, "encoding_aes_key": False},
    AppKind.PAY: {"api_v3_key": True, "merchant_serial_no": True, "merchant_private_key": True,
                  "platform_public_key": False, "platform_public_key_id": False, "appid": False},
}
MESSAGE_MODES = ("plain", "compat", "safe")
# secret -> the access-token cache keys fetched with it (see siyu.wechat.clients; "app" is WeCom's, "kf" the
# 微信客服 application's — its APIs take their own secret's token, see siyu.wechat.work.kf)
TOKEN_SECRETS = {"app_secret": ("default", "app"), "contact_secret": ("contact",), "kf_secret": ("kf",)}
_APPID = {
    AppKind.OFFICIAL: re.compile(r"wx[0-9a-zA-Z]{14,30}"),
    AppKind.MINIAPP: re.compile(r"wx[0-9a-zA-Z]{14,30}"),
    AppKind.WORK: re.compile(r"[0-9a-zA-Z_-]{4,64}"),
    AppKind.PAY: re.compile(r"[0-9]{6,32}"),
}
_TOKEN = re.compile(r"[0-9a-zA-Z]{3,32}")
_AES_KEY = re.compile(r"[0-9a-zA-Z+/]{43}")


def _invalid(field: str, zh: str, en: str) -> SiyuError:
    return SiyuError("wechat_credentials_invalid", f"{field}：{zh}", f"{field}: {en}", status=400,
                     details={"field": field})


def encoding_aes_key_check(value: str, field: str = "encoding_aes_key") -> None:
    if not _AES_KEY.fullmatch(value):
        raise _invalid(field, "必须是 43 位字母数字（+/）", "must be 43 characters of letters, digits, + or /")
    try:
        key = base64.b64decode(value + "=", validate=True)
    except (binascii.Error, ValueError) as error:
        raise _invalid(field, "不是合法的 Base64", "is not valid base64") from error
    if len(key) != 32:
        raise _invalid(field, "长度不正确", "has the wrong length")


def _pem_check(value: str, field: str, *, private: bool) -> None:
    from cryptography.hazmat.primitives import serialization

    try:
        if private:
            serialization.load_pem_private_key(value.encode(), password=None)
        else:
            try:
                serialization.load_pem_public_key(value.encode())
            except ValueError:
                from cryptography import x509

                x509.load_pem_x509_certificate(value.encode())
    except (ValueError, TypeError) as error:
        raise _invalid(field, "不是有效的 PEM 密钥", "is not a valid PEM key") from error


def _clean_secrets(kind: str, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Merge ``new`` into ``old`` (an empty or missing value keeps the stored one) and validate."""
    allowed = SECRET_FIELDS[kind]
    unknown = set(new) - set(allowed)
    if unknown:
        raise _invalid(sorted(unknown)[0], "不是此类型账号的字段", "is not a field of this kind of account")
    merged = dict(old)
    for name, value in new.items():
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        value = value.strip() if isinstance(value, str) else value
        if isinstance(value, str) and value.startswith("-----BEGIN"):
            value = value.replace("\r\n", "\n") + "\n"  # PEM as the SDKs expect it: LF, final newline
        merged[name] = value
    for name, required in allowed.items():
        if required and not merged.get(name):
            raise _invalid(name, "必填", "is required")
    for name in ("app_secret", "contact_secret", "kf_secret"):
        if name in merged and not re.fullmatch(r"[0-9a-zA-Z_\-]{8,128}", str(merged[name])):
            raise _invalid(name, "格式不正确", "has an invalid format")
    if "token" in merged and not _TOKEN.fullmatch(str(merged["token"])):
        raise _invalid("token", "必须是 3–32 位字母或数字", "must be 3-32 letters or digits")
    if "encoding_aes_key" in merged:
        encoding_aes_key_check(str(merged["encoding_aes_key"]))
    if kind == AppKind.OFFICIAL:
        mode = merged.setdefault("message_mode", "plain")
        if mode not in MESSAGE_MODES:
            raise _invalid("message_mode", "必须是 plain / compat / safe", "must be plain, compat or safe")
        if mode != "plain" and not merged.get("encoding_aes_key"):
            raise _invalid("encoding_aes_key", "兼容/安全模式需要 EncodingAESKey",
                           "is required in compatible and safe mode")
    if kind == AppKind.WORK:
        if not (merged.get("contact_secret") or merged.get("app_secret") or merged.get("kf_secret")):
            raise _invalid("contact_secret", "至少填写一个 Secret", "at least one secret is required")
        if bool(merged.get("token")) != bool(merged.get("encoding_aes_key")):
            raise _invalid("token", "回调需要同时填写 Token 和 EncodingAESKey",
                           "callbacks need both Token and EncodingAESKey")
        if merged.get("agent_id") and not re.fullmatch(r"\d{1,12}", str(merged["agent_id"])):
            raise _invalid("agent_id", "必须是数字", "must be a number")
    if kind == AppKind.PAY:
        if not re.fullmatch(r"[0-9a-zA-Z]{32}", str(merged["api_v3_key"])):
            raise _invalid("api_v3_key", "必须是 32 位字母或数字", "must be 32 letters or digits")
        if not re.fullmatch(r"[0-9A-Fa-f]{8,64}", str(merged["merchant_serial_no"])):
            raise _invalid("merchant_serial_no", "必须是十六进制证书序列号", "must be a hexadecimal serial number")
        _pem_check(str(merged["merchant_private_key"]), "merchant_private_key", private=True)
        if merged.get("platform_public_key"):
            _pem_check(str(merged["platform_public_key"]), "platform_public_key", private=False)
        if merged.get("appid") and not _APPID[AppKind.OFFICIAL].fullmatch(str(merged["appid"])):
            raise _invalid("appid", "格式不正确", "has an invalid format")
    return merged


def app_save(*, workspace: Workspace, kind: str, appid: str, name: str, secrets: dict[str, Any],
             actor: Any = None, is_active: bool = True) -> WeChatApp:
    """Create or update the workspace's account ``(kind, appid)``. Secret fields left empty keep their
    stored value (the console never shows secrets back). Audited without any secret value."""
    if kind not in AppKind.values:
        raise _invalid("kind", "未知类型", "unknown kind")
    appid = (appid or "").strip()
    name = (name or "").strip()
    if not _APPID[kind].fullmatch(appid):
        raise _invalid("appid", "格式不正确", "has an invalid format")
    if not name or len(name) > 128:
        raise _invalid("name", "名称必填且不超过 128 字", "is required (at most 128 characters)")
    if not isinstance(secrets, dict):
        raise _invalid("secrets", "格式不正确", "must be an object")
    with transaction.atomic():
        app = WeChatApp.objects.select_for_update().filter(kind=kind, appid=appid).first()
        if app is not None and app.workspace_id != workspace.pk:
            raise SiyuError("wechat_app_taken", "该微信账号已被其他工作空间绑定",
                            "This WeChat account is connected to another workspace", status=409)
        previous = app.secrets() if app else {}
        merged = _clean_secrets(kind, secrets, previous)
        changed = sorted(name for name, value in secrets.items() if value not in (None, ""))
        rotated = {name for name in TOKEN_SECRETS if previous.get(name) and previous.get(name) != merged.get(name)}
        if app is None:
            app = WeChatApp(workspace=workspace, kind=kind, appid=appid)
            action = "wechat_app_create"
        else:
            action = "wechat_app_update"
        app.name = name
        app.is_active = is_active
        app.secrets_enc = encrypt_text(json.dumps(merged, sort_keys=True))
        try:
            with transaction.atomic():
                app.save()
        except IntegrityError as error:
            raise SiyuError("wechat_app_taken", "该微信账号已存在", "This WeChat account already exists",
                            status=409) from error
        if rotated:  # tokens fetched with the old secret: fetch anew, so a wrong new secret shows at once
            AccessToken.objects.filter(app=app, key__in=[key for name in rotated for key in TOKEN_SECRETS[name]]).delete()
        audit_record(workspace=workspace, actor=actor, action=action, target_type="wechat_app", target_id=app.pk,
                     kind=kind, appid=appid, name=name, is_active=is_active, secrets_changed=changed)
    return app


def app_for(*, kind: str, appid: str) -> WeChatApp:
    """The active account ``(kind, appid)``; an unknown or disabled one is a 404."""
    app = WeChatApp.objects.select_related("workspace").filter(kind=kind, appid=appid, is_active=True).first()
    if app is None:
        raise SiyuError("wechat_app_unknown", "未知的微信账号", "Unknown WeChat account", status=404,
                        details={"kind": str(kind), "appid": appid})
    return app


def apps_of(*, workspace: Workspace, kind: str | None = None) -> list[WeChatApp]:
    queryset = WeChatApp.objects.filter(workspace=workspace)
    if kind:
        queryset = queryset.filter(kind=kind)
    return list(queryset.order_by("kind", "name", "pk"))
