"""WeChat Pay v3 cryptography as the platform does it: RSA-SHA256 signatures and AEAD_AES_256_GCM resources.

Written from the protocol (not from any SDK) so that Siyu's SDK talking to the simulator is a real
conformance test. Message formats (WeChat Pay v3 "签名认证" and "回调通知"):
- request signature: ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` signed with the merchant key, sent
  as ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."``;
- response / notification signature: ``TIMESTAMP\\nNONCE\\nBODY\\n`` signed with the platform key, sent in the
  ``Wechatpay-Timestamp / -Nonce / -Signature / -Serial`` headers;
- JSAPI paySign: ``APPID\\nTIMESTAMP\\nNONCESTR\\nprepay_id=...\\n`` signed with the merchant key;
- notification resource: AES-256-GCM with the API v3 key, 12-character nonce, associated data, base64 of
  ciphertext‖tag.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import secrets
import string
import time

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
_ALPHANUMERIC = string.ascii_letters + string.digits
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def key_generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def key_cached(label: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per label per process (generation takes a while; tests and the demo reuse them)."""
    return key_generate()


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@functools.lru_cache(maxsize=64)
def public_key_load(pem: str) -> rsa.RSAPublicKey:
    """The key of a PEM (parsed once per PEM: every signed request of a merchant is checked against it)."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def private_key_load(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def key_fingerprint(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, length: int = 40) -> str:
    """A stable upper-case hex id for a key (used as a certificate serial / public key id)."""
    return hashlib.sha256(public_pem(key).encode()).hexdigest().upper()[:length]


def nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def request_message(method: str, path_and_query: str, timestamp: str, nonce_str: str, body: str) -> str:
    return f"{method}\n{path_and_query}\n{timestamp}\n{nonce_str}\n{body}\n"


def response_message(timestamp: str, nonce_str: str, body: str) -> str:
    return f"{timestamp}\n{nonce_str}\n{body}\n"


def paysign_message(appid: str, timestamp: str, nonce_str: str, package: str) -> str:
    return f"{appid}\n{timestamp}\n{nonce_str}\n{package}\n"


def authorization_parse(header: str) -> dict[str, str] | None:
    """The fields of a ``WECHATPAY2-SHA256-RSA2048 k="v",...`` header, or None when it is not one."""
    scheme, _, rest = (header or "").partition(" ")
    if scheme != SIGNATURE_TYPE:
        return None
    fields = dict(_AUTH_FIELD.findall(rest))
    if not {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} <= fields.keys():
        return None
    return fields


def authorization_build(*, key: rsa.RSAPrivateKey, mchid: str, serial_no: str, method: str,
                        path_and_query: str, body: str, timestamp: str | None = None,
                        nonce_str: str | None = None) -> str:
    """What a merchant sends (the simulator's own tests use it to forge and to check requests)."""
    timestamp = timestamp or str(int(time.time()))
    nonce_str = nonce_str or nonce()
    signature = rsa_sign(key, request_message(method, path_and_query, timestamp, nonce_str, body))
    return (f'{SIGNATURE_TYPE} mchid="{mchid}",nonce_str="{nonce_str}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def signed_headers(*, key: rsa.RSAPrivateKey, serial: str, body: str, timestamp: str | None = None,
                   nonce_str: str | None = None) -> dict[str, str]:
    """The ``Wechatpay-*`` headers the platform puts on every response and notification."""
    timestamp = timestamp or str(int(time.time()))
    nonce_str = nonce_str or nonce()
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce_str,
        "Wechatpay-Signature": rsa_sign(key, response_message(timestamp, nonce_str, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def aes_gcm_encrypt(*, api_v3_key: str, plaintext: str, associated_data: str, nonce_str: str) -> str:
    data = AESGCM(api_v3_key.encode()).encrypt(nonce_str.encode(), plaintext.encode(), associated_data.encode())
    return base64.b64encode(data).decode()


def aes_gcm_decrypt(*, api_v3_key: str, ciphertext: str, associated_data: str, nonce_str: str) -> str | None:
    try:
        data = base64.b64decode(ciphertext, validate=True)
        return AESGCM(api_v3_key.encode()).decrypt(nonce_str.encode(), data, associated_data.encode()).decode()
    except (InvalidTag, binascii.Error, ValueError):
        return None
