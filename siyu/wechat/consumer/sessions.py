"""Consumer sessions: open one after a login, find the one a request carries, revoke them.

How a request carries a session:
- the mini-program sends ``Authorization: Bearer wxs_…`` (the token /wx/consumer/miniapp/<appid>/login gave it);
- the H5 store (WeChat's in-app browser) sends the signed, HttpOnly ``siyu_h5`` cookie set by the OAuth callback.
Other layers (the store, orders) call :func:`consumer_session_for` and get the workspace, the customer and
the identity, or None; :func:`consumer_session_required` raises a 401 instead, and :func:`ninja_consumer_auth`
is the same check as a Django Ninja ``auth=`` callable. A cookie is sent by the browser on its own, so an
H5 write (POST …) authenticated by it must also pass Django's CSRF check (Ninja views skip it unless asked);
a Bearer token is not, so mini-program calls need none.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from siyu.core.crypto import encrypt_text
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.customers.models import Customer, Identity
from siyu.wechat.consumer.models import ConsumerSession, SessionKind
from siyu.wechat.models import WeChatApp

TOKEN_PREFIX = {SessionKind.MINIAPP: "wxs_", SessionKind.H5: "wxh_"}
# A mini-program can log in again silently at any time (wx.login), so its tokens are shorter-lived.
LIFETIME = {
    SessionKind.MINIAPP: timedelta(days=getattr(settings, "SIYU_CONSUMER_MINIAPP_SESSION_DAYS", 7)),
    SessionKind.H5: timedelta(days=getattr(settings, "SIYU_CONSUMER_H5_SESSION_DAYS", 30)),
}
H5_COOKIE = "siyu_h5"
H5_COOKIE_SALT = "siyu.wechat.consumer.h5"
_TOUCH_EVERY = timedelta(minutes=5)  # last_used_at is written at most this often per session
_CACHE_ATTRIBUTE = "_siyu_consumer_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def consumer_session_create(*, app: WeChatApp, identity: Identity, kind: str, session_key: str | None = None,
                            scope: str = "", is_new_customer: bool = False) -> tuple[ConsumerSession, str]:
    """Open a session for the customer owning ``identity``; returns it and the token (shown only now)."""
    token = TOKEN_PREFIX[kind] + secrets.token_urlsafe(32)
    now = timezone.now()
    session = ConsumerSession.objects.create(
        workspace_id=app.workspace_id, app=app, customer_id=identity.customer_id, identity=identity, kind=kind,
        token_hash=token_hash(token), session_key_enc=encrypt_text(session_key) if session_key else None,
        scope=scope, is_new_customer=is_new_customer, created_at=now, expires_at=now + LIFETIME[kind],
    )
    return session, token


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX[SessionKind.MINIAPP]):
        return None
    return value


def _cookie_token(request: HttpRequest) -> str | None:
    try:
        value = request.get_signed_cookie(H5_COOKIE, default=None, salt=H5_COOKIE_SALT,
                                          max_age=LIFETIME[SessionKind.H5])
    except signing.BadSignature:
        return None
    return value if value and value.startswith(TOKEN_PREFIX[SessionKind.H5]) else None


def consumer_session_for(request: HttpRequest) -> ConsumerSession | None:
    """The live session this request carries (Bearer token, else H5 cookie), or None.

    The returned session's ``customer`` is the identity's current owner, so a session opened before a
    merge keeps naming the surviving customer. Expired and revoked sessions are None.
    """
    if hasattr(request, _CACHE_ATTRIBUTE):
        return getattr(request, _CACHE_ATTRIBUTE)
    token, kind = _bearer_token(request), SessionKind.MINIAPP
    if token is None:
        token, kind = _cookie_token(request), SessionKind.H5
    session = None
    if token is not None:
        session = (ConsumerSession.objects.select_related("workspace", "app", "identity", "identity__customer")
                   .filter(token_hash=token_hash(token), kind=kind).first())
        now = timezone.now()
        if session is not None and (not session.is_active(now) or not session.app.is_active):
            session = None  # expired, revoked, or the account was disabled by an admin
        if session is not None:
            changes = {}
            owner = session.identity.customer
            if owner.pk != session.customer_id:
                changes["customer"] = owner
            session.customer = owner
            if session.last_used_at is None or now - session.last_used_at > _TOUCH_EVERY:
                changes["last_used_at"] = session.last_used_at = now
            if changes:
                ConsumerSession.objects.filter(pk=session.pk).update(**changes)
    setattr(request, _CACHE_ATTRIBUTE, session)
    return session


def consumer_session_required(request: HttpRequest) -> ConsumerSession:
    """Like :func:`consumer_session_for` but a refusal (401) when there is no live session."""
    session = consumer_session_for(request)
    if session is None:
        raise SiyuError("consumer_unauthenticated", "请先登录(登录已过期或已退出)",
                        "Please log in (the session is missing, expired or revoked)", status=401)
    return session


def ninja_consumer_auth(request: HttpRequest) -> ConsumerSession | None:
    """``auth=ninja_consumer_auth`` on a Ninja operation: the session (``request.auth``) or a 401."""
    return consumer_session_for(request)


def h5_cookie_set(response: HttpResponse, request: HttpRequest, token: str) -> None:
    response.set_signed_cookie(H5_COOKIE, token, salt=H5_COOKIE_SALT,
                               max_age=int(LIFETIME[SessionKind.H5].total_seconds()), httponly=True,
                               samesite="Lax", path="/",
                               secure=request.is_secure() or settings.SIYU_PUBLIC_URL.startswith("https://"))


@transaction.atomic
def consumer_sessions_revoke(*, workspace, customer: Customer, actor=None) -> int:
    """Revoke every live session of a customer (and of customers merged into it); returns how many."""
    while customer.merged_into_id is not None:  # revoke on the surviving profile
        customer = Customer.objects.get(pk=customer.merged_into_id)
    now = timezone.now()
    customer_ids = [customer.pk, *Customer.objects.filter(workspace=workspace, merged_into=customer)
                    .values_list("pk", flat=True)]
    identity_ids = list(Identity.objects.filter(workspace=workspace, customer_id=customer.pk)
                        .values_list("pk", flat=True))
    count = (ConsumerSession.objects.filter(workspace=workspace, revoked_at=None)
             .filter(Q(customer_id__in=customer_ids) | Q(identity_id__in=identity_ids)).update(revoked_at=now))
    audit_record(workspace=workspace, actor=actor, action="consumer_sessions_revoke", target_type="customer",
                 target_id=customer.pk, revoked=count)
    return count


def consumer_session_revoke(*, session: ConsumerSession) -> None:
    """The consumer logs out: this one session ends."""
    ConsumerSession.objects.filter(pk=session.pk, revoked_at=None).update(revoked_at=timezone.now())

