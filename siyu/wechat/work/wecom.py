"""How this area calls 企业微信: through the core adapter (``work_client`` / ``wechat_call``) after the
corp's frequency allowance (SPEC W6) is checked, with WeCom's rate-limit codes made retryable.

WeCom allows each API 10,000 calls a minute and 150,000 an hour per corp. :func:`permit` counts calls
in the shared cache (Redis in production) and refuses locally before WeCom would; 45009 / 45011 / 45033
from WeCom itself become :class:`RateLimited` too. Background tasks catch it and try again later with
back-off (:func:`backoff_seconds`), so nothing is dropped; the core adapter records the ApiIssue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache

from siyu.core.errors import SiyuError
from siyu.wechat.clients import WeChatApiError, WorkClient, issue_record, wechat_call, work_client
from siyu.wechat.models import WeChatApp

T = TypeVar("T")
LIMITS = {"minute": (60, 10_000), "hour": (3600, 150_000)}
WECOM_RATE_CODES = frozenset({45009, 45011, 45033})
LOCAL_LIMIT_ERRCODE = 45009  # what WeCom would answer; recorded on the ApiIssue of a local refusal


class RateLimited(SiyuError):
    """WeCom's frequency limit (reached here or reported by WeCom): try again after ``retry_after`` s."""

    def __init__(self, *, api: str, retry_after: float, errcode: int = LOCAL_LIMIT_ERRCODE):
        super().__init__("wecom_rate_limited", f"企业微信接口 {api} 调用过于频繁，已排队稍后重试",
                         f"WeCom API {api} is rate limited; queued to retry later", status=429,
                         details={"api": api, "retry_after": retry_after, "errcode": errcode})
        self.api, self.retry_after, self.errcode = api, retry_after, errcode


def limits() -> dict[str, tuple[int, int]]:
    return getattr(settings, "SIYU_WECOM_LIMITS", LIMITS)


_redis_clients: dict[str, Any] = {}


def _count(key: str, seconds: int) -> int:
    """Add one to a window's counter: in Redis when Siyu runs with Redis (shared by every web and task
    process, as WeCom counts per corp), else in the process's own cache (the single-host SQLite setup)."""
    url = getattr(settings, "REDIS_URL", "")
    if url:
        import redis

        client = _redis_clients.get(url) or _redis_clients.setdefault(url, redis.Redis.from_url(url))
        pipeline = client.pipeline()
        pipeline.incr(key)
        pipeline.expire(key, seconds + 5)
        return int(pipeline.execute()[0])
    cache.add(key, 0, timeout=seconds + 5)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=seconds + 5)
        return 1


def permit(app: WeChatApp, api: str, *, now: float | None = None) -> None:
    """Count one call of ``api`` for the corp; refuse (RateLimited) when a window is full."""
    now = time.time() if now is None else now
    for window, (seconds, allowed) in limits().items():
        bucket = int(now // seconds)
        if _count(f"siyu:wecom:rate:{app.appid}:{api}:{window}:{bucket}", seconds) > allowed:
            raise RateLimited(api=api, retry_after=(bucket + 1) * seconds - now + 1)


def client(app: WeChatApp) -> WorkClient:
    """The 客户联系 client of the corp (its contact secret, or the app secret when only that is set)."""
    secret = "contact" if app.secrets().get("contact_secret") else "app"
    return work_client(app, secret=secret)


def call(app: WeChatApp, api: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call WeCom API ``api`` (e.g. "externalcontact/get") within the corp's allowance.

    Call it outside any write transaction: the ApiIssue a failure records must survive.
    """
    try:
        permit(app, api)
    except RateLimited:
        issue_record(app=app, api=api, errcode=LOCAL_LIMIT_ERRCODE, errmsg="Siyu: 每分钟/每小时调用上限")
        raise
    try:
        return wechat_call(app, api, fn, *args, **kwargs)
    except WeChatApiError as error:
        if error.errcode in WECOM_RATE_CODES:
            raise RateLimited(api=api, retry_after=60.0, errcode=error.errcode) from error
        raise


def post(app: WeChatApp, api: str, data: dict[str, Any]) -> dict[str, Any]:
    """An API wechatpy does not wrap, sent through the same client (transport, token cache, errors)."""
    wecom = client(app)
    return call(app, api, wecom.post, api, data=data)


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """1, 2, 4 … minutes (at least what WeCom asked), at most an hour."""
    return max(float(retry_after or 0), min(60.0 * 2 ** attempt, 3600.0))
