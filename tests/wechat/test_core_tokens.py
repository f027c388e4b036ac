"""Token refresh under concurrency (PostgreSQL): many callers with an expired token cause one fetch."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from siyu.wechat.clients import official_client, wechat_call
from siyu.wechat.models import AccessToken

MP = "api.weixin.qq.com"


def _issued(sim, appid: str) -> int:
    with sim.lock:
        return sum(1 for token in sim.state.tokens.values() if token.appid == appid)


def _run_concurrently(app, count: int) -> list:
    barrier = threading.Barrier(count)
    results: list = []
    lock = threading.Lock()

    def caller():
        try:
            barrier.wait(timeout=10)
            client = official_client(app)
            outcome = wechat_call(app, "menu.get", client.menu.get)
        except Exception as error:  # reported to the main thread
            outcome = error
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=caller) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_callers_fetch_one_token(wechat_sim, official_app):
    # the token endpoint answers slowly, so every caller arrives while the first fetch is in flight
    wechat_sim.faults.add("latency", host=MP, path="/cgi-bin/token", seconds=0.3)
    results = _run_concurrently(official_app, 8)
    assert results == [None] * 8  # every call answered (no menu yet)
    assert _issued(wechat_sim, official_app.appid) == 1
    assert AccessToken.objects.filter(app=official_app).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_callers_after_42001_refresh_once(wechat_sim, official_app):
    client = official_client(official_app)
    wechat_call(official_app, "menu.get", client.menu.get)
    with wechat_sim.lock:
        wechat_sim.state.tokens_expire(official_app.appid)  # WeChat says 42001; our cache still trusts it
    wechat_sim.faults.add("latency", host=MP, path="/cgi-bin/token", seconds=0.3)
    results = _run_concurrently(official_app, 8)
    assert results == [None] * 8
    assert _issued(wechat_sim, official_app.appid) == 2  # the first one, and exactly one refresh
