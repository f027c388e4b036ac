"""Personal data at rest (SPEC S1): AES-GCM encryption and keyed hashes for look-ups.

The data key comes from ``SIYU_DATA_KEY`` (urlsafe base64 of 32 bytes); the embedded install generates
one under the data directory. Two sub-keys are derived with HKDF so that the look-up hash never
reveals anything about the encryption key. Ciphertext layout: version byte, 12-byte nonce, GCM output.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


@lru_cache(maxsize=1)
def _keys() -> tuple[AESGCM, bytes]:
    from django.conf import settings

    from siyu.core.keys import load_or_create_secret

    raw = os.environ.get("SIYU_DATA_KEY") or load_or_create_secret(settings.DATA_DIR / "data_key", nbytes=32)
    master = base64.urlsafe_b64decode(raw)
    if len(master) != 32:
        raise ValueError("SIYU_DATA_KEY must be urlsafe base64 of exactly 32 bytes")

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    return AESGCM(derive(b"siyu pii encryption v1")), derive(b"siyu pii lookup hash v1")


def encrypt_text(value: str | None) -> bytes | None:
    if value is None or value == "":
        return None
    nonce = os.urandom(12)
    return _VERSION + nonce + _keys()[0].encrypt(nonce, value.encode(), _VERSION)


def decrypt_text(blob: bytes | memoryview | None) -> str | None:
    if not blob:
        return None
    blob = bytes(blob)
    if blob[:1] != _VERSION:
        raise ValueError("unknown ciphertext version")
    return _keys()[0].decrypt(blob[1:13], blob[13:], _VERSION).decode()


def lookup_hash(kind: str, normalized_value: str) -> str:
    """Keyed hash used to find a record by an encrypted value without decrypting every row."""
    mac = hmac.new(_keys()[1], f"{kind}\x00{normalized_value}".encode(), hashlib.sha256)
    return mac.hexdigest()


_PHONE_STRIP = re.compile(r"[\s\-()]")


def normalize_phone(raw: str) -> str:
    """Normalize a mainland China mobile number to 11 digits; other numbers keep a leading '+'.

    Raises ValueError when the input is not a phone number.
    """
    value = _PHONE_STRIP.sub("", str(raw))
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086"):
        value = value[4:]
    if re.fullmatch(r"1[3-9]\d{9}", value):
        return value
    if re.fullmatch(r"\+\d{6,15}", value):
        return value
    raise ValueError("not a phone number")


def phone_hash(raw: str) -> str:
    return lookup_hash("phone", normalize_phone(raw))


def name_hash(raw: str) -> str:
    return lookup_hash("name", " ".join(str(raw).split()).casefold())


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


def mask_name(name: str | None) -> str:
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)
