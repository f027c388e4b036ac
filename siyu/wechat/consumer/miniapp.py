"""小程序 (SPEC W2, X8): login by ``code2session``, phone number, and subscribe messages.

The mini-program's ``wx.login()`` code is exchanged on the server for openid (+ unionid); the client
gets a Siyu session token, never WeChat's session_key. WeChat is always called before anything is
written, so a refused code, a used code or a rate limit leaves no customer, identity, event or session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.crypto import encrypt_text, mask_phone, normalize_phone, phone_hash
from siyu.core.errors import SiyuError
from siyu.customers.models import Customer, IdentityKind
from siyu.wechat.clients import WeChatApiError, miniapp_client, wechat_call
from siyu.wechat.consumer.identify import consumer_identify, event_id_for
from siyu.wechat.consumer.models import (
    ConsumerSession,
    SendStatus,
    SessionKind,
    SubscribeAuthorisation,
    SubscribeSend,
)
from siyu.wechat.consumer.sessions import consumer_session_create
from siyu.wechat.models import WeChatApp

MAX_CODE = 128
MAX_TEMPLATES_PER_REQUEST = 3  # wx.requestSubscribeMessage accepts at most three templates at a time
INVALID_CODE, USED_CODE, USER_REFUSED = 40029, 40163, 43101
TEMPLATE_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
SUBSCRIBE_ANSWERS = frozenset({"accept", "reject", "ban", "filter"})  # what wx.requestSubscribeMessage reports


@dataclass(frozen=True)
class LoginResult:
    session: ConsumerSession
    token: str
    customer_id: int
    is_new: bool

    def as_dict(self) -> dict:
        return {"token": self.token, "expires_at": self.session.expires_at.isoformat(),
                "customer": {"id": self.customer_id, "is_new": self.is_new}}


def _code(raw, *, what_zh: str, what_en: str) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_CODE:
        raise SiyuError("wx_code_missing", f"缺少{what_zh} code", f"The {what_en} code is missing or malformed",
                        status=400)
    return raw.strip()


def _code_error(error: WeChatApiError, *, what_zh: str, what_en: str) -> SiyuError:
    """WeChat's answer about a consumer's code, as the consumer-facing error; others pass through."""
    if error.errcode == INVALID_CODE:
        return SiyuError("wx_code_invalid", f"{what_zh} code 无效或已过期(5 分钟内有效),请重新获取",
                         f"The {what_en} code is invalid or expired (codes live 5 minutes); get a new one",
                         status=400, details={"errcode": error.errcode})
    if error.errcode == USED_CODE:
        return SiyuError("wx_code_used", f"{what_zh} code 已被使用,请重新获取",
                         f"The {what_en} code was already used; get a new one", status=409,
                         details={"errcode": error.errcode})
    return error


def miniapp_login(*, app: WeChatApp, code) -> LoginResult:
    """``wx.login`` code → code2session → customer (openid in this AppID, unionid) → session token."""
    code = _code(code, what_zh="登录凭证", what_en="login")
    client = miniapp_client(app)
    try:
        answer = wechat_call(app, "sns/jscode2session", client.wxa.code_to_session, code)
    except WeChatApiError as error:
        raise _code_error(error, what_zh="登录凭证", what_en="login") from None
    openid, unionid, session_key = answer.get("openid"), answer.get("unionid"), answer.get("session_key")
    if not isinstance(openid, str) or not openid:
        raise SiyuError("wechat_bad_answer", "微信未返回 openid", "WeChat answered without an openid", status=502)
    with transaction.atomic():
        identified = consumer_identify(app=app, event_type="mini_program_login",
                                       event_id=event_id_for("wxmini-login", app.appid, code),
                                       openid=openid, unionid=unionid if isinstance(unionid, str) else None)
        session, token = consumer_session_create(app=app, identity=identified.identity, kind=SessionKind.MINIAPP,
                                                 session_key=session_key if isinstance(session_key, str) else None,
                                                 is_new_customer=identified.is_new)
    return LoginResult(session=session, token=token, customer_id=identified.customer_id, is_new=identified.is_new)


def miniapp_phone_bind(*, session: ConsumerSession, code) -> dict:
    """The phone-number button's code → WeChat's ``getuserphonenumber`` → phone identity on this customer.

    A phone is a strong identity: if another customer already has it, the two are merged (identity rules).
    Returns only the masked number.
    """
    if session.kind != SessionKind.MINIAPP:
        raise SiyuError("consumer_wrong_session", "请在小程序内绑定手机号", "Bind a phone number from the mini-program",
                        status=400)
    code = _code(code, what_zh="手机号授权", what_en="phone-number")
    app = session.app
    client = miniapp_client(app)
    try:
        # wechatpy has no method for this API; post through the same client (token cache, transport). A full
        # URL, since the client's base is .../cgi-bin/.
        answer = wechat_call(app, "wxa/business/getuserphonenumber", client.post,
                             "https://api.weixin.qq.com/wxa/business/getuserphonenumber", data={"code": code})
    except WeChatApiError as error:
        raise _code_error(error, what_zh="手机号授权", what_en="phone-number") from None
    info = answer.get("phone_info") or {}
    raw = info.get("purePhoneNumber") or info.get("phoneNumber") or ""
    country = str(info.get("countryCode") or "86")
    try:
        phone = normalize_phone(raw if country == "86" else f"+{country}{raw}")
    except ValueError:
        raise SiyuError("wechat_bad_answer", "微信返回的手机号无法识别", "WeChat returned an unusable phone number",
                        status=502) from None
    identity = session.identity
    with transaction.atomic():
        identified = consumer_identify(app=app, event_type="phone_bound",
                                       event_id=event_id_for("wxmini-phone", app.appid, code),
                                       openid=identity.value, extra_identities=[{"kind": "phone", "value": phone}],
                                       properties={"source": "miniapp"})
        # Keep the number on the profile (encrypted) when the customer has none yet.
        Customer.objects.filter(pk=identified.customer_id, phone_hash="").update(
            phone_enc=encrypt_text(phone), phone_hash=phone_hash(phone))
        ConsumerSession.objects.filter(pk=session.pk).update(customer_id=identified.customer_id)
    return {"phone": mask_phone(phone), "customer": {"id": identified.customer_id}}


# --- subscribe messages ----------------------------------------------------------------------------------

def subscribe_authorisations_record(*, session: ConsumerSession, results) -> dict[str, int]:
    """The mini-program reports ``wx.requestSubscribeMessage``'s result: ``{template_id: "accept"|"reject"|…}``.

    Each "accept" is worth one send of that template; returns the sends now left per template reported.
    """
    if session.kind != SessionKind.MINIAPP:
        raise SiyuError("consumer_wrong_session", "订阅消息只能在小程序内授权",
                        "Subscribe messages are authorised from the mini-program", status=400)
    if isinstance(results, dict):
        # The success callback's own object may be forwarded as is: drop its errMsg.
        results = {key: value for key, value in results.items() if key != "errMsg"}
    if not isinstance(results, dict) or not results or len(results) > MAX_TEMPLATES_PER_REQUEST:
        raise SiyuError("subscribe_results_invalid", "请提交 1-3 个模板的授权结果 {模板ID: accept/reject}",
                        "Send the result for 1-3 templates as {template_id: accept|reject}", status=400)
    for template_id, answer in results.items():
        if not TEMPLATE_ID.fullmatch(template_id) or answer not in SUBSCRIBE_ANSWERS:
            raise SiyuError("subscribe_results_invalid", "模板 ID 或授权结果格式不正确(结果只能是 accept/reject/ban/filter)",
                            "A template id or result is malformed (results are accept, reject, ban or filter)",
                            status=400, details={"template_id": str(template_id)[:64]})
    left: dict[str, int] = {}
    with transaction.atomic():
        for template_id, answer in sorted(results.items()):
            row, _ = SubscribeAuthorisation.objects.select_for_update().get_or_create(
                app=session.app, identity=session.identity, template_id=template_id,
                defaults={"workspace_id": session.workspace_id})
            if answer == "accept":
                row.remaining += 1
                row.accepted_total += 1
            else:  # reject, ban, filter: WeChat will not deliver this one
                row.rejected_total += 1
            row.save(update_fields=["remaining", "accepted_total", "rejected_total", "updated_at"])
            left[template_id] = row.remaining
    return left


@dataclass(frozen=True)
class SendResult:
    msgid: str
    remaining: int


def _refuse_no_authorisation(template_id: str) -> SiyuError:
    return SiyuError(
        "subscribe_not_authorised",
        "该用户没有可用的订阅授权:小程序订阅消息每次授权只能发送一条,请引导用户在小程序内再次订阅后再发送",
        "This user has no authorisation left for this template: each subscription allows exactly one message; "
        "ask the user to subscribe again in the mini-program", status=409, details={"template_id": template_id})


def subscribe_message_send(*, app: WeChatApp, identity, template_id: str, data: dict, page: str = "",
                           now: datetime | None = None) -> SendResult:
    """Send one subscribe message, consuming one of the user's one-time authorisations for the template.

    Refused (409, nothing sent) when none is left. The authorisation is taken before calling WeChat and
    given back if the send fails for a reason other than the user's (43101 means WeChat holds no
    authorisation for us: our count drops to zero).
    """
    if identity.kind != IdentityKind.OPENID or identity.namespace != app.appid:
        raise SiyuError("subscribe_wrong_identity", "订阅消息需要该小程序下的 openid",
                        "Subscribe messages go to the user's openid in this mini-program", status=400)
    if not isinstance(data, dict) or not data:
        raise SiyuError("subscribe_data_missing", "缺少消息内容 data", "The message data is missing", status=400)
    with transaction.atomic():
        taken = SubscribeAuthorisation.objects.filter(app=app, identity=identity, template_id=template_id,
                                                      remaining__gt=0).update(remaining=F("remaining") - 1)
    if not taken:
        raise _refuse_no_authorisation(template_id)
    client = miniapp_client(app)
    try:
        answer = wechat_call(app, "cgi-bin/message/subscribe/send", client.wxa.send_subscribe_message,
                             identity.value, template_id, data, page or None)
    except WeChatApiError as error:
        refused = error.errcode == USER_REFUSED
        with transaction.atomic():
            rows = SubscribeAuthorisation.objects.filter(app=app, identity=identity, template_id=template_id)
            if refused:
                rows.update(remaining=0)
            else:  # not the user's doing: the authorisation was not used, give it back
                rows.update(remaining=F("remaining") + 1)
            SubscribeSend.objects.create(workspace_id=app.workspace_id, app=app, identity=identity,
                                         template_id=template_id, page=page[:256],
                                         status=SendStatus.REFUSED if refused else SendStatus.FAILED,
                                         errcode=error.errcode or 0, created_at=now or timezone.now())
        if refused:
            raise SiyuError("subscribe_refused_by_wechat",
                            "微信拒绝发送(43101):用户未订阅该模板或已关闭订阅消息,请引导用户重新订阅",
                            "WeChat refused the message (43101): the user has not subscribed to this template "
                            "or turned subscribe messages off", status=409,
                            details={"template_id": template_id, "errcode": USER_REFUSED}) from None
        raise
    msgid = str(answer.get("msgid") or "")
    with transaction.atomic():
        rows = SubscribeAuthorisation.objects.filter(app=app, identity=identity, template_id=template_id)
        rows.update(sent_total=F("sent_total") + 1)
        SubscribeSend.objects.create(workspace_id=app.workspace_id, app=app, identity=identity,
                                     template_id=template_id, page=page[:256], status=SendStatus.SENT,
                                     msgid=msgid[:32], created_at=now or timezone.now())
        remaining = rows.values_list("remaining", flat=True).first() or 0
    return SendResult(msgid=msgid, remaining=remaining)
