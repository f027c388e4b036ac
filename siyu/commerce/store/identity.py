"""Who is shopping: the workspace a /shop/<slug>/ URL names and the consumer session the request carries.

A browser without a session (or with one for another brand) is sent through the workspace's 公众号 H5
OAuth (snsapi_base, silent in WeChat) and comes back to the page it asked for with the H5 cookie. A
mini-program call carries its Bearer token instead; the workspace is the session's.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer
from siyu.wechat.consumer.models import ConsumerSession
from siyu.wechat.consumer.sessions import consumer_session_for
from siyu.wechat.models import AppKind, WeChatApp


@dataclass(frozen=True)
class Shopper:
    workspace: Workspace
    customer: Customer
    session: ConsumerSession

    @property
    def openid(self) -> str:
        """The payer's openid for the app this session was opened with (公众号 for H5, 小程序 for the API)."""
        identity = self.session.identity
        return identity.value if identity.kind == "openid" else ""

    @property
    def appid(self) -> str:
        return self.session.app.appid


def workspace_for_slug(slug: str) -> Workspace:
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise SiyuError("store_not_found", "店铺不存在", "This store does not exist", status=404)
    return workspace


def official_app_for(workspace: Workspace) -> WeChatApp:
    """The 公众号 whose H5 OAuth identifies this store's shoppers (the first active one)."""
    app = (WeChatApp.objects.filter(workspace=workspace, kind=AppKind.OFFICIAL, is_active=True)
           .order_by("pk").first())
    if app is None:
        raise SiyuError("store_unavailable", "店铺暂未开通(未绑定公众号)",
                        "The store is not open yet (no official account is connected)", status=503)
    return app


def shopper_for(request: HttpRequest, workspace: Workspace) -> Shopper | None:
    """The shopper of this workspace the request carries, or None (no session, or another brand's)."""
    session = consumer_session_for(request)
    if session is None or session.workspace_id != workspace.pk:
        return None
    return Shopper(workspace=workspace, customer=session.customer, session=session)


def shopper_at(request: HttpRequest, slug: str) -> tuple[Workspace, Shopper | None]:
    """The workspace of /shop/<slug>/ and this request's shopper there (None: no session, or another brand's).
    A session of this store already brings its workspace along, so the slug costs no query of its own."""
    session = consumer_session_for(request)
    if session is not None and session.workspace.slug == slug:
        workspace = session.workspace
        return workspace, Shopper(workspace=workspace, customer=session.customer, session=session)
    workspace = workspace_for_slug(slug)
    return workspace, shopper_for(request, workspace)


def oauth_url(workspace: Workspace, next_path: str) -> str:
    app = official_app_for(workspace)
    start = reverse("wechat_consumer:oauth_start", kwargs={"appid": app.appid})
    return f"{start}?{urlencode({'scope': 'snsapi_base', 'next': next_path})}"
