"""Fixtures for the WeChat integration: a simulator in a thread, and Siyu pointed at it."""

from __future__ import annotations

import pytest
from django.test import Client

from siyu.wechat_sim.server import Simulator


@pytest.fixture
def wechat_sim(settings):
    """A fresh simulator on a free port; Siyu's WeChat adapters talk to it (simulator mode).

    Callbacks the simulator sends to Siyu go through Django's test client in-process, so tests keep
    the usual per-test transaction; ``sim.siyu_url`` is only a label then.
    """
    sim = Simulator(siyu_url="http://siyu.test", seed=7)
    base = sim.start()
    settings.SIYU_WECHAT_BASE_URL = base
    client = Client()

    def in_process(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        path = url.removeprefix(sim.siyu_url)
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
                 if name.lower() != "content-type"}
        content_type = headers.get("Content-Type") or headers.get("content-type") or "text/xml"
        response = client.generic(method, path, data=body, content_type=content_type, **extra)
        return response.status_code, response.content

    sim.transport = in_process
    yield sim
    sim.stop()
