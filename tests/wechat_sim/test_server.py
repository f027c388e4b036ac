"""The simulator's HTTP core over real HTTP: routing by WeChat host, WeChat-shaped errors, tokens and
require_token's error codes, faults, body limit, control API, and the standalone process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from siyu.wechat_sim.server import MAX_BODY, SimRequest, Simulator
from siyu.wechat_sim.state import SimApp
from siyu.wechat_sim.tokens import require_token

MP = "api.weixin.qq.com"
WORK = "qyapi.weixin.qq.com"


@pytest.fixture
def sim():
    simulator = Simulator(seed=1)
    simulator.start()
    with simulator.lock:
        simulator.state.app_register(SimApp("official", "wxtest000000000001", secret="s" * 32, token="tok"))
        simulator.state.app_register(SimApp("work", "wwcorp0001", secret="contact-secret",
                                            extra={"secrets": {"app": "app-secret"}}))
    yield simulator
    simulator.stop()


def call(sim, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    request = urllib.request.Request(sim.base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode()


def mp_token(sim, secret="s" * 32):
    return call(sim, "GET", f"/{MP}/cgi-bin/token?grant_type=client_credential&appid=wxtest000000000001"
                            f"&secret={secret}")


def test_official_token_and_errors(sim):
    status, body = mp_token(sim)
    assert status == 200 and body["expires_in"] == 7200 and len(body["access_token"]) > 20
    assert mp_token(sim, "wrong")[1]["errcode"] == 40125
    assert call(sim, "GET", f"/{MP}/cgi-bin/token?grant_type=client_credential&appid=wxnope&secret=x")[1][
        "errcode"] == 40013
    assert call(sim, "GET", f"/{MP}/cgi-bin/token?grant_type=password&appid=x")[1]["errcode"] == 40002


def test_wecom_token_with_either_secret(sim):
    for secret in ("contact-secret", "app-secret"):
        _status, body = call(sim, "GET", f"/{WORK}/cgi-bin/gettoken?corpid=wwcorp0001&corpsecret={secret}")
        assert body["errcode"] == 0 and body["access_token"]
    assert call(sim, "GET", f"/{WORK}/cgi-bin/gettoken?corpid=wwcorp0001&corpsecret=nope")[1]["errcode"] == 40001


def _require(sim, host, token):
    return require_token(sim, SimRequest("GET", host, "/x", {"access_token": token} if token else {}, {}))


def test_require_token_answers_like_wechat(sim):
    from siyu.wechat_sim.server import SimError

    token = mp_token(sim)[1]["access_token"]
    assert _require(sim, MP, token).appid == "wxtest000000000001"
    for host, value, code in ((MP, None, 41001), (MP, "forged", 40001), (WORK, "forged", 40014),
                              (WORK, token, 40014)):  # a 公众号 token is no good at WeCom
        with pytest.raises(SimError) as error:
            _require(sim, host, value)
        assert error.value.errcode == code
    sim.state.tokens_expire("wxtest000000000001")
    with pytest.raises(SimError) as error:
        _require(sim, MP, token)
    assert error.value.errcode == 42001


def test_unknown_api_and_host(sim):
    status, body = call(sim, "GET", f"/{MP}/cgi-bin/no_such_api")
    assert status == 404 and body["errcode"] == -1
    status, body = call(sim, "GET", "/api.mch.weixin.qq.com/v3/nothing")
    assert status == 404 and body["code"] == "NOT_FOUND"
    assert call(sim, "GET", "/example.com/x")[0] == 404


def test_faults_over_http(sim):
    status, fault = call(sim, "POST", "/_sim/faults", {"kind": "http_502", "host": MP, "path": "/cgi-bin/token"})
    assert status == 200 and fault["kind"] == "http_502"
    assert call(sim, "GET", "/_sim/faults")[1][0]["kind"] == "http_502"
    assert mp_token(sim)[0] == 502
    assert mp_token(sim)[0] == 200  # times=1: used up
    call(sim, "POST", "/_sim/faults", {"kind": "errcode", "host": MP, "code": 45009, "times": -1})
    assert mp_token(sim)[1]["errcode"] == 45009
    assert call(sim, "DELETE", "/_sim/faults")[1]["errcode"] == 0
    assert mp_token(sim)[0] == 200
    assert call(sim, "POST", "/_sim/faults", {"host": MP})[0] == 400


def test_latency_and_timeout_faults(sim):
    sim.faults.add("latency", host=MP, path="/cgi-bin/token", seconds=0.05)
    assert mp_token(sim)[0] == 200
    sim.faults.add("timeout", host=MP, path="/cgi-bin/token", seconds=0.05)
    assert mp_token(sim)[0] == 504


def test_control_api_registers_apps_and_expires_tokens(sim):
    status, app = call(sim, "POST", "/_sim/apps", {"kind": "miniapp", "appid": "wxmini00000000001",
                                                    "secret": "m" * 32})
    assert status == 200 and app["kind"] == "miniapp"
    assert {item["appid"] for item in call(sim, "GET", "/_sim/apps")[1]} >= {"wxmini00000000001"}
    assert call(sim, "POST", "/_sim/apps", {"kind": "bogus", "appid": "x"})[0] == 400
    mp_token(sim)
    assert call(sim, "POST", "/_sim/tokens/expire", {"appid": "wxtest000000000001"})[1]["expired"] == 1
    assert call(sim, "GET", "/_sim/health")[1]["ok"] is True


def test_body_limit(sim):
    import io

    answered = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/_sim/apps", "CONTENT_LENGTH": str(MAX_BODY + 1),
               "wsgi.input": io.BytesIO(b"x" * 10)}
    body = sim.wsgi(environ, lambda status, headers: answered.append(status))
    assert answered == ["413 Request Entity Too Large"] and json.loads(b"".join(body))["errcode"] == -1


def test_deliver_uses_the_transport(sim):
    seen = []
    sim.siyu_url = "http://siyu.test"
    sim.transport = lambda method, url, body, headers: (seen.append((method, url, body)) or (200, b"success"))
    assert sim.deliver("/wx/official/cb", b"<xml/>") == (200, b"success")
    assert seen == [("POST", "http://siyu.test/wx/official/cb", b"<xml/>")]
    assert sim.delivered == [("http://siyu.test/wx/official/cb", 200)]


def test_standalone_process_serves():
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen([sys.executable, "-m", "siyu.wechat_sim", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/health", timeout=1) as response:
                    assert json.loads(response.read())["ok"] is True
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            raise AssertionError("the simulator process did not start")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_new_token_leaves_the_old_one_five_minutes(sim):
    from siyu.wechat_sim.server import SimError
    from siyu.wechat_sim.state import TOKEN_GRACE

    first = mp_token(sim)[1]["access_token"]
    second = mp_token(sim)[1]["access_token"]
    assert _require(sim, MP, first).appid == _require(sim, MP, second).appid  # both work for now
    with sim.lock:
        old, new = sim.state.tokens[first], sim.state.tokens[second]
        assert old.expires_at <= time.time() + TOKEN_GRACE < new.expires_at
        old.expires_at = time.time() - 1  # five minutes later
    with pytest.raises(SimError) as error:
        _require(sim, MP, first)
    assert error.value.errcode == 42001
    assert _require(sim, MP, second).appid == "wxtest000000000001"


def test_calls_and_tokens_inspection(sim):
    token = mp_token(sim)[1]["access_token"]
    mp_token(sim)
    _require(sim, MP, token)
    assert call(sim, "GET", "/_sim/tokens")[1]["wxtest000000000001"] == {"issued": 2, "valid": 2}
    calls = call(sim, "GET", f"/_sim/calls?host={MP}")[1]
    assert [item["path"] for item in calls] == ["/x"]
    assert call(sim, "GET", "/_sim/calls?path=/nothing")[1] == []
