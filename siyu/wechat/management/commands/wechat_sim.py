"""``siyu wechat_sim``: run the WeChat simulator (a separate process; Siyu never imports it).

Callbacks go to ``--siyu-url`` (default ``SIYU_PUBLIC_URL``). Point Siyu at the simulator with
``SIYU_WECHAT_BASE_URL=http://HOST:PORT``.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "运行本地微信模拟器 / Run the local WeChat simulator (python -m siyu.wechat_sim)"
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8766)
        parser.add_argument("--siyu-url", default="", help="where callbacks are delivered (default SIYU_PUBLIC_URL)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--drive", type=float, default=0, metavar="PER_MINUTE",
                            help="simulated consumer actions per minute (0: none)")

    def handle(self, *args, host: str, port: int, siyu_url: str, seed: int, drive: float, **options):
        siyu_url = siyu_url or getattr(settings, "SIYU_PUBLIC_URL", "") or "http://127.0.0.1:8000"
        argv = [sys.executable, "-m", "siyu.wechat_sim", "--host", host, "--port", str(port),
                "--siyu-url", siyu_url, "--seed", str(seed)]
        if drive:
            argv += ["--drive", f"{drive:g}"]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module, fixed arguments
