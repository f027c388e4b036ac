"""Where WeChat requests go: WeChat's servers in production, the simulator in simulator mode.

Both SDKs send through ``requests``. wechatpy keeps hard-coded ``https://api.weixin.qq.com/...`` URLs in
several places, so instead of chasing them we mount :class:`SimulatorRoutingAdapter` on the session every
client uses: in simulator mode (``SIYU_WECHAT_BASE_URL`` set) it rewrites ``https://{wechat host}{path}``
to ``{base}/{wechat host}{path}`` and refuses every other host, so nothing can escape to the real WeChat.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

WECHAT_HOSTS = frozenset({
    "api.weixin.qq.com", "qyapi.weixin.qq.com", "api.mch.weixin.qq.com", "open.weixin.qq.com",
    "mp.weixin.qq.com", "open.work.weixin.qq.com",
})


class EscapedRequest(requests.ConnectionError):
    """A request in simulator mode to a host that is neither WeChat nor the simulator: refused, never sent."""


def simulator_base() -> str:
    return settings.SIYU_WECHAT_BASE_URL


def rewrite(url: str, base: str) -> str:
    """``https://api.weixin.qq.com/cgi-bin/token?x`` → ``{base}/api.weixin.qq.com/cgi-bin/token?x``.

    URLs already on the simulator pass unchanged; any other host raises :class:`EscapedRequest`.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if url.startswith(base + "/"):
        return url
    if host not in WECHAT_HOSTS:
        raise EscapedRequest(f"simulator mode: refusing a request to {host!r} (not a WeChat host)")
    target = urlsplit(base)
    return urlunsplit((target.scheme, target.netloc, f"{target.path}/{host}{parts.path}", parts.query, ""))


class TimeoutAdapter(HTTPAdapter):
    """Gives every request ``SIYU_WECHAT_TIMEOUT`` unless the caller set one (wechatpy's token fetch sets none)."""

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = settings.SIYU_WECHAT_TIMEOUT
        return super().send(request, **kwargs)


class SimulatorRoutingAdapter(TimeoutAdapter):
    def __init__(self, base: str, **kwargs):
        self.base = base.rstrip("/")
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        request.url = rewrite(request.url, self.base)
        return super().send(request, **kwargs)


def http_session() -> requests.Session:
    """A requests session for WeChat calls, routed to the simulator when simulator mode is on."""
    session = requests.Session()
    base = simulator_base()
    adapter = SimulatorRoutingAdapter(base) if base else TimeoutAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def gateway(host: str) -> str:
    """The base URL of one WeChat host (for SDKs that take a gateway, e.g. wechatpayv3)."""
    base = simulator_base()
    return f"{base}/{host}" if base else f"https://{host}"
