"""The simulator's memory: registered apps (公众号, 小程序, WeCom corps, merchants) and issued access tokens.

Areas keep their own state in ``SimState.area(name, factory)`` so each module owns its data.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
TOKEN_LIFETIME = 7200


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


class SimState:
    def __init__(self, *, seed: int = 0):
        self.random = random.Random(seed)
        self.apps: dict[str, SimApp] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.calls: list[tuple[float, str, str]] = []  # (time, host, path) of every API call, for tests
        self._areas: dict[str, Any] = {}

    def area(self, name: str, factory: Callable[[], T]) -> T:
        if name not in self._areas:
            self._areas[name] = factory()
        return self._areas[name]

    def app_register(self, app: SimApp) -> SimApp:
        self.apps[app.appid] = app
        return app

    def token_issue(self, appid: str, host: str, lifetime: int = TOKEN_LIFETIME) -> tuple[str, int]:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = IssuedToken(appid, host, time.time() + lifetime)
        return token, lifetime

    def tokens_expire(self, appid: str | None = None) -> int:
        """Make every token (of one app) expired now: the next call answers 42001."""
        count = 0
        for issued in self.tokens.values():
            if appid is None or issued.appid == appid:
                issued.expires_at = min(issued.expires_at, time.time() - 1)
                count += 1
        return count
