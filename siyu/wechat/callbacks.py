"""Checking what WeChat calls us with, before any of it is believed: URL verification, message and event
callbacks of 公众号 (plain, compatible and safe mode) and 企业微信, and encrypted replies.

Every check runs before anything is stored, in this order: body size (64 KiB), timestamp within ±300 s,
signature, XML parsed with DTDs and entities refused (defusedxml), msg_signature and decryption with
wechatpy's crypto (the receive id inside must be our AppID / CorpID), then the nonce is inserted as
:class:`~siyu.wechat.models.CallbackNonce` — a second insert of the same nonce is a replay. Area views
call these, then handle :class:`CallbackMessage` in the same transaction, so a failed handling also
forgets the nonce and WeChat's retry is accepted.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from siyu.core.errors import SiyuError
from siyu.wechat.models import AppKind, CallbackNonce, WeChatApp

MAX_BODY = 64 * 1024
MAX_SKEW = 300  # seconds either side of our clock
NONCE_RETENTION = timedelta(seconds=2 * MAX_SKEW)


@dataclass
class CallbackRejected(SiyuError):
    """A callback refused before anything was stored (code names the check that failed)."""


def _reject(code: str, zh: str, en: str, status: int = 403) -> CallbackRejected:
    return CallbackRejected(f"wechat_callback_{code}", zh, en, status=status)


@dataclass
class CallbackMessage:
    """A verified callback: ``data`` holds the XML's fields (nested elements as dicts)."""

    app: WeChatApp
    data: dict[str, Any]
    encrypted: bool
    nonce: str = ""
    timestamp: str = ""

    def get(self, name: str, default: str = "") -> Any:
        value = self.data.get(name, default)
        return default if value is None else value

    @property
    def msg_type(self) -> str:
        return str(self.get("MsgType")).lower()

    @property
    def event(self) -> str:
        """The event name as WeChat sends it (``subscribe``, ``SCAN``, ``change_external_contact`` …), lower-cased."""
        return str(self.get("Event")).lower()

    @property
    def dedupe_key(self) -> str:
        """Stable across WeChat's retries of the same message: MsgId, or sender + CreateTime + event."""
        if self.get("MsgId"):
            return f"{self.app.appid}:msg:{self.get('MsgId')}"
        parts = [self.get("FromUserName"), self.get("CreateTime"), self.get("Event"), self.get("ChangeType"),
                 self.get("ExternalUserID"), self.get("UserID"), self.get("EventKey") if isinstance(
                     self.get("EventKey"), str) else ""]
        return f"{self.app.appid}:evt:" + ":".join(str(part) for part in parts)


# --- parsing --------------------------------------------------------------------------------------

def _element_value(element: Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    value: dict[str, Any] = {}
    for child in children:
        item = _element_value(child)
        if child.tag in value:
            if not isinstance(value[child.tag], list):
                value[child.tag] = [value[child.tag]]
            value[child.tag].append(item)
        else:
            value[child.tag] = item
    return value


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """WeChat's ``<xml>…</xml>`` as a dict; DTDs, entities and external references are refused."""
    if isinstance(body, str):
        body = body.encode()
    if len(body) > MAX_BODY:
        raise _reject("too_large", "回调内容过大", "Callback body too large", status=413)
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise _reject("xml_forbidden", "回调 XML 含有 DTD 或实体声明，已拒绝",
                      "Callback XML declares a DTD or entities; refused", status=400) from error
    except (ParseError, ValueError) as error:
        raise _reject("bad_xml", "回调 XML 格式错误", "Malformed callback XML", status=400) from error
    if root.tag != "xml":
        raise _reject("bad_xml", "回调 XML 根元素必须是 <xml>", "Callback XML root must be <xml>", status=400)
    value = _element_value(root)
    return value if isinstance(value, dict) else {}


def _body(request: HttpRequest) -> bytes:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        raise _reject("too_large", "回调内容过大", "Callback body too large", status=413)
    body = request.body
    if len(body) > MAX_BODY:
        raise _reject("too_large", "回调内容过大", "Callback body too large", status=413)
    return body


def _query(query: Any, *names: str) -> dict[str, str]:
    values = {name: str(query.get(name) or "") for name in names}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise _reject("missing_params", f"缺少参数：{', '.join(missing)}", f"Missing parameters: {', '.join(missing)}",
                      status=400)
    return values


def _timestamp_check(timestamp: str) -> None:
    if not timestamp.isdigit():
        raise _reject("bad_timestamp", "时间戳格式错误", "Malformed timestamp", status=400)
    if abs(int(timestamp) - time.time()) > MAX_SKEW:
        raise _reject("stale", "回调时间戳超出允许范围（±300 秒）", "Callback timestamp outside ±300 seconds")


def _signature_check(token: str, signature: str, timestamp: str, nonce: str) -> None:
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException as error:
        raise _reject("bad_signature", "签名校验失败", "Signature mismatch") from error


def _ciphertext_check(ciphertext: Any) -> str:
    if not isinstance(ciphertext, str) or not ciphertext:
        raise _reject("bad_ciphertext", "密文缺失", "Ciphertext missing", status=400)
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as error:
        raise _reject("bad_ciphertext", "密文不是合法的 Base64", "Ciphertext is not valid base64",
                      status=400) from error
    if len(raw) < 32 or len(raw) % 32:
        raise _reject("bad_ciphertext", "密文长度不正确（被截断？）", "Ciphertext has a wrong length (truncated?)",
                      status=400)
    return ciphertext


def _decrypt(crypto: Any, envelope: dict[str, Any], msg_signature: str, timestamp: str, nonce: str) -> str:
    ciphertext = _ciphertext_check(envelope.get("Encrypt"))
    try:
        return crypto.decrypt_message({"Encrypt": ciphertext}, msg_signature, timestamp, nonce)
    except InvalidSignatureException as error:
        raise _reject("bad_signature", "消息签名校验失败", "msg_signature mismatch") from error
    except (InvalidAppIdException, InvalidCorpIdException) as error:
        raise _reject("wrong_app", "密文不属于此账号（AppID/CorpID 不符）",
                      "Ciphertext is for another AppID / CorpID") from error
    except Exception as error:
        raise _reject("bad_ciphertext", "密文无法解密", "Ciphertext cannot be decrypted", status=400) from error


def _nonce_claim(app: WeChatApp, nonce: str, timestamp: str) -> None:
    if len(nonce) > 64:
        raise _reject("bad_nonce", "nonce 过长", "Nonce too long", status=400)
    try:
        with transaction.atomic():
            CallbackNonce.objects.create(app=app, nonce=nonce, timestamp=int(timestamp))
    except IntegrityError as error:
        raise _reject("replayed", "重复的回调请求（nonce 已使用）", "Replayed callback (nonce already used)") from error


def nonces_prune(*, older_than: timedelta = NONCE_RETENTION) -> int:
    """Delete nonces older than the timestamp window: a replay of those fails the timestamp check anyway."""
    deleted, _ = CallbackNonce.objects.filter(received_at__lt=timezone.now() - older_than).delete()
    return deleted


def _secret(app: WeChatApp, name: str) -> str:
    value = app.secrets().get(name) or ""
    if not value:
        raise _reject("not_configured", f"该账号未配置 {name}", f"This account has no {name} configured", status=400)
    return value


# --- 公众号 ----------------------------------------------------------------------------------------

def official_verify_url(app: WeChatApp, query: Any) -> str:
    """Server URL verification (GET): the ``echostr`` to answer when ``signature`` is right."""
    params = _query(query, "signature", "timestamp", "nonce", "echostr")
    _timestamp_check(params["timestamp"])
    _signature_check(_secret(app, "token"), params["signature"], params["timestamp"], params["nonce"])
    return params["echostr"]


def official_callback(app: WeChatApp, request: HttpRequest) -> CallbackMessage:
    """A verified message or event for the official account ``app`` (plain, compatible or safe mode)."""
    if app.kind != AppKind.OFFICIAL:
        raise _reject("wrong_app", "账号类型不是公众号", "Not an official account", status=400)
    body = _body(request)
    secrets_ = app.secrets()
    token = _secret(app, "token")
    mode = secrets_.get("message_mode", "plain")
    params = _query(request.GET, "signature", "timestamp", "nonce")
    _timestamp_check(params["timestamp"])
    _signature_check(token, params["signature"], params["timestamp"], params["nonce"])
    envelope = parse_xml(body)
    encrypted = request.GET.get("encrypt_type", "").lower() == "aes" or "Encrypt" in envelope
    if mode == "safe" and not encrypted:
        raise _reject("not_encrypted", "安全模式下只接受加密消息", "Safe mode accepts encrypted messages only")
    if encrypted and mode == "plain":
        raise _reject("unexpected_encryption", "明文模式下收到加密消息（请检查消息加解密方式）",
                      "Encrypted message in plain mode (check the message encryption setting)", status=400)
    if encrypted:
        msg_signature = _query(request.GET, "msg_signature")["msg_signature"]
        crypto = WeChatCrypto(token, _secret(app, "encoding_aes_key"), app.appid)
        data = parse_xml(_decrypt(crypto, envelope, msg_signature, params["timestamp"], params["nonce"]))
    else:
        data = envelope
    _nonce_claim(app, params["nonce"], params["timestamp"])
    return CallbackMessage(app=app, data=data, encrypted=encrypted, nonce=params["nonce"],
                           timestamp=params["timestamp"])


def official_reply(app: WeChatApp, message: CallbackMessage, reply_xml: Any = "") -> HttpResponse:
    """The HTTP answer to a callback: ``success`` when there is nothing to say, else the reply XML
    (a string or a wechatpy reply), encrypted when the message came encrypted."""
    if hasattr(reply_xml, "render"):
        reply_xml = reply_xml.render()
    if not reply_xml:
        return HttpResponse("success", content_type="text/plain; charset=utf-8")
    if message.encrypted:
        secrets_ = app.secrets()
        crypto = WeChatCrypto(secrets_["token"], secrets_["encoding_aes_key"], app.appid)
        reply_xml = crypto.encrypt_message(reply_xml, secrets.token_hex(8), str(int(time.time())))
    return HttpResponse(reply_xml, content_type="application/xml; charset=utf-8")


# --- 企业微信 --------------------------------------------------------------------------------------

def _work_crypto(app: WeChatApp) -> WeComCrypto:
    if app.kind != AppKind.WORK:
        raise _reject("wrong_app", "账号类型不是企业微信", "Not a WeCom corp", status=400)
    return WeComCrypto(_secret(app, "token"), _secret(app, "encoding_aes_key"), app.appid)


def work_verify_url(app: WeChatApp, query: Any) -> str:
    """WeCom URL verification (GET): ``echostr`` arrives encrypted and signed; answer its plaintext."""
    crypto = _work_crypto(app)
    params = _query(query, "msg_signature", "timestamp", "nonce", "echostr")
    _timestamp_check(params["timestamp"])
    echostr = _ciphertext_check(params["echostr"])
    try:
        return crypto.check_signature(params["msg_signature"], params["timestamp"], params["nonce"], echostr)
    except InvalidSignatureException as error:
        raise _reject("bad_signature", "消息签名校验失败", "msg_signature mismatch") from error
    except (InvalidAppIdException, InvalidCorpIdException) as error:
        raise _reject("wrong_app", "密文不属于此企业（CorpID 不符）", "Ciphertext is for another CorpID") from error
    except Exception as error:
        raise _reject("bad_ciphertext", "密文无法解密", "Ciphertext cannot be decrypted", status=400) from error


def work_callback(app: WeChatApp, request: HttpRequest) -> CallbackMessage:
    """A verified WeCom callback (always encrypted)."""
    crypto = _work_crypto(app)
    body = _body(request)
    params = _query(request.GET, "msg_signature", "timestamp", "nonce")
    _timestamp_check(params["timestamp"])
    envelope = parse_xml(body)
    data = parse_xml(_decrypt(crypto, envelope, params["msg_signature"], params["timestamp"], params["nonce"]))
    _nonce_claim(app, params["nonce"], params["timestamp"])
    return CallbackMessage(app=app, data=data, encrypted=True, nonce=params["nonce"], timestamp=params["timestamp"])


def work_reply(app: WeChatApp, message: CallbackMessage, reply_xml: Any = "") -> HttpResponse:
    """WeCom's answer: ``success`` (events), or an encrypted passive reply."""
    if hasattr(reply_xml, "render"):
        reply_xml = reply_xml.render()
    if not reply_xml:
        return HttpResponse("success", content_type="text/plain; charset=utf-8")
    body = _work_crypto(app).encrypt_message(reply_xml, secrets.token_hex(8), str(int(time.time())))
    return HttpResponse(body, content_type="application/xml; charset=utf-8")


def rejection_response(error: SiyuError) -> HttpResponse:
    """How a refused callback is answered: the status and a short code (WeChat only logs it)."""
    return HttpResponse(f"{error.code}: {error.message_en}", status=error.status,
                        content_type="text/plain; charset=utf-8")
