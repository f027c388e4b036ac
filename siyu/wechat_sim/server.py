"""The simulator's HTTP core: one WSGI app serving every simulated WeChat host under a path prefix.

A request to ``{base}/{host}{path}`` is WeChat's ``https://{host}{path}``; Siyu's adapters rewrite WeChat
hosts to that form in simulator mode. Areas register their endpoints with :func:`route` in their own
module (``mp``, ``miniapp``, ``work``, ``pay``); ``/_sim/...`` is the simulator's own control API, used
by tests, the demo and the simulated consumers.

State lives in memory in one process, guarded by ``Simulator.lock``; the server is threaded so Siyu can
call back into us while we are calling Siyu.
"""

from __future__ import annotations

import importlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from siyu.wechat_sim.faults import Faults
from siyu.wechat_sim.state import SimState

MAX_BODY = 4 * 1024 * 1024
WECHAT_HOSTS = frozenset({
    "api.weixin.qq.com", "qyapi.weixin.qq.com", "api.mch.weixin.qq.com", "open.weixin.qq.com",
    "mp.weixin.qq.com", "open.work.weixin.qq.com",
})
# Modules that register routes when imported (each area owns its module).
AREA_MODULES = ("tokens", "control", "mp", "miniapp", "oauth", "work", "pay", "consumers", "groupchat", "kf")


class SimError(Exception):
    """A WeChat-style error answer: {"errcode": ..., "errmsg": ...} with HTTP 200 unless told otherwise."""

    def __init__(self, errcode: int, errmsg: str, *, status: int = 200):
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg, self.status = errcode, errmsg, status


@dataclass
class SimRequest:
    method: str
    host: str  # a WeChat host, or "_sim" for the control API
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise SimError(47001, "data format error") from error

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)


@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> SimResponse:
        body = json.dumps(payload, ensure_ascii=False).encode()
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> SimResponse:
        return cls(status, text.encode(), {"Content-Type": content_type})

    @classmethod
    def error(cls, errcode: int, errmsg: str, status: int = 200) -> SimResponse:
        return cls.json({"errcode": errcode, "errmsg": errmsg}, status=status)


Handler = Callable[["Simulator", SimRequest], SimResponse]
ROUTES: dict[tuple[str, str, str], Handler] = {}
PREFIX_ROUTES: list[tuple[str, str, str, Handler]] = []  # (method, host, path prefix, handler)


def route(method: str, host: str, path: str, *, prefix: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler for ``method https://host/path`` (or every path under it with ``prefix``)."""

    def register(handler: Handler) -> Handler:
        if prefix:
            PREFIX_ROUTES.append((method.upper(), host, path, handler))
            PREFIX_ROUTES.sort(key=lambda item: -len(item[2]))
        else:
            key = (method.upper(), host, path)
            assert key not in ROUTES, f"route registered twice: {key}"
            ROUTES[key] = handler
        return handler

    return register


def _load_areas() -> None:
    for name in AREA_MODULES:
        importlib.import_module(f"siyu.wechat_sim.{name}")


class Simulator:
    """One simulated WeChat: its state, its faults, and the HTTP face both are reached through."""

    def __init__(self, *, siyu_url: str = "", seed: int = 0):
        _load_areas()
        self.lock = threading.RLock()
        self.state = SimState(seed=seed)
        self.faults = Faults()
        self.siyu_url = siyu_url.rstrip("/")  # where callbacks and notifications are delivered
        self.base_url = ""
        # How callbacks reach Siyu: (method, url, body, headers) -> (status, body). HTTP by default;
        # tests may plug in Django's test client to call Siyu in-process.
        self.transport: Callable[[str, str, bytes, dict[str, str]], tuple[int, bytes]] = _http_transport
        self.delivered: list[tuple[str, int]] = []  # (url, status) of every callback delivered
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- dispatch ---------------------------------------------------------------------------------
    def handle(self, request: SimRequest) -> SimResponse:
        injected = self.faults.before(request)
        if injected is not None:
            return injected
        handler = ROUTES.get((request.method, request.host, request.path))
        if handler is None:
            for method, host, prefix, candidate in PREFIX_ROUTES:
                if method == request.method and host == request.host and request.path.startswith(prefix):
                    handler = candidate
                    break
        if handler is None:
            if request.host == "api.mch.weixin.qq.com":
                return SimResponse.json({"code": "NOT_FOUND", "message": "请求的资源不存在"}, status=404)
            return SimResponse.error(-1, f"simulator: no such API {request.method} {request.host}{request.path}",
                                     status=404)
        try:
            return handler(self, request)
        except SimError as error:
            return SimResponse.error(error.errcode, error.errmsg, status=error.status)

    def wsgi(self, environ: dict, start_response: Callable) -> list[bytes]:
        request = _request_from_environ(environ)
        if request is None:
            response = SimResponse.error(-1, "body too large or malformed request", status=413)
        else:
            response = self.handle(request)
        reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
        headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {reason}", headers)
        return [response.body]

    __call__ = wsgi

    # --- calling Siyu ------------------------------------------------------------------------------
    def deliver(self, url: str, body: bytes, headers: dict[str, str] | None = None,
                method: str = "POST") -> tuple[int, bytes]:
        """Send one callback or notification to Siyu (``url`` relative to ``siyu_url`` or absolute)."""
        if not url.startswith(("http://", "https://")):
            url = self.siyu_url + url
        status, answer = self.transport(method, url, body, headers or {})
        with self.lock:
            self.delivered.append((url, status))
        return status, answer

    # --- serving ----------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread (tests, demo); returns the base URL."""
        self._server = make_server(host, port, self.wsgi, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.base_url = f"http://{host}:{self._server.server_port}"
        server = self._server
        # a short poll interval so stop() returns quickly (tests start and stop one simulator each)
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), name="wechat-sim",
                                        daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self, host: str = "127.0.0.1", port: int = 8766) -> None:
        self._server = make_server(host, port, self.wsgi, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.base_url = f"http://{host}:{self._server.server_port}"
        self._server.serve_forever()


def _http_transport(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body if method != "GET" else None, headers=headers,  # noqa: S310
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - URL is Siyu's, configured
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, b""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _request_from_environ(environ: dict) -> SimRequest | None:
    raw_path = environ.get("PATH_INFO", "/") or "/"
    parts = raw_path.lstrip("/").split("/", 1)
    first, rest = parts[0], "/" + (parts[1] if len(parts) > 1 else "")
    if first in WECHAT_HOSTS or first == "_sim":
        host, path = first, rest
    else:
        host, path = "", raw_path
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length < 0 or length > MAX_BODY:
        return None
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    return SimRequest(environ.get("REQUEST_METHOD", "GET").upper(), host, path, query, headers, body)
