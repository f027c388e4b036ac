"""The one adapter over ``wechatpayv3``: building a client, calling the v3 API, opening notifications.

wechatpayv3 2.0.4 has no base-URL option: ``Core`` keeps ``https://api.mch.weixin.qq.com`` in the private
``_core._gate_way`` and sends with module-level ``requests.get/post`` (so the routing session of
``siyu.wechat.transport`` cannot be mounted). It only talks to the network in two places: ``Core.request``
(every API call, prefixed by ``_gate_way``) and ``Core._update_certificates`` (a GET of /v3/certificates
through the same ``request``), which the constructor calls unless *both* ``public_key`` and
``public_key_id`` are given (platform public key mode). So :func:`pay_client` always builds in public key
mode — offline — and then points ``_gate_way`` at :func:`siyu.wechat.transport.gateway`, checking first
that the attribute still holds the real host, so a library change fails loudly instead of escaping.
Notifications with another serial never reach the library's certificate download: we check the serial first.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import requests
import wechatpayv3
from django.conf import settings
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import load_public_key, rsa_verify

from siyu.wechat.clients import issue_record, retry_delays
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.transport import gateway

PAY_HOST = "api.mch.weixin.qq.com"
LIBRARY_GATEWAY = "https://" + PAY_HOST
TIMESTAMP_TOLERANCE = 300  # seconds either side, as WeChat Pay recommends for notifications
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"


@dataclass(frozen=True)
class MerchantConfig:
    """One merchant's credentials (API v3, platform public key mode)."""

    workspace_id: int
    mchid: str
    appid: str  # the AppID the merchant pays for by default (公众号 or 小程序)
    api_v3_key: str
    merchant_serial_no: str
    merchant_private_key: str  # PEM
    platform_public_key: str  # PEM
    platform_public_key_id: str


class PayApiError(Exception):
    """WeChat Pay refused a call (v3 ``code``/``message`` and HTTP status), or it could not be reached
    (``status`` 0: the outcome is unknown and must be reconciled by a query)."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(f"{status} {code}: {message}")
        self.code, self.message, self.status = code, message, status

    @property
    def outcome_unknown(self) -> bool:
        return self.status == 0 or self.status >= 500


class NotificationRejected(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def pay_client(config: MerchantConfig) -> WeChatPay:
    """A wechatpayv3 client for this merchant, sending to WeChat Pay or (simulator mode) the simulator."""
    return _client(config, gateway(PAY_HOST), settings.SIYU_WECHAT_TIMEOUT)


@functools.lru_cache(maxsize=32)
def _client(config: MerchantConfig, base: str, timeout: float) -> WeChatPay:
    if not (config.platform_public_key and config.platform_public_key_id):
        # Without both, the constructor downloads platform certificates from the real host at once.
        raise ValueError("WeChat Pay needs the platform public key and its id (public key mode)")
    client = WeChatPay(
        wechatpay_type=WeChatPayType.JSAPI, mchid=config.mchid, private_key=config.merchant_private_key,
        cert_serial_no=config.merchant_serial_no, appid=config.appid, apiv3_key=config.api_v3_key,
        notify_url=notify_url(config.mchid), timeout=timeout, public_key=config.platform_public_key,
        public_key_id=config.platform_public_key_id)
    core = getattr(client, "_core", None)
    if core is None or getattr(core, "_gate_way", None) != LIBRARY_GATEWAY or getattr(core, "_certificates", None):
        raise RuntimeError(
            f"wechatpayv3 {wechatpayv3.__version__} no longer keeps its gateway in _core._gate_way (or fetched "
            "certificates while building): re-check siyu.wechat.pay.client before sending anything")
    core._gate_way = base
    return client


def notify_url(mchid: str) -> str:
    return f"{settings.SIYU_PUBLIC_URL}/wx/pay/{mchid}/notify"


def refund_notify_url(mchid: str) -> str:
    return f"{settings.SIYU_PUBLIC_URL}/wx/pay/{mchid}/refund-notify"


def _call(config: MerchantConfig, api: str, call, *args, **kwargs) -> dict[str, Any]:
    """One v3 call, retried after :func:`siyu.wechat.clients.retry_delays` while the failure is transient
    (every call we make is idempotent at WeChat Pay: same out_trade_no / out_refund_no, same answer). A
    failure an operator must see (rate limit, outage, rejected signature, merchant balance) opens an ApiIssue."""
    delays = list(retry_delays())
    while True:
        try:
            return _call_once(call, *args, **kwargs)
        except PayApiError as error:
            transient = error.status == 0 or error.status >= 500 or error.status == 429
            if transient and delays:
                time.sleep(delays.pop(0))
                continue
            if transient or error.status in {401, 403} or error.code in OPERATOR_CODES:
                _issue(config, api, error)
            raise


OPERATOR_CODES = frozenset({"NOT_ENOUGH", "NO_AUTH", "SIGN_ERROR", "APPID_MCHID_NOT_MATCH", "MCH_NOT_EXISTS"})


def _issue(config: MerchantConfig, api: str, error: PayApiError) -> None:
    app = WeChatApp.objects.filter(kind=AppKind.PAY, appid=config.mchid).first()
    if app is not None:
        issue_record(app=app, api=api, errcode=error.status or -1, errmsg=f"{error.code} {error.message}")


def _call_once(call, *args, **kwargs) -> dict[str, Any]:
    try:
        status, text = call(*args, **kwargs)
    except requests.RequestException as error:
        raise PayApiError("NETWORK", f"微信支付无法连接：{type(error).__name__}", 0) from error
    except Exception as error:  # the library raises bare Exception, e.g. for a response signature it rejects
        raise PayApiError("SDK_ERROR", str(error)[:200], 0) from error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if 200 <= status < 300:
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError as error:
            raise PayApiError("BAD_RESPONSE", "微信支付返回了无法解析的内容", 0) from error
    try:
        body = json.loads(text or "{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return _raise(str(body.get("code") or f"HTTP_{status}"), str(body.get("message") or text)[:200], status)


def _raise(code: str, message: str, status: int):
    raise PayApiError(code, message, status)


def jsapi_prepay(config: MerchantConfig, *, appid: str, out_trade_no: str, amount_fen: int, description: str,
                 payer_openid: str, expires_at: str | None = None) -> str:
    answer = _call(config, "pay:jsapi", pay_client(config).pay, description=description, out_trade_no=out_trade_no,
                   amount={"total": amount_fen, "currency": "CNY"}, payer={"openid": payer_openid},
                   appid=appid, time_expire=expires_at, pay_type=WeChatPayType.JSAPI)
    if not answer.get("prepay_id"):
        raise PayApiError("BAD_RESPONSE", "微信支付未返回 prepay_id", 0)
    return str(answer["prepay_id"])


def client_pay_params(config: MerchantConfig, *, appid: str, prepay_id: str) -> dict[str, str]:
    """What WeixinJSBridge ``getBrandWCPayRequest`` / ``wx.requestPayment`` take, signed with the merchant key."""
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16).upper()
    package = f"prepay_id={prepay_id}"
    pay_sign = pay_client(config).sign([appid, timestamp, nonce, package])
    return {"appId": appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package, "signType": "RSA",
            "paySign": pay_sign}


def order_query(config: MerchantConfig, *, out_trade_no: str) -> dict[str, Any]:
    return _call(config, "pay:query", pay_client(config).query, out_trade_no=out_trade_no)


def order_close(config: MerchantConfig, *, out_trade_no: str) -> None:
    _call(config, "pay:close", pay_client(config).close, out_trade_no=out_trade_no)


def refund_create(config: MerchantConfig, *, out_trade_no: str, out_refund_no: str, amount_fen: int,
                  total_fen: int, reason: str = "") -> dict[str, Any]:
    return _call(config, "pay:refund", pay_client(config).refund, out_refund_no=out_refund_no, out_trade_no=out_trade_no,
                 amount={"refund": amount_fen, "total": total_fen, "currency": "CNY"}, reason=reason or None,
                 notify_url=refund_notify_url(config.mchid))


def refund_query(config: MerchantConfig, *, out_refund_no: str) -> dict[str, Any]:
    return _call(config, "pay:refund_query", pay_client(config).query_refund, out_refund_no=out_refund_no)


# --- notifications ------------------------------------------------------------------------------------
NOTIFICATION_HEADERS = ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial")


def notification_open(config: MerchantConfig, *, headers: dict[str, str], body: bytes,
                      now: float | None = None) -> dict[str, Any]:
    """Verify a notification (platform key, serial, timestamp ±5 min) and decrypt its resource.

    ``headers`` are the HTTP headers by their usual names (any case). Returns the envelope with
    ``resource`` replaced by the decrypted JSON; raises :class:`NotificationRejected` with a reason code.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    values = {name: lowered.get(name.lower(), "") for name in NOTIFICATION_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise NotificationRejected("missing_headers", ", ".join(missing))
    if values["Wechatpay-Serial"] != config.platform_public_key_id:
        raise NotificationRejected("wrong_serial", values["Wechatpay-Serial"][:64])
    try:
        stamp = int(values["Wechatpay-Timestamp"])
    except ValueError as error:
        raise NotificationRejected("stale_timestamp", "not a number") from error
    if abs((time.time() if now is None else now) - stamp) > TIMESTAMP_TOLERANCE:
        raise NotificationRejected("stale_timestamp", values["Wechatpay-Timestamp"][:20])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotificationRejected("malformed", "body is not UTF-8") from error
    public_key = _platform_key(config.platform_public_key)
    if not rsa_verify(values["Wechatpay-Timestamp"], values["Wechatpay-Nonce"], text,
                      values["Wechatpay-Signature"], public_key):
        raise NotificationRejected("bad_signature")
    try:
        envelope = json.loads(text)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
            raise NotificationRejected("malformed", "no resource")
        sdk_headers = {**values, "Wechatpay-Signature-Type": SIGNATURE_TYPE}
        opened = pay_client(config).callback(sdk_headers, text)
    except NotificationRejected:
        raise
    except Exception as error:  # the SDK raises bare Exception (unknown algorithm) or base64/JSON errors
        raise NotificationRejected("malformed", str(error)[:200]) from error
    if not opened or not isinstance(opened.get("resource"), dict):
        raise NotificationRejected("decrypt_failed", "AEAD_AES_256_GCM authentication failed")
    return opened


@functools.lru_cache(maxsize=32)
def _platform_key(pem: str):
    return load_public_key(pem)
