"""``siyu demo``: set up the demo brand once (data, logins, API key), then run the worker, the console and
the WeChat simulator with simulated consumers, so the console fills with live activity.

Idempotent: a second run reuses the workspace, the stored passwords and API key, and never simulates twice.
Secrets generated for the demo live under SIYU_DATA_DIR (mode 0600), so the printed logins stay valid.

WeChat (issue 3): the simulator runs as a child process (``python -m siyu.wechat_sim``, port ``--sim-port``)
and Siyu's children get ``SIYU_WECHAT_BASE_URL`` pointing at it and ``SIYU_PUBLIC_URL`` at the console. The
brand's 公众号, 小程序, 企业微信 corp and 微信支付 merchant (credentials generated once, kept in
``demo_wechat.json``) are registered in the simulator (``/_sim/...``) and in Siyu (``app_save``, only when
something changed); Siyu creates one permanent channel QR code per seed channel and 「联系我」 codes with
a few staff, once. The simulator keeps its memory only while it runs, so on later runs the codes, groups
and menu Siyu holds are handed back to it (``/_sim/codes/restore``) instead of being created again. Then
the simulated consumers start (``/_sim/consumers/start``): some of them shop in the mini-program (cart,
checkout, WeChat Pay), so orders and payments arrive as they would from real buyers.

The shop (issue 4): a beauty catalog, the storefront page, coupons and promotions, created once
(``_demo_commerce.demo_catalog``); the H5 store is at ``/shop/demo/``.
The operations layer (issue 5, ``_demo_engagement``): the simulated purchases become real paid orders, then
RFM layers, segments, two active journeys, the service bot's FAQ, growth tasks, points mall and lottery, and
(once serving) the WeCom customer groups linked as communities; the due work runs once, the worker keeps on.
``--no-serve`` does the same set-up against a simulator in a thread (fast, for tests) and exits.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from siyu.channels.services import channels_install_defaults
from siyu.console.management.commands._demo_commerce import demo_catalog
from siyu.console.management.commands._demo_engagement import (
    demo_communities,
    demo_engagement,
    demo_engagement_summary,
)
from siyu.core.errors import SiyuError
from siyu.core.models import Role, Workspace
from siyu.core.services import api_key_authenticate, api_key_create, membership_grant
from siyu.customers.models import Customer, Identity, Tag
from siyu.customers.tagging import tag_create
from siyu.simulation.models import SimulationRun
from siyu.wechat.credentials import app_save
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.official.models import AutoReplyRule, ChannelQrCode, QrKind
from siyu.wechat.official.services import (
    menu_publish,
    menu_save,
    official_settings,
    qrcode_create,
    rule_save,
    settings_update,
)
from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.contacts import staff_sync
from siyu.wechat.work.groups import groups_sync
from siyu.wechat.work.models import ContactWay, CustomerGroup, Staff
from siyu.wechat.work.tag_sync import mirror_group

logger = logging.getLogger(__name__)

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


DEFAULT_SIM_PORT = 8766
DEFAULT_DRIVE_PER_MINUTE = 30
OPEN_PLATFORM = "huayang"  # every demo app under one open platform: one unionid per person
STAFF = {"zhou": "导购 小周", "chen": "导购 小陈", "lin": "导购 小林", "wang": "店长 王姐"}
# One permanent 公众号 QR code per seed channel (SPEC T2, 公众号 half).
QR_CHANNELS = {"xiaohongshu": "小红书笔记引流码", "douyin": "抖音直播间引流码", "official_account": "公众号文章引流码",
               "store": "门店收银台码", "referral": "老客推荐码"}
# 「联系我」 codes: channel -> (name, staff rotation with daily caps, tag, welcome message).
CONTACT_WAYS = {
    "xiaohongshu": ("小红书专属顾问", [("zhou", 80), ("chen", 80)], "小红书种草",
                    "你好呀～我是花漾美妆的专属顾问，回复「1」领取小红书粉丝专享券 🎁"),
    "store": ("门店会员顾问", [("wang", 50), ("lin", 50)], "门店到访",
              "欢迎光临花漾美妆！到店会员可预约免费肤质检测，回复「预约」即可。"),
    "douyin": ("抖音直播福利官", [("lin", 60), ("zhou", 40)], "抖音引流",
               "感谢来自直播间的你！直播专享价已发放到账户，点击小程序查看。"),
}
GROUPS = (("花漾美妆 VIP 福利群", "wang"), ("小红书粉丝交流群", "zhou"), ("花漾新人福利群", "chen"), ("会员日活动群", "lin"))
KEYWORD_RULES = (("优惠", "contains", "本周会员日全场 8 折，新人再领 20 元券：点击菜单「福利」→「领券」。"),
                 ("价格", "contains", "价格以小程序商城为准，回复「客服」由顾问为你推荐适合的产品。"),
                 ("客服", "exact", "顾问在线时间 9:00–22:00，添加专属顾问：点击菜单「福利」→「找顾问」。"))


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


# --- WeChat (issue 3) -------------------------------------------------------------------------------------------
def _aes_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()[:43]


def _appid(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


def demo_wechat_credentials() -> dict[str, dict[str, str]]:
    """The demo brand's WeChat accounts and secrets, generated on the first run, kept under SIYU_DATA_DIR."""
    path = _secret_file("demo_wechat.json")
    stored = json.loads(path.read_text()) if path.exists() else {}
    if {"official", "miniapp", "work", "pay"} <= set(stored):
        return stored
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stored = {
        "official": {"appid": _appid("wx"), "app_secret": secrets.token_hex(16), "token": "demo" + secrets.token_hex(6),
                     "encoding_aes_key": _aes_key()},
        "miniapp": {"appid": _appid("wx"), "app_secret": secrets.token_hex(16)},
        "work": {"appid": _appid("ww"), "contact_secret": secrets.token_hex(20), "app_secret": secrets.token_hex(20),
                 "agent_id": "1000002", "token": "demo" + secrets.token_hex(6), "encoding_aes_key": _aes_key()},
        "pay": {"appid": "19" + "".join(secrets.choice("0123456789") for _ in range(8)),
                "api_v3_key": secrets.token_hex(16), "merchant_serial_no": secrets.token_hex(20).upper(),
                "merchant_private_key": key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()).decode()},
    }
    _write_private(path, json.dumps(stored, indent=2))
    return stored


def _public_pem(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sim_call(sim_url: str, method: str, path: str, payload: Any = None, timeout: float = 30) -> Any:
    """One call to the simulator's control API (``/_sim/...``); an error answer raises RuntimeError."""
    body = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{sim_url}/_sim{path}", data=body, method=method,  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own simulator
            answer = json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"simulator {method} {path}: HTTP {error.code} {error.read()[:300]!r}") from None
    if isinstance(answer, dict) and answer.get("errcode") not in (None, 0):
        raise RuntimeError(f"simulator {method} {path}: {answer}")
    return answer


def _app_ensure(workspace: Workspace, kind: str, appid: str, name: str, wanted: dict[str, Any]) -> WeChatApp:
    """app_save only when the account is new or a secret differs (no audit noise on a second run)."""
    app = WeChatApp.objects.filter(kind=kind, appid=appid).first()
    if app is not None and app.workspace_id == workspace.pk and app.is_active and all(
            str(app.secrets().get(field, "")).strip() == str(value).strip() for field, value in wanted.items()):
        return app
    return app_save(workspace=workspace, kind=kind, appid=appid, name=name, secrets=wanted)


def wechat_register(workspace: Workspace, *, sim_url: str, public_url: str) -> dict[str, WeChatApp]:
    """Register the brand's four WeChat accounts in the simulator (always: it forgets on restart) and in
    Siyu (idempotent), and bring WeCom's member list over."""
    creds = demo_wechat_credentials()
    official, mini, work, pay = creds["official"], creds["miniapp"], creds["work"], creds["pay"]
    sim_call(sim_url, "POST", "/apps", {
        "kind": "official", "appid": official["appid"], "secret": official["app_secret"], "token": official["token"],
        "encoding_aes_key": official["encoding_aes_key"],
        "callback_url": f"{public_url}/wx/official/{official['appid']}/callback",
        "extra": {"message_mode": "safe", "open_platform": OPEN_PLATFORM, "account_type": "service",
                  "original_id": "gh_huayang0demo"}})
    sim_call(sim_url, "POST", "/apps", {"kind": "miniapp", "appid": mini["appid"], "secret": mini["app_secret"],
                                        "extra": {"open_platform": OPEN_PLATFORM}})
    sim_call(sim_url, "POST", "/work/corps", {
        "corpid": work["appid"], "secret": work["contact_secret"], "token": work["token"],
        "encoding_aes_key": work["encoding_aes_key"], "callback_url": f"{public_url}/wx/work/{work['appid']}/callback",
        "staff": STAFF})
    sim_call(sim_url, "POST", "/apps", {  # the same corp with both secrets and the open platform
        "kind": "work", "appid": work["appid"], "secret": work["contact_secret"], "token": work["token"],
        "encoding_aes_key": work["encoding_aes_key"], "callback_url": f"{public_url}/wx/work/{work['appid']}/callback",
        "extra": {"open_platform": OPEN_PLATFORM, "agent_id": work["agent_id"],
                  "secrets": {"contact": work["contact_secret"], "app": work["app_secret"]}}})
    platform = sim_call(sim_url, "POST", "/pay/merchants", {
        "mchid": pay["appid"], "api_v3_key": pay["api_v3_key"], "merchant_serial_no": pay["merchant_serial_no"],
        "merchant_public_key": _public_pem(pay["merchant_private_key"]), "appids": [mini["appid"], official["appid"]]})

    apps = {
        "official": _app_ensure(workspace, AppKind.OFFICIAL, official["appid"], "花漾美妆 服务号", {
            "app_secret": official["app_secret"], "token": official["token"],
            "encoding_aes_key": official["encoding_aes_key"], "message_mode": "safe"}),
        "miniapp": _app_ensure(workspace, AppKind.MINIAPP, mini["appid"], "花漾美妆商城 小程序",
                               {"app_secret": mini["app_secret"]}),
        "work": _app_ensure(workspace, AppKind.WORK, work["appid"], "花漾美妆 企业微信", {
            field: work[field] for field in ("contact_secret", "app_secret", "agent_id", "token", "encoding_aes_key")}),
        # the platform key is the running simulator's: a new simulator process means a new key to trust
        "pay": _app_ensure(workspace, AppKind.PAY, pay["appid"], "花漾美妆 微信支付", {
            "api_v3_key": pay["api_v3_key"], "merchant_serial_no": pay["merchant_serial_no"],
            "merchant_private_key": pay["merchant_private_key"], "platform_public_key": platform["public_key"],
            "platform_public_key_id": platform["public_key_id"], "appid": mini["appid"]}),
    }
    staff_sync(apps["work"])
    return apps


def wechat_codes(workspace: Workspace, apps: dict[str, WeChatApp], *, public_url: str) -> dict[str, int]:
    """Create, once, what the brand's operators would set up: 公众号 replies, keyword rules and menu, one
    permanent QR code per seed channel, 「联系我」 codes with tags and welcome messages. Returns counts created."""
    official, work = apps["official"], apps["work"]
    created = {"qrcodes": 0, "contact_ways": 0}
    row = official_settings(app=official)
    if not row.welcome_reply:
        settings_update(app=official, actor=None, account_type="service", unionid_access=True,
                        welcome_reply="欢迎关注花漾美妆 🌸 新人礼已备好：点击菜单「福利」领取，或回复「优惠」查看本周活动。",
                        default_reply="收到～顾问会尽快回复你。急事可回复「客服」。")
    if not AutoReplyRule.objects.filter(app=official).exists():
        for keyword, match, reply in KEYWORD_RULES:
            rule_save(app=official, actor=None, keyword=keyword, match=match, reply_text=reply)
    if row.menu_published_at is None:
        store = f"{public_url}/wx/consumer/oauth/{official.appid}/start?scope=snsapi_userinfo&next=/"
        menu_save(app=official, actor=None, menu={"button": [
            {"name": "福利", "sub_button": [{"type": "click", "name": "领券", "key": "GIFT_COUPON"},
                                            {"type": "click", "name": "找顾问", "key": "FIND_ADVISOR"}]},
            {"type": "view", "name": "商城", "url": store},
            {"type": "click", "name": "会员", "key": "MEMBER"}]})
        menu_publish(app=official, actor=None)
    for channel, name in QR_CHANNELS.items():
        if not ChannelQrCode.objects.filter(app=official, channel=channel, kind=QrKind.PERMANENT).exists():
            qrcode_create(app=official, actor=None, name=name, channel=channel, kind=QrKind.PERMANENT)
            created["qrcodes"] += 1
    staff = {row.userid: row for row in Staff.objects.filter(app=work)}
    group = mirror_group(workspace)  # tags of this group are kept in sync with WeCom's tag library
    for channel, (name, members, tag_name, welcome) in CONTACT_WAYS.items():
        if ContactWay.objects.filter(app=work, channel=channel, active=True).exists():
            continue
        tag = Tag.objects.filter(workspace=workspace, group=group, name=tag_name).first() or tag_create(
            workspace=workspace, group_id=group.pk, name=tag_name)
        contact_way_save(workspace=workspace, app=work, name=name, channel=channel,
                         members=[(staff[userid].pk, cap) for userid, cap in members], tag_ids=[tag.pk],
                         welcome_text=welcome)
        created["contact_ways"] += 1
    return created


def wechat_restore(apps: dict[str, WeChatApp], *, sim_url: str) -> dict[str, int]:
    """Hand the codes, groups and menu Siyu holds back to a simulator that started empty."""
    official, work = apps["official"], apps["work"]
    row = official_settings(app=official)
    payload = {
        "qrcodes": [{"appid": official.appid, "ticket": code.ticket, "scene": code.scene_str, "url": code.url,
                     "permanent": code.kind == QrKind.PERMANENT,
                     "expires_at": code.expires_at.timestamp() if code.expires_at else None}
                    for code in ChannelQrCode.objects.filter(app=official)
                    if code.kind == QrKind.PERMANENT or (code.expires_at and code.expires_at > timezone.now())],
        "contact_ways": [{"corpid": work.appid, "config_id": way.config_id, "state": way.state,
                          "users": list(way.rotation_synced), "remark": way.name}
                         for way in ContactWay.objects.filter(app=work, active=True).exclude(config_id="")
                         if way.rotation_synced],
        "groups": [{"corpid": work.appid, "chat_id": group.chat_id, "owner": group.owner_userid, "name": group.name}
                   for group in CustomerGroup.objects.filter(app=work, dismissed_at=None).exclude(owner_userid="")],
        "menus": {official.appid: row.menu} if row.menu_published_at and row.menu else {},
    }
    return sim_call(sim_url, "POST", "/codes/restore", payload)


def wechat_groups(apps: dict[str, WeChatApp], *, sim_url: str) -> int:
    """Customer groups, created once in WeCom (Siyu hears of them by callback: Siyu must be serving)."""
    work = apps["work"]
    if CustomerGroup.objects.filter(app=work).exists():
        return 0
    for name, owner in GROUPS:
        sim_call(sim_url, "POST", "/work/groups", {"corpid": work.appid, "owner": owner, "name": name})
    return len(GROUPS)


def simulator_start(*, port: int, siyu_url: str) -> tuple[subprocess.Popen, str]:
    """The WeChat simulator as a child process (Siyu never imports it); returns it and its base URL once it
    answers. Port 0 picks a free one (``--no-serve`` and tests)."""
    if port == 0:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "siyu.wechat_sim", "--host", "127.0.0.1",  # noqa: S603
                              "--port", str(port), "--siyu-url", siyu_url, "--seed", str(DEMO_SEED)],
                             stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    if not _wait_for(f"{url}/_sim/health", seconds=30, alive=lambda: child.poll() is None):
        child.kill()
        child.wait()
        raise RuntimeError(f"the WeChat simulator did not start on port {port} (is the port taken? use --sim-port)")
    return child, url


def _wait_for(url: str, *, seconds: float, alive) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own children
                return True
        except urllib.error.HTTPError:
            return True  # it answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "安装并运行演示品牌 / Install and run the demo brand (console, worker, WeChat simulator, simulated data)"
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("SIYU_PORT", "8000")))
        parser.add_argument("--sim-port", type=int, default=int(os.environ.get("SIYU_SIM_PORT", DEFAULT_SIM_PORT)),
                            help="port of the WeChat simulator (0: any free port)")
        parser.add_argument("--drive", type=float, default=DEFAULT_DRIVE_PER_MINUTE, metavar="PER_MINUTE",
                            help="simulated WeChat consumers' actions a minute (0: none)")
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
        created = demo_catalog(workspace)
        self.stdout.write("==> 商城 shop: " + (
            f"{created['categories']} categories, {created['products']} products ({created['skus']} SKUs), "
            f"{created['coupons']} coupon templates, {created['promotions']} promotions created"
            if created["products"] else "catalog exists, nothing created"))
        self.stdout.write("==> 统计汇总 refreshing the dashboard rollups")
        call_command("analytics_refresh", workspace=DEMO_SLUG, stdout=self.stdout, stderr=self.stderr)
        api_secret = demo_api_key(workspace)
        url = f"http://127.0.0.1:{options['port']}/"
        if options["no_serve"]:
            # the same WeChat set-up against a short-lived simulator; this process's settings are put back
            previous = settings.SIYU_WECHAT_BASE_URL, settings.SIYU_PUBLIC_URL
            try:
                child, sim_url = simulator_start(port=0, siyu_url=url.rstrip("/"))
            except RuntimeError as error:
                raise CommandError(str(error)) from None
            try:
                apps = self._wechat_setup(workspace, sim_url=sim_url, public_url=url.rstrip("/"))
                # Nothing is serving to hear the groups' callbacks: the groups are pulled (groupchat/list)
                # so the operations layer links them as communities, as when serving.
                groups = wechat_groups(apps, sim_url=sim_url)
                pulled = groups_sync(apps["work"])
                self.stdout.write(f"    客户群 customer groups: {groups} new, {pulled} synced")
                self._engagement(workspace)
            finally:
                settings.SIYU_WECHAT_BASE_URL, settings.SIYU_PUBLIC_URL = previous
                child.terminate()
                child.wait(timeout=10)
            self._print_access(url, passwords, api_secret, serving=False,
                               sim_url=f"http://127.0.0.1:{options['sim_port']}")
            return
        self._serve(workspace, options, url, passwords, api_secret)

    def _wechat_setup(self, workspace: Workspace, *, sim_url: str, public_url: str) -> dict[str, WeChatApp]:
        """Accounts in the simulator and in Siyu, the brand's codes (once), and what Siyu holds handed back."""
        self.stdout.write(f"==> 微信模拟器 registering the brand's WeChat accounts at {sim_url}")
        # this process calls WeChat too (codes, menus, payment intents): the simulator, like the children
        settings.SIYU_WECHAT_BASE_URL, settings.SIYU_PUBLIC_URL = sim_url, public_url
        apps = wechat_register(workspace, sim_url=sim_url, public_url=public_url)
        restored = wechat_restore(apps, sim_url=sim_url)
        created = wechat_codes(workspace, apps, public_url=public_url)
        self.stdout.write(f"    渠道二维码 QR codes: {created['qrcodes']} new, {restored['qrcodes']} restored; "
                          f"「联系我」 contact codes: {created['contact_ways']} new, {restored['contact_ways']} restored")
        return apps

    def _engagement(self, workspace: Workspace) -> None:
        """The operations layer (``_demo_engagement``): orders from the simulated purchases, RFM, segments,
        journeys, service bot, membership; then the due work once. One line per area."""
        self.stdout.write("==> 运营体系 operations layer (orders, RFM, segments, journeys, service, membership)")
        demo_engagement(workspace)
        for line in demo_engagement_summary(workspace):
            self.stdout.write(f"    {line}")

    def _print_access(self, url: str, passwords: dict[str, str], api_secret: str, *, serving: bool,
                      sim_url: str = "", driving: float = 0) -> None:
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
            f"  H5 商城 Store:       {url}shop/{DEMO_SLUG}/",
        ]
        if sim_url:
            lines.append(f"  微信模拟器 WeChat simulator: {sim_url}/_sim/consumers" + (
                f"   ({driving:g} consumer actions/min)" if serving and driving else
                "" if serving else "   (runs with `siyu demo`)"))
        lines += [
            f"  数据目录 Data dir:   {settings.DATA_DIR}",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _serve(self, workspace: Workspace, options: dict, url: str, passwords: dict[str, str],
               api_secret: str) -> None:
        call_command("collectstatic", interactive=False, verbosity=0)
        python = sys.executable
        port, public_url = options["port"], url.rstrip("/")
        children: list[subprocess.Popen] = []

        def stop(*_):
            raise KeyboardInterrupt

        # also SIGINT explicitly: a shell starting us in the background would have it ignored
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            # The WeChat simulator first: Siyu's children are pointed at it.
            sim_child, sim_url = simulator_start(port=options["sim_port"], siyu_url=public_url)
            children.append(sim_child)
            apps = self._wechat_setup(workspace, sim_url=sim_url, public_url=public_url)
            self._engagement(workspace)
            env = {**os.environ, "SIYU_WECHAT_BASE_URL": sim_url, "SIYU_PUBLIC_URL": public_url}
            children += [
                subprocess.Popen([python, "-m", "siyu.cli", "run_huey"], env=env),  # noqa: S603
                subprocess.Popen([python, "-m", "gunicorn", "siyu.wsgi:application",  # noqa: S603
                                  "--bind", f"127.0.0.1:{port}", "--workers", "3", "--access-logfile", "-"], env=env),
            ]
            if not _wait_for(url, seconds=180, alive=lambda: all(child.poll() is None for child in children)):
                raise RuntimeError("the console did not start")
            groups = wechat_groups(apps, sim_url=sim_url)  # Siyu hears of new groups by callback: it is up now
            if groups:
                self.stdout.write(f"    客户群 customer groups: {groups} new")
            linked = demo_communities(workspace, wait_seconds=20 if groups else 0)
            if linked:
                self.stdout.write(f"    社群 communities: {linked} WeCom groups linked")
            if options["drive"] > 0:
                # a seed per run (how many people the 公众号 has met so far): a second run brings new people
                seed = DEMO_SEED + Identity.objects.filter(workspace=workspace, kind="openid",
                                                           namespace=apps["official"].appid).count()
                sim_call(sim_url, "POST", "/consumers/start", {"per_minute": options["drive"], "seed": seed})
            self._print_access(url, passwords, api_secret, serving=True, sim_url=sim_url, driving=options["drive"])
            self.stdout.write("后台任务、控制台与微信模拟器已启动,按 Ctrl-C 停止 / "
                              "worker, console and WeChat simulator running, Ctrl-C to stop")
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("a child process exited; stopping the demo")
        except KeyboardInterrupt:
            self.stdout.write("\n正在停止 stopping…")
        except (RuntimeError, SiyuError) as error:
            raise CommandError(f"demo: {error}") from None
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
