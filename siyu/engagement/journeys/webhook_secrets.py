"""Webhook signing secrets: never stored, shown or versioned in clear.

A webhook step in a stored definition carries ``secret_enc`` (urlsafe base64 of ``core.crypto.encrypt_text``)
and never ``secret``. The editor posts ``secret`` only when the user types a new one; a blank field keeps the
secret already stored for the step with the same id (never one the client claims to have). Pages get
``public`` definitions: no secret of any kind, only ``secret_set`` to show "已设置 / set".
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from siyu.core.crypto import decrypt_text, encrypt_text
from siyu.core.errors import SiyuError

MIN_LENGTH = 8
CLIENT_ONLY = ("secret", "secret_set", "secret_enc")


def encrypt(secret: str) -> str:
    return base64.urlsafe_b64encode(encrypt_text(secret)).decode()


def decrypt(token: str) -> str:
    return decrypt_text(base64.urlsafe_b64decode(token.encode())) or ""


def _steps(definition: Any) -> list[dict]:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return [step for step in steps if isinstance(step, dict)] if isinstance(steps, list) else []


def seal(definition: Any, *, previous: Any = None) -> Any:
    """The definition to store: typed secrets encrypted, blank ones kept from ``previous`` (same step id)."""
    if not isinstance(definition, dict):
        return definition
    definition = copy.deepcopy(definition)
    kept = {str(step.get("id")): step["secret_enc"] for step in _steps(previous)
            if step.get("type") == "webhook" and isinstance(step.get("secret_enc"), str) and step["secret_enc"]}
    for step in _steps(definition):
        plain = step.get("secret")
        for key in CLIENT_ONLY:
            step.pop(key, None)
        if step.get("type") != "webhook":
            continue
        if isinstance(plain, str) and plain.strip():
            if len(plain) < MIN_LENGTH:
                raise SiyuError("journey_invalid", f"[{step.get('id')}] 签名密钥至少 {MIN_LENGTH} 个字符",
                                f"[{step.get('id')}] The signing secret needs at least {MIN_LENGTH} characters",
                                details={"problems": [{"where": str(step.get("id")),
                                                       "zh": f"签名密钥至少 {MIN_LENGTH} 个字符",
                                                       "en": f"The signing secret needs at least {MIN_LENGTH} "
                                                             "characters"}]})
            step["secret_enc"] = encrypt(plain)
        elif str(step.get("id")) in kept:
            step["secret_enc"] = kept[str(step.get("id"))]
    return definition


def public(definition: Any) -> Any:
    """The definition as pages may show it: no secret, only whether one is set."""
    if not isinstance(definition, dict):
        return definition
    definition = copy.deepcopy(definition)
    for step in _steps(definition):
        was_set = bool(step.get("secret_enc"))
        for key in CLIENT_ONLY:
            step.pop(key, None)
        if step.get("type") == "webhook":
            step["secret_set"] = was_set
    return definition


def step_secret(step: dict) -> str:
    token = step.get("secret_enc")
    secret = decrypt(token) if isinstance(token, str) and token else ""
    if not secret:
        raise SiyuError("webhook_secret_missing", "Webhook 未设置签名密钥", "The webhook has no signing secret")
    return secret
