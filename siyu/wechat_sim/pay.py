"""Simulated 微信支付 v3 (api.mch.weixin.qq.com): merchants, JSAPI prepay, query, close, refunds, notifications.

Every request must carry a valid ``WECHATPAY2-SHA256-RSA2048`` Authorization made with the merchant's key
(401 SIGN_ERROR otherwise); every answer is signed with the simulator's platform key (``Wechatpay-*``
headers), as the real platform does, so Siyu's SDK verifies it. Errors have the v3 shape
``{"code": ..., "message": ...}`` with WeChat's HTTP statuses.

Money moves when a simulated consumer pays (:func:`pay`) and when refunds settle (:func:`refunds_settle`);
both deliver a signed notification whose resource is AES-256-GCM encrypted with the merchant's API v3 key.
Delivery honours the faults ``duplicate_notify`` (sent twice), ``out_of_order`` (held back until after the
next notification) and ``delay_callback`` (held until :func:`notifications_flush`). A notification Siyu does
not answer with 2xx is kept and re-sent by :func:`notifications_flush`, as WeChat retries.

Merchants are ``SimApp(kind="pay", appid=mchid, extra={"api_v3_key", "merchant_serial_no",
"merchant_public_key" (PEM), "appids" (optional list of bound AppIDs)})``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from siyu.wechat_sim import paycrypto
from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp, SimUser

HOST = "api.mch.weixin.qq.com"
SIM = "_sim"
TIMESTAMP_TOLERANCE = 300
CHINA = timezone(timedelta(hours=8))
OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
TRANSACTIONS_PATH = "/v3/pay/transactions"
REFUNDS_PATH = "/v3/refund/domestic/refunds"


@dataclass
class SimOrder:
    mchid: str
    appid: str
    out_trade_no: str
    description: str
    notify_url: str
    total: int
    payer_openid: str
    prepay_id: str
    currency: str = "CNY"
    attach: str = ""
    trade_state: str = "NOTPAY"  # NOTPAY | SUCCESS | CLOSED | REFUND
    transaction_id: str = ""
    success_time: str = ""
    created_at: float = field(default_factory=time.time)

    def as_transaction(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "appid": self.appid, "mchid": self.mchid, "out_trade_no": self.out_trade_no,
            "trade_state": self.trade_state, "trade_state_desc": TRADE_STATE_DESC[self.trade_state],
            "amount": {"total": self.total, "currency": self.currency},
        }
        if self.attach:
            body["attach"] = self.attach
        if self.transaction_id:
            body.update({
                "transaction_id": self.transaction_id, "trade_type": "JSAPI", "bank_type": "OTHERS",
                "success_time": self.success_time, "payer": {"openid": self.payer_openid},
                "amount": {"total": self.total, "payer_total": self.total, "currency": self.currency,
                           "payer_currency": self.currency},
            })
        return body


TRADE_STATE_DESC = {"NOTPAY": "订单未支付", "SUCCESS": "支付成功", "CLOSED": "订单已关闭", "REFUND": "订单发生过退款"}


@dataclass
class SimRefund:
    mchid: str
    out_trade_no: str
    transaction_id: str
    out_refund_no: str
    refund_id: str
    refund: int
    total: int
    reason: str = ""
    notify_url: str = ""
    status: str = "PROCESSING"  # PROCESSING | SUCCESS | ABNORMAL | CLOSED
    create_time: str = ""
    success_time: str = ""

    def as_refund(self) -> dict[str, Any]:
        body = {
            "refund_id": self.refund_id, "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id, "out_trade_no": self.out_trade_no, "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱", "create_time": self.create_time, "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {"total": self.total, "refund": self.refund, "payer_total": self.total,
                       "payer_refund": self.refund, "settlement_total": self.total,
                       "settlement_refund": self.refund, "discount_refund": 0, "currency": "CNY", "refund_fee": 0},
        }
        if self.success_time:
            body["success_time"] = self.success_time
        return body


@dataclass
class Outgoing:
    """One notification on its way to a merchant."""

    id: str
    mchid: str
    url: str
    body: bytes
    headers: dict[str, str]
    event_type: str
    path: str  # for fault matching: the API path the notification is about
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)


@dataclass
class PayState:
    platform_key: Any = None  # RSAPrivateKey
    platform_key_id: str = ""
    orders: dict[tuple[str, str], SimOrder] = field(default_factory=dict)
    prepay: dict[str, tuple[str, str]] = field(default_factory=dict)  # prepay_id → (mchid, out_trade_no)
    refunds: dict[tuple[str, str], SimRefund] = field(default_factory=dict)
    delayed: list[Outgoing] = field(default_factory=list)  # delay_callback: until notifications_flush
    held: list[Outgoing] = field(default_factory=list)  # out_of_order: until the next delivery
    undelivered: list[Outgoing] = field(default_factory=list)  # Siyu did not answer 2xx: retried on flush
    log: list[Outgoing] = field(default_factory=list)  # every notification sent at least once
    sequence: int = 0


def pay_state(sim: Simulator) -> PayState:
    state = sim.state.area("pay", PayState)
    if state.platform_key is None:
        platform_key_set(sim, paycrypto.key_cached("wechat-pay-platform"))
    return state


def platform_key_set(sim: Simulator, key: Any, key_id: str | None = None) -> None:
    """Use this RSA key (and public key id) as the platform's signing key."""
    state = sim.state.area("pay", PayState)
    state.platform_key = key
    state.platform_key_id = key_id or "PUB_KEY_ID_" + paycrypto.key_fingerprint(key, 32)


def platform_public(sim: Simulator) -> dict[str, str]:
    """What a merchant configures to verify the platform (public key mode): PEM and public key id."""
    state = pay_state(sim)
    return {"public_key": paycrypto.public_pem(state.platform_key), "public_key_id": state.platform_key_id}


def merchant_register(sim: Simulator, *, mchid: str, api_v3_key: str, merchant_serial_no: str,
                      merchant_public_key: str, appids: list[str] | None = None) -> SimApp:
    if len(api_v3_key.encode()) != 32:
        raise SimError(40097, "api_v3_key must be 32 bytes", status=400)
    paycrypto.public_key_load(merchant_public_key)
    app = SimApp(kind="pay", appid=mchid, extra={
        "api_v3_key": api_v3_key, "merchant_serial_no": merchant_serial_no,
        "merchant_public_key": merchant_public_key, "appids": list(appids or []),
    })
    with sim.lock:
        return sim.state.app_register(app)


# --- the protocol: authentication in, signatures out ---------------------------------------------------
class PayError(Exception):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(f"{code} {message}")
        self.code, self.message, self.status = code, message, status


def _signed(sim: Simulator, response: SimResponse) -> SimResponse:
    state = pay_state(sim)
    body = response.body.decode()
    response.headers.update(paycrypto.signed_headers(key=state.platform_key, serial=state.platform_key_id,
                                                     body=body))
    response.headers.setdefault("Request-ID", paycrypto.nonce(24))
    return response


def _error(sim: Simulator, error: PayError) -> SimResponse:
    return _signed(sim, SimResponse.json({"code": error.code, "message": error.message}, status=error.status))


def _authenticate(sim: Simulator, request: SimRequest) -> SimApp:
    """The merchant whose valid signature this request carries, or PayError 401 SIGN_ERROR."""
    fields = paycrypto.authorization_parse(request.headers.get("authorization", ""))
    if fields is None:
        raise PayError("SIGN_ERROR", "Authorization 缺失或格式错误", 401)
    with sim.lock:
        merchant = sim.state.apps.get(fields["mchid"])
    if merchant is None or merchant.kind != "pay":
        raise PayError("SIGN_ERROR", "商户号不存在或未配置 API 证书", 401)
    if fields["serial_no"].upper() != str(merchant.extra["merchant_serial_no"]).upper():
        raise PayError("SIGN_ERROR", "商户证书序列号有误", 401)
    try:
        stamp = int(fields["timestamp"])
    except ValueError as error:
        raise PayError("SIGN_ERROR", "时间戳格式错误", 401) from error
    if abs(time.time() - stamp) > TIMESTAMP_TOLERANCE:
        raise PayError("SIGN_ERROR", "请求时间戳过期", 401)
    path = request.path + ("?" + urlencode(request.query) if request.query else "")
    message = paycrypto.request_message(request.method, path, fields["timestamp"], fields["nonce_str"],
                                        request.body.decode("utf-8", "replace"))
    key = paycrypto.public_key_load(merchant.extra["merchant_public_key"])
    if not paycrypto.rsa_verify(key, message, fields["signature"]):
        raise PayError("SIGN_ERROR", "签名错误", 401)
    return merchant


def _json_body(request: SimRequest) -> dict[str, Any]:
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError as error:
        raise PayError("PARAM_ERROR", "请求体不是有效的 JSON", 400) from error
    if not isinstance(payload, dict):
        raise PayError("PARAM_ERROR", "请求体必须是 JSON 对象", 400)
    return payload


def api(handler):
    """Authenticate, run, sign; PayError becomes a signed v3 error answer."""

    def wrapped(sim: Simulator, request: SimRequest) -> SimResponse:
        try:
            merchant = _authenticate(sim, request)
            return _signed(sim, handler(sim, request, merchant))
        except PayError as error:
            return _error(sim, error)

    wrapped.__name__ = handler.__name__
    return wrapped


def _now_text() -> str:
    return datetime.now(CHINA).isoformat(timespec="seconds")


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise PayError("PARAM_ERROR", f"{name} 必须是正整数（单位：分）", 400)
    return value


# --- endpoints ---------------------------------------------------------------------------------------
@route("POST", HOST, TRANSACTIONS_PATH + "/jsapi")
@api
def jsapi_prepay(sim: Simulator, request: SimRequest, merchant: SimApp) -> SimResponse:
    body = _json_body(request)
    for name in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount", "payer"):
        if not body.get(name):
            raise PayError("PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败，此字段为必填项", 400)
    if body["mchid"] != merchant.appid:
        raise PayError("PARAM_ERROR", "mchid 与请求签名的商户号不一致", 400)
    if merchant.extra.get("appids") and body["appid"] not in merchant.extra["appids"]:
        raise PayError("APPID_MCHID_NOT_MATCH", "AppID 和 mch_id 不匹配", 400)
    if not OUT_NO.match(str(body["out_trade_no"])):
        raise PayError("PARAM_ERROR", "out_trade_no 只能是 6-32 位数字、大小写字母_-|*", 400)
    if not str(body["notify_url"]).startswith(("https://", "http://")):
        raise PayError("PARAM_ERROR", "notify_url 格式错误", 400)
    if len(str(body["description"])) > 127:
        raise PayError("PARAM_ERROR", "description 超过 127 个字符", 400)
    amount, payer = body["amount"], body["payer"]
    if not isinstance(amount, dict) or not isinstance(payer, dict) or not payer.get("openid"):
        raise PayError("PARAM_ERROR", "amount.total 与 payer.openid 必填", 400)
    total = _positive_int(amount.get("total"), "amount.total")
    if amount.get("currency", "CNY") != "CNY":
        raise PayError("PARAM_ERROR", "仅支持人民币 CNY", 400)
    key = (merchant.appid, str(body["out_trade_no"]))
    state = pay_state(sim)
    with sim.lock:
        order = state.orders.get(key)
        if order is not None:
            if order.trade_state in {"SUCCESS", "REFUND"}:
                raise PayError("ORDERPAID", "该订单已支付", 400)
            if order.trade_state == "CLOSED":
                raise PayError("ORDER_CLOSED", "该订单已关闭", 400)
            if (order.appid, order.total, order.payer_openid) != (body["appid"], total, payer["openid"]):
                raise PayError("INVALID_REQUEST", "商户订单号重复，且与原订单参数不一致", 400)
            return SimResponse.json({"prepay_id": order.prepay_id})
        prepay_id = "wx" + datetime.now(CHINA).strftime("%d%H%M%S") + secrets.token_hex(12)
        state.orders[key] = SimOrder(
            mchid=merchant.appid, appid=body["appid"], out_trade_no=key[1], description=str(body["description"]),
            notify_url=str(body["notify_url"]), total=total, payer_openid=str(payer["openid"]),
            prepay_id=prepay_id, attach=str(body.get("attach") or ""))
        state.prepay[prepay_id] = key
    return SimResponse.json({"prepay_id": prepay_id})


def _order_path(request: SimRequest, merchant: SimApp) -> tuple[str, str]:
    rest = request.path.removeprefix(TRANSACTIONS_PATH + "/out-trade-no/")
    out_trade_no = rest.removesuffix("/close")
    if not out_trade_no or "/" in out_trade_no:
        raise PayError("PARAM_ERROR", "out_trade_no 格式错误", 400)
    return merchant.appid, out_trade_no


@route("GET", HOST, TRANSACTIONS_PATH + "/out-trade-no/", prefix=True)
@api
def order_query(sim: Simulator, request: SimRequest, merchant: SimApp) -> SimResponse:
    if request.arg("mchid") != merchant.appid:
        raise PayError("PARAM_ERROR", "mchid 必填且须与请求签名的商户号一致", 400)
    with sim.lock:
        order = pay_state(sim).orders.get(_order_path(request, merchant))
        if order is None:
            raise PayError("ORDER_NOT_EXIST", "订单不存在", 404)
        return SimResponse.json(order.as_transaction())


@route("GET", HOST, TRANSACTIONS_PATH + "/id/", prefix=True)
@api
def order_query_by_transaction(sim: Simulator, request: SimRequest, merchant: SimApp) -> SimResponse:
    transaction_id = request.path.removeprefix(TRANSACTIONS_PATH + "/id/")
    with sim.lock:
        for order in pay_state(sim).orders.values():
            if order.mchid == merchant.appid and order.transaction_id and order.transaction_id == transaction_id:
                return SimResponse.json(order.as_transaction())
    raise PayError("ORDER_NOT_EXIST", "订单不存在", 404)


@route("POST", HOST, TRANSACTIONS_PATH + "/out-trade-no/", prefix=True)
@api
def order_close(sim: Simulator, request: SimRequest, merchant: SimApp) -> SimResponse:
    if not request.path.endswith("/close"):
        raise PayError("NOT_FOUND", "请求的资源不存在", 404)
    if _json_body(request).get("mchid") != merchant.appid:
        raise PayError("PARAM_ERROR", "mchid 必填且须与请求签名的商户号一致", 400)
    with sim.lock:
        order = pay_state(sim).orders.get(_order_path(request, merchant))
        if order is None:
            raise PayError("ORDER_NOT_EXIST", "订单不存在", 404)
        if order.trade_state in {"SUCCESS", "REFUND"}:
            raise PayError("ORDERPAID", "订单已支付，不能关闭", 400)
        order.trade_state = "CLOSED"
    return SimResponse(204, b"", {})


@route("POST", HOST, REFUNDS_PATH)
@api
def refund_create(sim: Simulator, request: SimRequest, merchant: SimApp) -> SimResponse:
    body = _json_body(request)
    out_refund_no = str(body.get("out_refund_no") or "")
    if not OUT_REFUND_NO.match(out_refund_no):
        raise PayError("PARAM_ERROR", "out_refund_no 必填，1-64 位数字、大小写字母_-|*@", 400)
    amount = body.get("amount")
    if not isinstance(amount, dict):
        raise PayError("PARAM_ERROR", "amount 必填", 400)
    refund = _positive_int(amount.get("refund"), "amount.refund")
    total = _positive_int(amount.get("total"), "amount.total")
    if amount.get("currency", "CNY") != "CNY":
        raise PayError("PARAM_ERROR", "仅支持人民币 CNY", 400)
    state = pay_state(sim)
    with sim.lock:
        order = _order_for_refund(state, merchant, body)
        if order.trade_state not in {"SUCCESS", "REFUND"}:
            raise PayError("INVALID_REQUEST", "订单未支付或已关闭，不能退款", 400)
        if total != order.total:
            raise PayError("PARAM_ERROR", "amount.total 与原订单金额不一致", 400)
        existing = state.refunds.get((merchant.appid, out_refund_no))
        if existing is not None:
            if (existing.out_trade_no, existing.refund) != (order.out_trade_no, refund):
                raise PayError("INVALID_REQUEST", "退款单号重复，且与原退款参数不一致", 400)
            return SimResponse.json(existing.as_refund())
        committed = sum(item.refund for item in state.refunds.values()
                        if item.mchid == merchant.appid and item.out_trade_no == order.out_trade_no
                        and item.status != "CLOSED")
        if committed + refund > order.total:
            raise PayError("NOT_ENOUGH", "订单可退金额不足", 403)
        state.sequence += 1
        item = SimRefund(
            mchid=merchant.appid, out_trade_no=order.out_trade_no, transaction_id=order.transaction_id,
            out_refund_no=out_refund_no, refund_id=f"5030{_digits(24)}", refund=refund, total=order.total,
            reason=str(body.get("reason") or ""), notify_url=str(body.get("notify_url") or ""),
            create_time=_now_text())
        state.refunds[(merchant.appid, out_refund_no)] = item
        return SimResponse.json(item.as_refund())


def _order_for_refund(state: PayState, merchant: SimApp, body: dict[str, Any]) -> SimOrder:
    if body.get("out_trade_no"):
        order = state.orders.get((merchant.appid, str(body["out_trade_no"])))
    elif body.get("transaction_id"):
        order = next((item for item in state.orders.values() if item.mchid == merchant.appid
                      and item.transaction_id == body["transaction_id"]), None)
    else:
        raise PayError("PARAM_ERROR", "transaction_id 与 out_trade_no 必填其一", 400)
    if order is None:
        raise PayError("RESOURCE_NOT_EXISTS", "订单不存在", 404)
    return order


@route("GET", HOST, REFUNDS_PATH + "/", prefix=True)
@api
def refund_query(sim: Simulator, request: SimRequest, merchant: SimApp) -> SimResponse:
    out_refund_no = request.path.removeprefix(REFUNDS_PATH + "/")
    with sim.lock:
        item = pay_state(sim).refunds.get((merchant.appid, out_refund_no))
        if item is None:
            raise PayError("RESOURCE_NOT_EXISTS", "退款单不存在", 404)
        return SimResponse.json(item.as_refund())


# --- consumers and notifications -----------------------------------------------------------------------
@dataclass
class PayResult:
    transaction_id: str
    out_trade_no: str
    notifications: list[int]  # HTTP statuses of the deliveries made now (empty when held back)


def pay(sim: Simulator, user: SimUser, prepay_id: str) -> PayResult:
    """The consumer confirms the payment in WeChat: the order is paid and the merchant notified."""
    state = pay_state(sim)
    with sim.lock:
        key = state.prepay.get(prepay_id)
        order = state.orders.get(key) if key else None
        if order is None:
            raise SimError(404, "prepay_id 不存在", status=404)
        if sim.state.openid(user, order.appid) != order.payer_openid:
            raise SimError(403, "支付者不是下单时的 openid", status=403)
        if order.trade_state == "CLOSED":
            raise SimError(400, "订单已关闭", status=400)
        if order.trade_state in {"SUCCESS", "REFUND"}:
            raise SimError(400, "订单已支付", status=400)
        order.trade_state = "SUCCESS"
        order.transaction_id = "4200" + datetime.now(CHINA).strftime("%Y%m%d") + _digits(16)
        order.success_time = _now_text()
        outgoing = _notification(sim, order.mchid, order.notify_url, TRANSACTIONS_PATH, "TRANSACTION.SUCCESS",
                                 "支付成功", "transaction", order.as_transaction())
    return PayResult(order.transaction_id, order.out_trade_no, _dispatch(sim, outgoing))


def refunds_settle(sim: Simulator, *, mchid: str | None = None, out_refund_no: str | None = None,
                   status: str = "SUCCESS") -> list[dict[str, Any]]:
    """Finish processing refunds (as WeChat does minutes later): SUCCESS, ABNORMAL or CLOSED, notified."""
    if status not in {"SUCCESS", "ABNORMAL", "CLOSED"}:
        raise SimError(40097, "status must be SUCCESS, ABNORMAL or CLOSED", status=400)
    state = pay_state(sim)
    settled: list[tuple[SimRefund, Outgoing | None]] = []
    with sim.lock:
        for item in state.refunds.values():
            if item.status != "PROCESSING" or (mchid and item.mchid != mchid) \
                    or (out_refund_no and item.out_refund_no != out_refund_no):
                continue
            item.status = status
            if status == "SUCCESS":
                item.success_time = _now_text()
                state.orders[(item.mchid, item.out_trade_no)].trade_state = "REFUND"
            outgoing = None
            if item.notify_url:
                resource = {"mchid": item.mchid, "out_trade_no": item.out_trade_no,
                            "transaction_id": item.transaction_id, "out_refund_no": item.out_refund_no,
                            "refund_id": item.refund_id, "refund_status": status,
                            "user_received_account": "支付用户零钱",
                            "amount": {"total": item.total, "refund": item.refund, "payer_total": item.total,
                                       "payer_refund": item.refund}}
                if item.success_time:
                    resource["success_time"] = item.success_time
                summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}[status]
                outgoing = _notification(sim, item.mchid, item.notify_url, REFUNDS_PATH, f"REFUND.{status}",
                                         summary, "refund", resource)
            settled.append((item, outgoing))
    answer = []
    for item, outgoing in settled:
        answer.append({**item.as_refund(), "notifications": _dispatch(sim, outgoing) if outgoing else []})
    return answer


def notification_build(sim: Simulator, *, mchid: str, event_type: str, summary: str, original_type: str,
                       resource: dict[str, Any], notification_id: str | None = None,
                       timestamp: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A signed notification with an encrypted resource (tests use it to build variations and forgeries)."""
    state = pay_state(sim)
    with sim.lock:
        merchant = sim.state.apps[mchid]
    nonce_str = paycrypto.nonce(12)
    plaintext = json.dumps(resource, ensure_ascii=False)
    envelope = {
        "id": notification_id or paycrypto.nonce(8) + "-" + paycrypto.nonce(4) + "-" + paycrypto.nonce(12),
        "create_time": _now_text(), "resource_type": "encrypt-resource", "event_type": event_type,
        "summary": summary,
        "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": paycrypto.aes_gcm_encrypt(api_v3_key=merchant.extra["api_v3_key"],
                                                             plaintext=plaintext, associated_data=original_type,
                                                             nonce_str=nonce_str),
                     "associated_data": original_type, "nonce": nonce_str},
    }
    body = json.dumps(envelope, ensure_ascii=False)
    headers = {"Content-Type": "application/json",
               **paycrypto.signed_headers(key=state.platform_key, serial=state.platform_key_id, body=body,
                                          timestamp=timestamp)}
    return body.encode(), headers


def _notification(sim: Simulator, mchid: str, url: str, path: str, event_type: str, summary: str,
                  original_type: str, resource: dict[str, Any]) -> Outgoing:
    body, headers = notification_build(sim, mchid=mchid, event_type=event_type, summary=summary,
                                       original_type=original_type, resource=resource)
    return Outgoing(json.loads(body)["id"], mchid, url, body, headers, event_type, path)


def _dispatch(sim: Simulator, outgoing: Outgoing) -> list[int]:
    """Deliver a new notification, applying the delivery faults; returns the statuses of deliveries made."""
    state = pay_state(sim)
    if sim.faults.take("delay_callback", HOST, outgoing.path):
        with sim.lock:
            state.delayed.append(outgoing)
        return []
    if sim.faults.take("out_of_order", HOST, outgoing.path):
        with sim.lock:
            state.held.append(outgoing)
        return []
    copies = 2 if sim.faults.take("duplicate_notify", HOST, outgoing.path) else 1
    statuses = [_send(sim, outgoing) for _ in range(copies)]
    with sim.lock:
        released, state.held = state.held, []
    for item in released:  # the ones held back arrive after this newer one: out of order
        statuses.append(_send(sim, item))
    return statuses


def _send(sim: Simulator, outgoing: Outgoing) -> int:
    status, _answer = sim.deliver(outgoing.url, outgoing.body, dict(outgoing.headers))
    state = pay_state(sim)
    with sim.lock:
        outgoing.attempts += 1
        outgoing.statuses.append(status)
        if outgoing not in state.log:
            state.log.append(outgoing)
        accepted = 200 <= status < 300
        if not accepted and outgoing not in state.undelivered:
            state.undelivered.append(outgoing)
        if accepted and outgoing in state.undelivered:
            state.undelivered.remove(outgoing)
    return status


def notifications_flush(sim: Simulator) -> list[int]:
    """Deliver what was delayed or held back, and retry what Siyu did not accept (WeChat's retries)."""
    state = pay_state(sim)
    with sim.lock:
        pending = [*state.delayed, *state.held, *state.undelivered]
        state.delayed, state.held = [], []
    return [_send(sim, item) for item in pending]


# --- control API: /_sim/pay/... -------------------------------------------------------------------------
def _control_json(request: SimRequest) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict):
        raise SimError(40097, "a JSON object is required", status=400)
    return payload


@route("POST", SIM, "/pay/merchants")
def control_merchant_register(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control_json(request)
    missing = [name for name in ("mchid", "api_v3_key", "merchant_serial_no", "merchant_public_key")
               if not payload.get(name)]
    if missing:
        raise SimError(40097, f"missing: {', '.join(missing)}", status=400)
    try:
        app = merchant_register(sim, mchid=str(payload["mchid"]), api_v3_key=str(payload["api_v3_key"]),
                                merchant_serial_no=str(payload["merchant_serial_no"]),
                                merchant_public_key=str(payload["merchant_public_key"]),
                                appids=payload.get("appids"))
    except ValueError as error:
        raise SimError(40097, "merchant_public_key is not an RSA public key PEM", status=400) from error
    return SimResponse.json({"mchid": app.appid, **platform_public(sim)})


@route("GET", SIM, "/pay/platform")
def control_platform(sim: Simulator, request: SimRequest) -> SimResponse:
    return SimResponse.json(platform_public(sim))


@route("POST", SIM, "/pay/pay")
def control_pay(sim: Simulator, request: SimRequest) -> SimResponse:
    """A simulated consumer pays: {"user": "<sim user key>", "prepay_id": "..."}, or {"openid": "...",
    "prepay_id": "..."} naming the payer as the merchant's side knows them (a simulated H5 cashier)."""
    payload = _control_json(request)
    if not (payload.get("user") or payload.get("openid")) or not payload.get("prepay_id"):
        raise SimError(40097, "user (or openid) and prepay_id are required", status=400)
    with sim.lock:
        if payload.get("user"):
            user = sim.state.user(str(payload["user"]))
        else:
            state = pay_state(sim)
            key = state.prepay.get(str(payload["prepay_id"]))
            order = state.orders.get(key) if key else None
            user = sim.state.user_by_openid(order.appid, str(payload["openid"])) if order else None
            if user is None:
                raise SimError(403, "openid 不是本次支付的用户", status=403)
    return SimResponse.json(asdict(pay(sim, user, str(payload["prepay_id"]))))


@route("POST", SIM, "/pay/refunds/settle")
def control_refunds_settle(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _control_json(request)
    return SimResponse.json(refunds_settle(sim, mchid=payload.get("mchid"), out_refund_no=payload.get("out_refund_no"),
                                           status=str(payload.get("status", "SUCCESS"))))


@route("POST", SIM, "/pay/notifications/flush")
def control_flush(sim: Simulator, request: SimRequest) -> SimResponse:
    return SimResponse.json({"statuses": notifications_flush(sim)})


@route("GET", SIM, "/pay/orders")
def control_orders(sim: Simulator, request: SimRequest) -> SimResponse:
    mchid = request.arg("mchid")
    with sim.lock:
        state = pay_state(sim)
        orders = [order.as_transaction() | {"prepay_id": order.prepay_id} for order in state.orders.values()
                  if not mchid or order.mchid == mchid]
        notifications = [{"id": item.id, "event_type": item.event_type, "statuses": item.statuses}
                         for item in state.log if not mchid or item.mchid == mchid]
    return SimResponse.json({"orders": orders, "notifications": notifications})
