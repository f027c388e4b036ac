"""The simulator's memory: registered apps (公众号, 小程序, WeCom corps, merchants) and issued access tokens.

Areas keep their own state in ``SimState.area(name, factory)`` so each module owns its data.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
TOKEN_LIFETIME = 7200
TOKEN_GRACE = 300  # seconds an old token keeps working after a new one is issued


@dataclass
class SimApp:
    kind: str  # "official" | "miniapp" | "work" | "pay"
    appid: str  # AppID, CorpID or mchid
    secret: str = ""  # AppSecret or the WeCom app/contact secret
    token: str = ""  # callback Token
    encoding_aes_key: str = ""  # 43 characters
    callback_url: str = ""  # where this app's callbacks go (Siyu's URL)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. WeCom secrets per agent, merchant keys


@dataclass
class IssuedToken:
    appid: str
    host: str
    expires_at: float
    revoked: bool = False
    secret: str = ""  # WeCom: which of the corp's secrets fetched it ("contact", "app", "kf" …)


@dataclass
class SimUser:
    """A simulated WeChat user. Their ids differ per app as WeChat's do: an openid per AppID, one unionid
    per open-platform account (every app registered with the same ``extra["open_platform"]``, default
    "default"), an external_userid per WeCom corp."""

    key: str  # the simulator's own handle, e.g. "u00042"
    nickname: str = ""
    phone: str = ""  # "+86 138..." style is normalised by Siyu; here plain 11 digits
    extra: dict[str, Any] = field(default_factory=dict)


def _derived(prefix: str, *parts: str, length: int = 28) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")[: length - len(prefix)]


class SimState:
    def __init__(self, *, seed: int = 0):
        self.random = random.Random(seed)
        self.apps: dict[str, SimApp] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.users: dict[str, SimUser] = {}
        self.calls: list[tuple[float, str, str]] = []  # (time, host, path) of every API call, for tests
        self._areas: dict[str, Any] = {}

    # --- users -----------------------------------------------------------------------------------
    def user(self, key: str, **fields: Any) -> SimUser:
        """The simulated user with this key, created on first use."""
        if key not in self.users:
            phone = fields.pop("phone", None) or f"13{self.random.randrange(10**9):09d}"
            self.users[key] = SimUser(key, phone=phone, **fields)
        return self.users[key]

    def openid(self, user: SimUser, appid: str) -> str:
        return _derived("o", "openid", appid, user.key)

    def unionid(self, user: SimUser, appid: str) -> str:
        app = self.apps.get(appid)
        platform = app.extra.get("open_platform", "default") if app else "default"
        return _derived("u", "unionid", platform, user.key)

    def external_userid(self, user: SimUser, corpid: str) -> str:
        return _derived("wm", "external_userid", corpid, user.key, length=32)

    def user_by_openid(self, appid: str, openid: str) -> SimUser | None:
        return next((user for user in self.users.values() if self.openid(user, appid) == openid), None)

    def area(self, name: str, factory: Callable[[], T]) -> T:
        if name not in self._areas:
            self._areas[name] = factory()
        return self._areas[name]

    def app_register(self, app: SimApp) -> SimApp:
        self.apps[app.appid] = app
        return app

    def token_issue(self, appid: str, host: str, lifetime: int = TOKEN_LIFETIME, *,
                    secret: str = "") -> tuple[str, int]:
        """A new token. As at WeChat, the app's previous tokens stay valid only ``TOKEN_GRACE`` seconds more,
        which is why callers must share one token instead of each fetching their own. A WeCom corp's secrets
        (``secret`` names which) each have their own tokens, as at WeCom."""
        now = time.time()
        for issued in self.tokens.values():
            if issued.appid == appid and issued.host == host and issued.secret == secret:
                issued.expires_at = min(issued.expires_at, now + TOKEN_GRACE)
        token = secrets.token_urlsafe(48)
        self.tokens[token] = IssuedToken(appid, host, now + lifetime, secret=secret)
        return token, lifetime

    def tokens_expire(self, appid: str | None = None) -> int:
        """Make every token (of one app) expired now: the next call answers 42001."""
        count = 0
        for issued in self.tokens.values():
            if appid is None or issued.appid == appid:
                issued.expires_at = min(issued.expires_at, time.time() - 1)
                count += 1
        return count
