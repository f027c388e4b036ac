"""The simulator's own control API under ``/_sim/``: register apps, arm faults, expire tokens, inspect calls.

Tests usually use the Simulator object directly; the demo and separate processes use these endpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimApp

SIM = "_sim"


@route("POST", SIM, "/apps")
def apps_register(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = request.json()
    if not isinstance(payload, dict) or payload.get("kind") not in {"official", "miniapp", "work", "pay"} \
            or not payload.get("appid"):
        raise SimError(40097, "kind (official|miniapp|work|pay) and appid are required", status=400)
    fields = {name: payload[name] for name in SimApp.__dataclass_fields__ if name in payload}
    with sim.lock:
        app = sim.state.app_register(SimApp(**fields))
    return SimResponse.json(asdict(app))


@route("GET", SIM, "/apps")
def apps_list(sim: Simulator, request: SimRequest) -> SimResponse:
    with sim.lock:
        return SimResponse.json([asdict(app) for app in sim.state.apps.values()])


@route("POST", SIM, "/faults")
def faults_add(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = request.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("kind"), str):
        raise SimError(40097, "kind is required", status=400)
    params = {key: value for key, value in payload.items() if key not in {"kind", "host", "path", "times"}}
    fault = sim.faults.add(payload["kind"], host=payload.get("host", ""), path=payload.get("path", ""),
                           times=int(payload.get("times", 1)), **params)
    return SimResponse.json(asdict(fault))


@route("GET", SIM, "/faults")
def faults_list(sim: Simulator, request: SimRequest) -> SimResponse:
    return SimResponse.json([asdict(fault) for fault in sim.faults.active()])


@route("DELETE", SIM, "/faults")
def faults_clear(sim: Simulator, request: SimRequest) -> SimResponse:
    sim.faults.clear()
    return SimResponse.json({"errcode": 0, "errmsg": "ok"})


@route("POST", SIM, "/tokens/expire")
def tokens_expire(sim: Simulator, request: SimRequest) -> SimResponse:
    appid = (request.json() or {}).get("appid")
    with sim.lock:
        count = sim.state.tokens_expire(appid)
    return SimResponse.json({"expired": count})


@route("GET", SIM, "/health")
def health(sim: Simulator, request: SimRequest) -> SimResponse:
    return SimResponse.json({"ok": True, "apps": len(sim.state.apps)})


@route("GET", SIM, "/calls")
def calls_list(sim: Simulator, request: SimRequest) -> SimResponse:
    """API calls received (``?host=``, ``?path=`` prefix filters), for tests and the demo in another process."""
    host, path = request.arg("host") or "", request.arg("path") or ""
    with sim.lock:
        calls = [{"at": at, "host": call_host, "path": call_path} for at, call_host, call_path in sim.state.calls
                 if (not host or call_host == host) and call_path.startswith(path)]
    return SimResponse.json(calls)


@route("GET", SIM, "/tokens")
def tokens_summary(sim: Simulator, request: SimRequest) -> SimResponse:
    """How many access tokens each app was issued and how many still work (never the tokens themselves)."""
    now = time.time()
    summary: dict[str, dict[str, int]] = {}
    with sim.lock:
        for issued in sim.state.tokens.values():
            entry = summary.setdefault(issued.appid, {"issued": 0, "valid": 0})
            entry["issued"] += 1
            entry["valid"] += int(not issued.revoked and issued.expires_at > now)
    return SimResponse.json(summary)
