"""``siyu wechat_sim`` replaces itself with the simulator process (Siyu never imports the simulator)."""

from __future__ import annotations

import sys

from django.core.management import call_command


def test_command_execs_the_simulator_module(monkeypatch, settings):
    seen: list = []
    monkeypatch.setattr("os.execv", lambda path, argv: seen.append((path, argv)))
    settings.SIYU_PUBLIC_URL = "http://siyu.example:8000"
    call_command("wechat_sim", "--port", "9999", "--seed", "3")
    assert seen == [(sys.executable, [sys.executable, "-m", "siyu.wechat_sim", "--host", "127.0.0.1", "--port",
                                      "9999", "--siyu-url", "http://siyu.example:8000", "--seed", "3"])]


def test_command_passes_the_consumer_drive_rate_through(monkeypatch, settings):
    seen: list = []
    monkeypatch.setattr("os.execv", lambda path, argv: seen.append(argv))
    call_command("wechat_sim", "--drive", "12", "--siyu-url", "http://127.0.0.1:8000")
    assert seen[0][-2:] == ["--drive", "12"]
