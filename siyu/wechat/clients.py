"""wechatpy clients bound to one registered app, and :func:`wechat_call`, the one way Siyu calls WeChat.

Each client
- sends through :func:`siyu.wechat.transport.http_session` (the simulator in simulator mode, never a
  real WeChat host then) with ``SIYU_WECHAT_TIMEOUT``;
- takes its access token from the database cache (:mod:`siyu.wechat.tokens`), refreshed five minutes
  before expiry and, once per call, when WeChat answers 40001 / 40014 / 42001;
- retries connection errors, timeouts (of GETs only: a POST may have been done), 5xx answers and
  errcode -1 ("system busy") after each delay of ``SIYU_WECHAT_RETRY_DELAYS`` (seconds, growing
  exponentially by default; tests set them near zero).

:func:`wechat_call` turns wechatpy's exceptions into :class:`WeChatApiError` / :class:`WeChatRateLimited`
and records the ones an operator must see as :class:`~siyu.wechat.models.ApiIssue` rows. Call WeChat
outside your own write transaction, or a rollback takes the issue row with it.

Avoid the few wechatpy methods that call ``requests.get`` directly instead of the client's session
(``qrcode.show``, WeCom ``media.download``): they would bypass the transport. Build the URL with their
``get_url`` and fetch it with ``client._http``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.exceptions import WeChatClientException, WeChatException, WeChatOAuthException
from wechatpy.oauth import WeChatOAuth

from siyu.core.errors import SiyuError
from siyu.wechat.models import ApiIssue, AppKind, WeChatApp
from siyu.wechat.tokens import token_get, token_invalidate
from siyu.wechat.transport import EscapedRequest, http_session

logger = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
SYSTEM_BUSY = -1
DAILY_QUOTA = 45009
MINUTE_QUOTA = 45011
PER_CUSTOMER_LIMITS = frozenset({45015, 45047})  # reply window closed / too many messages to one user
RATE_LIMIT_CODES = frozenset({DAILY_QUOTA, MINUTE_QUOTA, *PER_CUSTOMER_LIMITS})
# Errors about one consumer's request (a bad login code, a user who left): not an operator's problem.
NOT_AN_ISSUE = frozenset({40029, 40163, 43004, 43101, 46004, 40003, 61024})
DEFAULT_RETRY_DELAYS = (0.5, 1.0, 2.0)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class WeChatApiError(SiyuError):
    """WeChat refused or failed a call; ``errcode`` is WeChat's (None for HTTP-level failures)."""

    errcode: int | None = None
    errmsg: str = ""
    api: str = ""
    # A POST that timed out while waiting for the answer: WeChat may have done the work. Callers must not
    # repeat a non-idempotent call (a message) after this; they record the outcome as unknown instead.
    outcome_unknown: bool = False


@dataclass
class WeChatRateLimited(WeChatApiError):
    """A quota or rate limit: retry after ``retry_after`` seconds, or never (None) for per-customer limits."""

    retry_after: float | None = None


def _sleep(seconds: float) -> None:  # one place tests can watch the back-off
    time.sleep(seconds)


def retry_delays() -> tuple[float, ...]:
    return tuple(getattr(settings, "SIYU_WECHAT_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))


def _transient(error: Exception, *, idempotent: bool = True) -> bool:
    """Worth retrying: WeChat did not do the work (or doing it twice is harmless).

    A read timeout on a POST is not retried: WeChat may have sent the message already, and a second
    template or mass message to a customer is worse than a failure the caller sees.
    """
    if isinstance(error, EscapedRequest):
        return False
    if isinstance(error, requests.ReadTimeout):
        return idempotent
    if isinstance(error, (requests.Timeout, requests.ConnectionError)):
        return True
    if isinstance(error, WeChatClientException):
        if error.errcode == SYSTEM_BUSY:
            return True
        if error.errcode is None:
            status = getattr(error.response, "status_code", None)
            return status is None or status >= 500
    return False


def with_backoff(fn: Callable[[], T], *, idempotent: bool = True) -> T:
    """Run ``fn``, retrying transient failures after each of :func:`retry_delays`."""
    delays = list(retry_delays())
    while True:
        try:
            return fn()
        except (requests.RequestException, WeChatClientException) as error:
            if not delays or not _transient(error, idempotent=idempotent):
                raise
            delay = delays.pop(0)
            logger.info("WeChat call failed transiently (%s); retrying in %.2fs", error, delay)
            _sleep(delay)


def _tokenless(url_or_endpoint: str) -> bool:
    """APIs authenticated by AppID/AppSecret, not by an access token (``sns/jscode2session``)."""
    return url_or_endpoint.lstrip("/").startswith("sns/") or "/sns/" in url_or_endpoint


class _CachedTokenMixin:
    """What Siyu's wechatpy clients share: transport, token cache, token-error retry, back-off."""

    siyu_app: WeChatApp
    token_key: str

    def _siyu_setup(self, app: WeChatApp, key: str) -> None:
        self.siyu_app = app
        self.token_key = key
        self._http = http_session()
        self.timeout = settings.SIYU_WECHAT_TIMEOUT
        self.auto_retry = False  # we retry ourselves, through the shared cache

    @property
    def access_token(self) -> str:
        return token_get(app=self.siyu_app, key=self.token_key, fetch=self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        result = with_backoff(self.fetch_access_token)
        return result["access_token"], int(result.get("expires_in") or 7200)

    def _request(self, method, url_or_endpoint, **kwargs):
        if _tokenless(url_or_endpoint):
            # wechatpy adds a token unless one is given; None makes requests leave the parameter out
            kwargs["params"] = {**(kwargs.get("params") or {}), "access_token": None}
        idempotent = str(method).lower() == "get"
        token_retried = False
        while True:
            attempt = dict(kwargs)
            if kwargs.get("params") is None or isinstance(kwargs["params"], dict):
                attempt["params"] = dict(kwargs.get("params") or {})  # wechatpy writes the token it used into it
            try:
                return with_backoff(lambda attempt=attempt: super(_CachedTokenMixin, self)._request(
                    method, url_or_endpoint, **attempt), idempotent=idempotent)
            except WeChatClientException as error:
                used = attempt["params"].get("access_token") if isinstance(attempt.get("params"), dict) else None
                if error.errcode in TOKEN_ERRORS and not token_retried and used:
                    token_invalidate(app=self.siyu_app, key=self.token_key, failed_token=used)
                    token_retried = True
                    given = kwargs.get("params")
                    if isinstance(given, dict) and given.get("access_token") == used:
                        kwargs["params"] = {name: value for name, value in kwargs["params"].items()
                                            if name != "access_token"}
                    continue
                raise


class OfficialClient(_CachedTokenMixin, WeChatClient):
    """公众号 client (wechatpy ``WeChatClient``) for one registered official account."""

    def __init__(self, app: WeChatApp):
        super().__init__(app.appid, app.secrets().get("app_secret", ""))
        self._siyu_setup(app, "default")


class MiniAppClient(_CachedTokenMixin, WeChatClient):
    """小程序 client: the same wechatpy client, whose ``wxa`` API covers code2session and the rest."""

    def __init__(self, app: WeChatApp):
        super().__init__(app.appid, app.secrets().get("app_secret", ""))
        self._siyu_setup(app, "default")


class WorkClient(_CachedTokenMixin, WeComClient):
    """企业微信 client for one corp, with the 客户联系 secret, the self-built app's or the 微信客服 one's."""

    def __init__(self, app: WeChatApp, secret: str):
        super().__init__(app.appid, app.secrets().get(f"{secret}_secret", ""))
        self._siyu_setup(app, secret)


def _require_kind(app: WeChatApp, *kinds: str) -> None:
    if app.kind not in kinds:
        raise SiyuError("wechat_app_kind", "微信账号类型不匹配", "This WeChat account is of another kind", status=400)


def official_client(app: WeChatApp) -> OfficialClient:
    _require_kind(app, AppKind.OFFICIAL)
    return OfficialClient(app)


def miniapp_client(app: WeChatApp) -> MiniAppClient:
    _require_kind(app, AppKind.MINIAPP)
    return MiniAppClient(app)


def work_client(app: WeChatApp, *, secret: str = "contact") -> WorkClient:  # noqa: S107 - which secret, not one
    _require_kind(app, AppKind.WORK)
    if secret not in {"contact", "app", "kf"}:
        raise ValueError("secret must be 'contact', 'app' or 'kf'")
    if not app.secrets().get(f"{secret}_secret"):
        raise SiyuError("wechat_secret_missing", "企业微信未配置该 Secret", f"The WeCom {secret} secret is not set",
                        status=400, details={"secret": secret})
    return WorkClient(app, secret)


def oauth_client(app: WeChatApp, *, redirect_uri: str, scope: str = "snsapi_base", state: str = "") -> WeChatOAuth:
    """公众号 H5 网页授权 (wechatpy ``WeChatOAuth``) sending through the transport."""
    _require_kind(app, AppKind.OFFICIAL)
    client = WeChatOAuth(app.appid, app.secrets().get("app_secret", ""), redirect_uri, scope=scope, state=state)
    client._http = http_session()
    return client


# --- errors and issues ----------------------------------------------------------------------------

def seconds_until_shanghai_midnight(now: datetime | None = None) -> float:
    """WeChat's daily quotas reset at midnight Beijing time."""
    now = (now or timezone.now()).astimezone(SHANGHAI)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def issue_record(*, app: WeChatApp, api: str, errcode: int, errmsg: str = "") -> ApiIssue:
    """Count one occurrence of (api, errcode) on the app's open issue, opening it if needed."""
    now = timezone.now()
    errmsg = (errmsg or "")[:512]
    for _attempt in range(2):
        try:
            with transaction.atomic():
                updated = ApiIssue.objects.filter(app=app, api=api, errcode=errcode, resolved_at=None).update(
                    count=F("count") + 1, last_seen_at=now, errmsg=errmsg)
                if not updated:
                    return ApiIssue.objects.create(workspace_id=app.workspace_id, app=app, api=api, errcode=errcode,
                                                   errmsg=errmsg, first_seen_at=now, last_seen_at=now)
                return ApiIssue.objects.get(app=app, api=api, errcode=errcode, resolved_at=None)
        except IntegrityError:
            continue  # opened concurrently: count on it
    return ApiIssue.objects.get(app=app, api=api, errcode=errcode, resolved_at=None)


def issue_resolve(*, workspace, issue_id: int, actor: Any = None) -> ApiIssue:
    from siyu.core.services import audit_record

    with transaction.atomic():
        issue = ApiIssue.objects.select_for_update().filter(workspace=workspace, pk=issue_id).first()
        if issue is None:
            raise SiyuError("not_found", "问题记录不存在", "Issue not found", status=404)
        if issue.resolved_at is None:
            issue.resolved_at = timezone.now()
            issue.save(update_fields=["resolved_at"])
            audit_record(workspace=workspace, actor=actor, action="wechat_issue_resolve", target_type="wechat_issue",
                         target_id=issue.pk, api=issue.api, errcode=issue.errcode)
    return issue


def _read_timeout(error: BaseException) -> bool:
    """The request was sent but its answer never came (wechatpy wraps the requests exception)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, requests.ReadTimeout):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _error_for(error: Exception, api: str, *, kind: str = "") -> WeChatApiError:
    if _transient(error) or (isinstance(error, WeChatClientException) and error.errcode is None):
        status = getattr(getattr(error, "response", None), "status_code", None)
        detail = f"HTTP {status}" if status else type(error).__name__
        return WeChatApiError("wechat_unavailable", f"微信接口暂时不可用（{detail}）",
                              f"WeChat is unavailable ({detail})", status=502, errcode=None, errmsg=detail, api=api,
                              outcome_unknown=_read_timeout(error))
    if isinstance(error, requests.RequestException):
        return WeChatApiError("wechat_unavailable", "微信接口请求失败", f"WeChat request failed: {error}",
                              status=502, errcode=None, errmsg=str(error)[:200], api=api)
    errcode = int(error.errcode) if str(getattr(error, "errcode", "")).lstrip("-").isdigit() else None
    errmsg = str(getattr(error, "errmsg", "") or "")
    details = {"errcode": errcode, "errmsg": errmsg, "api": api}
    if errcode == DAILY_QUOTA and kind == AppKind.WORK:
        # WeCom's 45009 is its per-minute/per-hour frequency limit (10,000/min, 150,000/h per corp), not a daily quota
        return WeChatRateLimited("wechat_rate_limited", "企业微信接口调用超过频率限制，请一分钟后重试",
                                 "WeCom API frequency limit reached; retry in a minute", status=429, details=details,
                                 errcode=errcode, errmsg=errmsg, api=api, retry_after=60.0)
    if errcode == DAILY_QUOTA:
        return WeChatRateLimited("wechat_quota_daily", "微信接口今日调用次数已用完，北京时间零点后恢复",
                                 "WeChat daily API quota reached; it resets at midnight Beijing time", status=429,
                                 details=details, errcode=errcode, errmsg=errmsg, api=api,
                                 retry_after=seconds_until_shanghai_midnight())
    if errcode == MINUTE_QUOTA:
        return WeChatRateLimited("wechat_rate_limited", "微信接口调用过于频繁，请一分钟后重试",
                                 "WeChat API rate limit; retry in a minute", status=429, details=details,
                                 errcode=errcode, errmsg=errmsg, api=api, retry_after=60.0)
    if errcode in PER_CUSTOMER_LIMITS:
        return WeChatRateLimited("wechat_customer_limit", "已达到微信对该用户的消息限制",
                                 "WeChat's message limit for this customer is reached", status=429, details=details,
                                 errcode=errcode, errmsg=errmsg, api=api, retry_after=None)
    return WeChatApiError("wechat_api_error", f"微信接口返回错误 {errcode}：{errmsg}",
                          f"WeChat API error {errcode}: {errmsg}", status=502, details=details, errcode=errcode,
                          errmsg=errmsg, api=api)


def wechat_call(app: WeChatApp, api: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` (a method of one of the clients above) as the WeChat API ``api``.

    Failures become :class:`WeChatApiError` (:class:`WeChatRateLimited` for quotas and limits); those an
    operator should see (everything but one consumer's bad input) are counted as an open ApiIssue.
    """
    try:
        return fn(*args, **kwargs)
    except EscapedRequest:
        raise
    except (WeChatException, WeChatOAuthException, requests.RequestException) as error:
        mapped = _error_for(error, api, kind=app.kind)
        if mapped.errcode not in NOT_AN_ISSUE:
            issue_record(app=app, api=api, errcode=mapped.errcode if mapped.errcode is not None else -1,
                         errmsg=mapped.errmsg)
        raise mapped from error
