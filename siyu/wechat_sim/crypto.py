"""WeChat's callback message crypto, implemented by the simulator itself (no SDK), so tests against
wechatpy on the Siyu side are real conformance tests.

The protocol (公众号 "安全模式" and 企业微信 callbacks share it; only the receive id differs: the AppID for
an official account, the CorpID for WeCom):
- signature = SHA1 of the sorted concatenation of token, timestamp, nonce (and the ciphertext, if any);
- AES key = base64-decode(EncodingAESKey + "="), 32 bytes; AES-256-CBC with IV = key[:16];
- plaintext = 16 random bytes + 4-byte big-endian message length + message + receive id, padded with
  PKCS#7 to a multiple of 32 bytes (not 16: WeChat pads to the key size).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat's PKCS#7 block size


class CryptoError(ValueError):
    """A ciphertext that does not decrypt to a well-formed WeChat payload."""


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """WeChat's callback signature: SHA1 hex of the sorted strings joined without separator."""
    parts = sorted([str(token), str(timestamp), str(nonce), *(str(item) for item in extra)])
    return hashlib.sha1("".join(parts).encode()).hexdigest()  # noqa: S324 - WeChat's protocol is SHA1


def aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise CryptoError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as error:
        raise CryptoError("EncodingAESKey is not base64") from error
    if len(key) != 32:
        raise CryptoError("EncodingAESKey must decode to 32 bytes")
    return key


def _pad(data: bytes) -> bytes:
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def _unpad(data: bytes) -> bytes:
    if not data:
        raise CryptoError("empty plaintext")
    amount = data[-1]
    if amount < 1 or amount > BLOCK or data[-amount:] != bytes([amount]) * amount:
        raise CryptoError("bad padding")
    return data[:-amount]


def encrypt(encoding_aes_key: str, receive_id: str, plaintext: bytes, *, random_prefix: bytes | None = None) -> str:
    """Encrypt ``plaintext`` for ``receive_id`` (AppID or CorpID); returns the base64 ciphertext."""
    key = aes_key(encoding_aes_key)
    prefix = random_prefix if random_prefix is not None else os.urandom(16)
    if len(prefix) != 16:
        raise CryptoError("random prefix must be 16 bytes")
    payload = prefix + struct.pack(">I", len(plaintext)) + plaintext + receive_id.encode()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(_pad(payload)) + encryptor.finalize()).decode()


def decrypt(encoding_aes_key: str, ciphertext: str) -> tuple[bytes, str]:
    """Decrypt a base64 ciphertext; returns (message, receive_id). Raises CryptoError when malformed."""
    key = aes_key(encoding_aes_key)
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CryptoError("ciphertext is not base64") from error
    if not raw or len(raw) % 16:
        raise CryptoError("ciphertext length is not a multiple of the AES block")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = _unpad(decryptor.update(raw) + decryptor.finalize())
    if len(plain) < 20:
        raise CryptoError("plaintext too short")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise CryptoError("message length exceeds plaintext")
    message = plain[20:20 + length]
    try:
        receive_id = plain[20 + length:].decode()
    except UnicodeDecodeError as error:
        raise CryptoError("receive id is not text") from error
    return message, receive_id


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def safe_envelope(token: str, encoding_aes_key: str, receive_id: str, xml: str | bytes,
                  timestamp: str | int | None = None, nonce: str | None = None) -> tuple[str, dict[str, str]]:
    """Encrypt a callback body the way WeChat sends it in safe mode.

    Returns ``(body_xml, query)``: the ``<xml><Encrypt>…`` body and the query-string parameters WeChat
    adds to the callback URL (``msg_signature``, ``timestamp``, ``nonce``; plus ``signature`` as the
    official account also sends the plain one, computed without the ciphertext, and ``encrypt_type=aes``).
    The same body shape is what Siyu answers with when it replies in safe mode.
    """
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    plaintext = xml.encode() if isinstance(xml, str) else xml
    cipher = encrypt(encoding_aes_key, receive_id, plaintext)
    msg_signature = signature(token, timestamp, nonce, cipher)
    body = (f"<xml><Encrypt>{_cdata(cipher)}</Encrypt><MsgSignature>{_cdata(msg_signature)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>")
    query = {"signature": signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": msg_signature}
    return body, query


def plain_query(token: str, timestamp: str | int | None = None, nonce: str | None = None) -> dict[str, str]:
    """Query parameters of a plain-mode official-account callback (``signature``, ``timestamp``, ``nonce``)."""
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    return {"signature": signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def compat_envelope(token: str, encoding_aes_key: str, receive_id: str, xml: str,
                    timestamp: str | int | None = None, nonce: str | None = None) -> tuple[str, dict[str, str]]:
    """Compatible mode (兼容模式): the plain fields and the ``<Encrypt>`` element side by side in one body."""
    body, query = safe_envelope(token, encoding_aes_key, receive_id, xml, timestamp, nonce)
    encrypt_element = body[len("<xml>"):body.index("</Encrypt>") + len("</Encrypt>")]
    inner = xml.strip()
    if not (inner.startswith("<xml>") and inner.endswith("</xml>")):
        raise CryptoError("compatible mode needs an <xml>…</xml> message")
    return inner[:-len("</xml>")] + encrypt_element + "</xml>", query


def verify_url_query(token: str, encoding_aes_key: str, corpid: str, echostr: str,
                     timestamp: str | int | None = None, nonce: str | None = None) -> dict[str, str]:
    """WeCom URL verification: ``echostr`` is encrypted for the CorpID and signed with ``msg_signature``."""
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    cipher = encrypt(encoding_aes_key, corpid, echostr.encode())
    return {"msg_signature": signature(token, timestamp, nonce, cipher), "timestamp": timestamp,
            "nonce": nonce, "echostr": cipher}


def random_encoding_aes_key() -> str:
    """A fresh 43-character EncodingAESKey (as WeChat's admin page generates)."""
    return base64.b64encode(os.urandom(32)).decode()[:43]
