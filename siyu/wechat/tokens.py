"""The access-token cache: one encrypted token per (app, key) in the database, shared by every process.

A token is used until five minutes before it expires. Refreshing takes the row lock
(``select_for_update``), so under concurrency exactly one caller fetches a new token and the others wait
and read it. A token WeChat refused (40001 / 40014 / 42001) is dropped only if it is still the stored one:
another caller may already have replaced it, and that newer token must not be thrown away.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.crypto import encrypt_text
from siyu.wechat.models import AccessToken, WeChatApp

REFRESH_MARGIN = timedelta(minutes=5)

# fetch() -> (token, expires_in seconds)
Fetch = Callable[[], tuple[str, int]]


def _fresh(row: AccessToken | None) -> str | None:
    if row is None or not row.token_enc or row.expires_at is None:
        return None
    if row.expires_at - REFRESH_MARGIN <= timezone.now():
        return None
    return row.token()


def token_get(*, app: WeChatApp, key: str, fetch: Fetch) -> str:
    """The app's valid token for ``key``, fetched with ``fetch`` (at most one caller at a time) if needed."""
    token = _fresh(AccessToken.objects.filter(app=app, key=key).first())
    if token:
        return token
    with transaction.atomic():
        try:
            with transaction.atomic():
                AccessToken.objects.get_or_create(app=app, key=key)
        except IntegrityError:
            pass  # created concurrently; the lock below waits for it
        row = AccessToken.objects.select_for_update().get(app=app, key=key)
        token = _fresh(row)
        if token:
            return token
        token, expires_in = fetch()
        now = timezone.now()
        row.token_enc = encrypt_text(token)
        row.expires_at = now + timedelta(seconds=int(expires_in))
        row.refreshed_at = now
        row.save(update_fields=["token_enc", "expires_at", "refreshed_at"])
    return token


def token_invalidate(*, app: WeChatApp, key: str, failed_token: str) -> bool:
    """Forget the stored token if it is ``failed_token``; True when something was dropped."""
    with transaction.atomic():
        row = AccessToken.objects.select_for_update().filter(app=app, key=key).first()
        if row is None or row.token() != failed_token:
            return False
        row.token_enc = None
        row.expires_at = None
        row.save(update_fields=["token_enc", "expires_at"])
    return True


def token_status(*, app: WeChatApp) -> list[dict]:
    """For the console: each cached token's key, expiry and whether it is still usable (never the token)."""
    now = timezone.now()
    return [
        {"key": row.key, "expires_at": row.expires_at, "refreshed_at": row.refreshed_at,
         "valid": bool(row.token_enc and row.expires_at and row.expires_at > now)}
        for row in AccessToken.objects.filter(app=app).order_by("key")
    ]
