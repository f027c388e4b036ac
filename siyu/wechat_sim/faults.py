"""Switchable faults: make the next N matching calls time out, fail with 5xx, or answer a WeChat error.

A fault matches by host and path prefix. Kinds applied to incoming API calls:
- ``timeout``: hold the request for ``seconds`` (longer than the client's timeout) and then answer 504;
- ``http_500`` / ``http_502`` / ``http_503``: a bare server error;
- ``latency``: hold the request for ``seconds`` and then handle it normally (concurrency tests);
- ``errcode``: answer ``{"errcode": code, "errmsg": msg}`` (e.g. 45009 quota, 45011 rate limit, 40001,
  42001), or for api.mch.weixin.qq.com the v3 error shape ``{"code": ..., "message": ...}`` with ``status``.
Kinds applied by the areas when they deliver callbacks or notifications (they ask ``take(kind, ...)``):
- ``duplicate_notify``, ``out_of_order``, ``delay_callback``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

REQUEST_KINDS = ("timeout", "http_500", "http_502", "http_503", "errcode")


@dataclass
class Fault:
    kind: str
    host: str = ""
    path: str = ""  # prefix
    times: int = 1  # how many matching calls it applies to; -1 means until cleared
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, host: str, path: str) -> bool:
        return (not self.host or self.host == host) and path.startswith(self.path)


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, *, host: str = "", path: str = "", times: int = 1, **params: Any) -> Fault:
        fault = Fault(kind, host, path, times, params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [fault for fault in self._faults if fault.times != 0]

    def take(self, kind: str, host: str = "", path: str = "") -> Fault | None:
        """Consume one application of a fault of ``kind`` matching host/path, if one is armed."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.times != 0 and fault.matches(host, path):
                    fault.times -= 1 if fault.times > 0 else 0
                    fault.hits += 1
                    return fault
        return None

    def before(self, request) -> Any:
        """The response a request fault imposes on this call, or None to handle it normally."""
        if request.host == "_sim":
            return None
        from siyu.wechat_sim.server import SimResponse

        latency = self.take("latency", request.host, request.path)
        if latency is not None:
            time.sleep(float(latency.params.get("seconds", 0.2)))
        for kind in REQUEST_KINDS:
            fault = self.take(kind, request.host, request.path)
            if fault is None:
                continue
            if kind == "timeout":
                time.sleep(float(fault.params.get("seconds", 10)))
                return SimResponse.text("gateway timeout", status=504)
            if kind.startswith("http_"):
                return SimResponse.text("server error", status=int(kind[5:]))
            code, message = fault.params.get("code", 45009), fault.params.get("message", "api freq out of limit")
            if request.host == "api.mch.weixin.qq.com":
                return SimResponse.json({"code": code, "message": message}, status=int(fault.params.get("status", 429)))
            return SimResponse.error(int(code), str(message))
        return None
