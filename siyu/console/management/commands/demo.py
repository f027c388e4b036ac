"""``siyu demo``: set up the demo brand once (data, logins, API key), then run the worker and the console.

Idempotent: a second run reuses the workspace, the stored passwords and API key, and never simulates twice.
Secrets generated for the demo live under SIYU_DATA_DIR (mode 0600), so the printed logins stay valid.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from siyu.channels.services import channels_install_defaults
from siyu.core.models import Role, Workspace
from siyu.core.services import api_key_authenticate, api_key_create, membership_grant
from siyu.customers.models import Customer
from siyu.simulation.models import SimulationRun

DEMO_SLUG = "demo"
DEMO_NAME = "花漾美妆 (演示)"
DEMO_SEED = 3
# Monthly cost (fen) and monthly target (people) per channel; the targets are seed 003's channel matrix.
CHANNEL_COSTS_FEN = {
    "xiaohongshu": 4_000_000, "douyin": 3_500_000, "official_account": 600_000, "store": 1_500_000,
    "referral": 1_200_000, "mini_program": 300_000, "community": 200_000, "wecom": 400_000, "channels": 500_000,
    "search": 300_000, "ecommerce": 250_000, "event": 800_000, "partner": 200_000,
}
CHANNEL_TARGETS = {"xiaohongshu": 8000, "douyin": 5000, "official_account": 2000, "store": 3000, "referral": 4000}
LOGINS = (
    ("admin", Role.ADMIN, "管理员"),
    ("operator", Role.OPERATOR, "运营 小李"),
    ("service", Role.SERVICE, "导购 小周"),
    ("analyst", Role.ANALYST, "分析师 小陈"),
)


def _secret_file(name: str) -> Path:
    return settings.DATA_DIR / name


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def demo_passwords() -> dict[str, str]:
    """One password per demo login, generated on the first run and kept under SIYU_DATA_DIR."""
    path = _secret_file("demo_logins.json")
    stored = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for username, _, _ in LOGINS:
        if username not in stored:
            stored[username] = secrets.token_urlsafe(9)
            changed = True
    if changed:
        _write_private(path, json.dumps(stored, indent=2))
    return stored


def demo_api_key(workspace: Workspace) -> str:
    """The demo's API key: reuse the stored secret while it still authenticates, else create one."""
    path = _secret_file("demo_api_key")
    if path.exists():
        secret = path.read_text().strip()
        authenticated = api_key_authenticate(secret)
        if authenticated is not None and authenticated.pk == workspace.pk:
            return secret
    _, secret = api_key_create(workspace=workspace, name="demo")
    _write_private(path, secret)
    return secret


class Command(BaseCommand):
    help = "安装并运行演示品牌 / Install and run the demo brand (console, worker, simulated data)"
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("SIYU_PORT", "8000")))
        parser.add_argument("--customers", type=int, default=4000)
        parser.add_argument("--months", type=int, default=6)
        parser.add_argument("--no-serve", action="store_true", help="set up the data, print the logins, exit")

    def handle(self, *args, **options):
        self.stdout.write("==> 数据库迁移 migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        workspace = Workspace.objects.filter(slug=DEMO_SLUG).first()
        if workspace is None:
            workspace = Workspace.objects.create(slug=DEMO_SLUG, name=DEMO_NAME, industry="美妆")
        channels_install_defaults(workspace=workspace, costs_fen=CHANNEL_COSTS_FEN, targets=CHANNEL_TARGETS)
        passwords = demo_passwords()
        memberships = {}
        for username, role, display in LOGINS:
            memberships[username] = membership_grant(workspace=workspace, username=username,
                                                     password=passwords[username], role=role, display_name=display)
        admin_user = memberships["admin"].user
        if not admin_user.is_staff:
            admin_user.is_staff = admin_user.is_superuser = True
            admin_user.save(update_fields=["is_staff", "is_superuser"])

        if SimulationRun.objects.filter(workspace=workspace).exists() or Customer.objects.filter(
                workspace=workspace).exists():
            self.stdout.write("==> 演示数据已存在,跳过模拟 demo data exists, not simulating again")
        else:
            self.stdout.write(f"==> 模拟品牌 simulating {options['customers']:,} customers over "
                              f"{options['months']} months")
            call_command("simulate", workspace=DEMO_SLUG, customers=options["customers"], months=options["months"],
                         seed=DEMO_SEED, stdout=self.stdout, stderr=self.stderr)
            # the service login sees only the customers assigned to them
            first_ids = list(Customer.objects.filter(workspace=workspace).order_by("id")
                             .values_list("id", flat=True)[:200])
            Customer.objects.filter(id__in=first_ids).update(owner=memberships["service"].user)
        self.stdout.write("==> 统计汇总 refreshing the dashboard rollups")
        call_command("analytics_refresh", workspace=DEMO_SLUG, stdout=self.stdout, stderr=self.stderr)
        api_secret = demo_api_key(workspace)
        url = f"http://127.0.0.1:{options['port']}/"
        self._print_access(url, passwords, api_secret, serving=not options["no_serve"])
        if options["no_serve"]:
            return
        self._serve(options["port"])

    def _print_access(self, url: str, passwords: dict[str, str], api_secret: str, *, serving: bool) -> None:
        lines = [
            "",
            "=" * 64,
            f"  私域 Siyu 演示 · {DEMO_NAME}",
            f"  控制台 Console:      {url}" + ("" if serving else "   (run `siyu demo` to start it)"),
            "  登录 Logins (用户名 / 密码):",
        ]
        for username, _, display in LOGINS:
            lines.append(f"    {username:<9} / {passwords[username]:<14} {display}")
        lines += [
            f"  API key (Bearer):   {api_secret}",
            f"  事件接口 Events API: {url}api/v1/events/batch   (OpenAPI: {url}api/docs)",
            f"  数据目录 Data dir:   {settings.DATA_DIR}",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _serve(self, port: int) -> None:
        call_command("collectstatic", interactive=False, verbosity=0)
        python = sys.executable
        children = [
            subprocess.Popen([python, "-m", "siyu.cli", "run_huey"]),  # noqa: S603
            subprocess.Popen([python, "-m", "gunicorn", "siyu.wsgi:application",  # noqa: S603
                              "--bind", f"127.0.0.1:{port}", "--workers", "3", "--access-logfile", "-"]),
        ]
        # issue 3: start the WeChat simulator (official account / mini-program / WeCom / Pay) here as a child.
        self.stdout.write("后台任务与控制台已启动,按 Ctrl-C 停止 / worker and console running, Ctrl-C to stop")

        def stop(*_):
            raise KeyboardInterrupt

        # also SIGINT explicitly: a shell starting us in the background would have it ignored
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("a child process exited; stopping the demo")
        except KeyboardInterrupt:
            self.stdout.write("\n正在停止 stopping…")
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
