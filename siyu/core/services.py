"""Writes for workspaces, memberships, API keys and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from siyu.core.errors import SiyuError
from siyu.core.models import ApiKey, AuditLog, Membership, Role, Workspace


@transaction.atomic
def workspace_create(*, slug: str, name: str, industry: str = "") -> Workspace:
    if Workspace.objects.filter(slug=slug).exists():
        raise SiyuError("workspace_exists", "工作空间已存在", "Workspace already exists", status=409)
    return Workspace.objects.create(slug=slug, name=name, industry=industry)


@transaction.atomic
def membership_grant(*, workspace: Workspace, username: str, password: str | None, role: str,
                     display_name: str = "") -> Membership:
    if role not in Role.values:
        raise SiyuError("invalid_role", "未知角色", "Unknown role")
    user_model = get_user_model()
    user, _created = user_model.objects.get_or_create(username=username)
    if password is not None:
        user.set_password(password)
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role, "display_name": display_name or username}
    )
    return membership


def _key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, workspace: Workspace, name: str) -> tuple[ApiKey, str]:
    """Create a key and return it with the secret, which is shown once and stored only as a hash."""
    prefix = "sk_" + secrets.token_hex(6)
    secret = f"{prefix}.{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(workspace=workspace, name=name, prefix=prefix, key_hash=_key_digest(secret))
    return key, secret


def api_key_authenticate(secret: str) -> Workspace | None:
    prefix = secret.split(".", 1)[0]
    key = ApiKey.objects.select_related("workspace").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not secrets.compare_digest(key.key_hash, _key_digest(secret)):
        return None
    return key.workspace


def audit_record(*, workspace: Workspace, actor: Any, action: str, target_type: str = "",
                 target_id: str | int = "", **detail: Any) -> AuditLog:
    return AuditLog.objects.create(
        workspace=workspace,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail,
    )
