"""``siyu demo --no-serve``: sets up the demo brand, logins, API key and its WeChat accounts and codes (against
a short-lived simulator process), and is idempotent: a second run creates nothing new."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from siyu.channels.models import Channel
from siyu.channels.services import channels_install_defaults
from siyu.commerce.catalog.models import CatalogImage, Category, Product, ProductStatus, Sku, StorePage
from siyu.commerce.orders.models import Order, OrderLine
from siyu.commerce.promotions.models import CouponTemplate, FlashSale, FullReductionRule, LimitedTimeDiscount
from siyu.core.models import ApiKey, AuditLog, Membership, Workspace
from siyu.core.services import api_key_authenticate
from siyu.customers.models import Customer, Event
from siyu.engagement.communities.models import Community
from siyu.engagement.rfm.models import CustomerScore
from siyu.engagement.segments.models import Segment
from siyu.simulation.models import SimulationRun
from siyu.wechat.models import WeChatApp
from siyu.wechat.official.models import AutoReplyRule, ChannelQrCode, OfficialSettings
from siyu.wechat.work.models import ContactWay, Staff


def engagement_counts(workspace) -> dict[str, int]:
    from django.db.models import Sum

    from siyu.engagement.journeys.models import Journey, JourneyRun
    from siyu.engagement.segments.models import SegmentMember
    from siyu.engagement.service.models import FaqEntry, KeywordRule
    from siyu.loyalty.models import ExchangeItem, GrowthTask, LotteryPrize

    return {
        "orders": Order.objects.filter(workspace=workspace).count(),
        "order_lines": OrderLine.objects.filter(order__workspace=workspace).count(),
        "paid_fen": Order.objects.filter(workspace=workspace).aggregate(total=Sum("paid_fen"))["total"],
        "scores": CustomerScore.objects.filter(workspace=workspace).count(),
        "segments": Segment.objects.filter(workspace=workspace).count(),
        "segment_members": SegmentMember.objects.filter(segment__workspace=workspace).count(),
        "journeys_active": Journey.objects.filter(workspace=workspace, status="active").count(),
        "journey_runs": JourneyRun.objects.filter(journey__workspace=workspace).count(),
        "faq": FaqEntry.objects.filter(workspace=workspace).count(),
        "service_rules": KeywordRule.objects.filter(workspace=workspace).count(),
        "growth_tasks": GrowthTask.objects.filter(workspace=workspace).count(),
        "mall": ExchangeItem.objects.filter(workspace=workspace).count(),
        "prizes": LotteryPrize.objects.filter(workspace=workspace).count(),
        "communities": Community.objects.filter(workspace=workspace).count(),
    }


@pytest.mark.django_db(transaction=True)
def test_demo_sets_up_everything_once(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    out = io.StringIO()
    call_command("demo", no_serve=True, customers=300, stdout=out)
    text = out.getvalue()
    passwords = json.loads((tmp_path / "demo_logins.json").read_text())
    secret = (tmp_path / "demo_api_key").read_text().strip()
    assert f"admin     / {passwords['admin']}" in text
    assert secret in text and "http://127.0.0.1:" in text
    assert (tmp_path / "demo_logins.json").stat().st_mode & 0o077 == 0

    workspace = api_key_authenticate(secret)
    assert workspace is not None and workspace.slug == "demo"
    assert Customer.objects.filter(workspace=workspace).count() == 300
    assert Event.objects.filter(workspace=workspace).count() > 300
    assert Channel.objects.filter(workspace=workspace, code="xiaohongshu", monthly_target=8000,
                                  monthly_cost_fen__gt=0).exists()
    roles = dict(Membership.objects.filter(workspace=workspace).values_list("user__username", "role"))
    assert roles == {"admin": "admin", "operator": "operator", "service": "service", "analyst": "analyst"}
    for username, password in passwords.items():
        assert authenticate(username=username, password=password) is not None
    assert Customer.objects.filter(workspace=workspace, owner__username="service").exists()

    # WeChat: four accounts (credentials kept 0600 under the data dir), codes per seed channel, staff
    assert "WeChat simulator: http://127.0.0.1:8766/_sim/consumers" in text
    assert (tmp_path / "demo_wechat.json").stat().st_mode & 0o077 == 0
    credentials = json.loads((tmp_path / "demo_wechat.json").read_text())
    apps = {app.kind: app for app in WeChatApp.objects.filter(workspace=workspace)}
    assert {kind: app.appid for kind, app in apps.items()} == {kind: credentials[kind]["appid"]
                                                               for kind in ("official", "miniapp", "work", "pay")}
    assert apps["official"].secrets()["message_mode"] == "safe"
    assert apps["pay"].secrets()["platform_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert set(ChannelQrCode.objects.filter(app=apps["official"]).values_list("channel", flat=True)) == {
        "xiaohongshu", "douyin", "official_account", "store", "referral"}
    assert all(code.ticket for code in ChannelQrCode.objects.all())
    ways = ContactWay.objects.filter(app=apps["work"], active=True)
    assert {way.channel for way in ways} == {"xiaohongshu", "store", "douyin"}
    assert all(way.config_id and way.welcome_text and way.tags.count() == 1 and way.members.count() == 2
               for way in ways)
    assert Staff.objects.filter(app=apps["work"]).count() == 4
    official = OfficialSettings.objects.get(app=apps["official"])
    assert official.welcome_reply and official.menu_published_at and official.unionid_access
    assert AutoReplyRule.objects.filter(app=apps["official"]).count() == 3

    # the shop: categories, products on shelf with SKUs by spec, member prices, pictures, promotions, storefront
    assert "H5 商城 Store:       http://127.0.0.1:8000/shop/demo/" in text
    assert set(Category.objects.filter(workspace=workspace).values_list("name", flat=True)) == {
        "护肤", "彩妆", "香氛", "身体护理", "礼盒"}
    products = Product.objects.filter(workspace=workspace)
    assert 10 <= products.count() <= 15 and not products.exclude(status=ProductStatus.ON_SHELF).exists()
    skus = Sku.objects.filter(workspace=workspace)
    assert all(sku.price_fen < sku.list_price_fen and sku.member_prices["diamond"] < sku.member_prices["gold"]
               <= sku.price_fen and sku.stock_on_hand > 0 for sku in skus)
    assert {name for sku in skus for name in sku.specs} == {"色号", "规格", "容量"}
    assert skus.filter(stock_on_hand__lt=10).count() >= 2  # a couple of low-stock SKUs
    assert all(product.images.exists() for product in products)
    assert CatalogImage.objects.get(digest=CatalogImage.objects.first().digest).content.startswith(b"\x89PNG")
    page = StorePage.objects.get(workspace=workspace)
    assert [block["type"] for block in page.blocks] == ["banner", "category_grid", "zone", "zone", "zone"]
    assert {block["zone"] for block in page.blocks if block["type"] == "zone"} == {"seckill", "new", "member"}
    assert set(CouponTemplate.objects.filter(workspace=workspace).values_list("kind", flat=True)) == {
        "threshold", "percent", "no_threshold", "newcomer"}
    assert (FullReductionRule.objects.filter(workspace=workspace).count(),
            LimitedTimeDiscount.objects.filter(workspace=workspace).count(),
            FlashSale.objects.filter(workspace=workspace).count()) == (1, 1, 1)

    # the operations layer: simulated purchases as real paid orders, RFM, segments, journeys, service, membership
    engagement = engagement_counts(workspace)
    paid_events = Event.objects.filter(workspace=workspace, type="order_paid").count()
    assert engagement["orders"] == paid_events > 0
    assert engagement["order_lines"] == engagement["orders"]
    assert engagement["paid_fen"] == sum(Event.objects.filter(workspace=workspace, type="order_paid")
                                         .values_list("properties__amount_fen", flat=True))
    buyers = set(Order.objects.filter(workspace=workspace).values_list("customer_id", flat=True))
    assert engagement["scores"] >= len(buyers) > 0
    assert set(CustomerScore.objects.filter(workspace=workspace, frequency__gt=0)
               .values_list("customer_id", flat=True)) == buyers
    assert CustomerScore.objects.exclude(rfm5="").exists() and CustomerScore.objects.exclude(rfm6="").exists()
    assert engagement["segments"] == 4 and engagement["segment_members"] > 0
    assert all(segment.refreshed_at for segment in Segment.objects.filter(workspace=workspace))
    assert engagement["journeys_active"] == 2 and engagement["journey_runs"] > 0
    assert engagement["faq"] >= 5 and engagement["service_rules"] == 2
    assert engagement["growth_tasks"] > 0 and engagement["mall"] == 3 and engagement["prizes"] == 4
    # communities without serving: the demo's WeCom groups pulled from the simulator and linked by type
    assert engagement["communities"] == 4
    assert set(Community.objects.filter(workspace=workspace).values_list("type", flat=True)) == {
        "vip", "exchange", "newcomer", "campaign"}
    assert "社群 communities: 4 linked WeCom groups" in text
    for area in ("订单 orders:", "RFM:", "分群 segments:", "旅程 journeys:", "智能客服 service bot:", "会员 membership:"):
        assert area in text

    counts = (Customer.objects.count(), Event.objects.count(), SimulationRun.objects.count(), ApiKey.objects.count(),
              WeChatApp.objects.count(), ChannelQrCode.objects.count(), ContactWay.objects.count(),
              Staff.objects.count(), AutoReplyRule.objects.count())
    shop_counts = (Category.objects.count(), Product.objects.count(), Sku.objects.count(),
                   CatalogImage.objects.count(), CouponTemplate.objects.count(), FullReductionRule.objects.count(),
                   LimitedTimeDiscount.objects.count(), FlashSale.objects.count(), StorePage.objects.count(),
                   sum(Sku.objects.values_list("stock_on_hand", flat=True)))
    audits = AuditLog.objects.filter(action__startswith="wechat_app").count()
    again = io.StringIO()
    call_command("demo", no_serve=True, customers=300, stdout=again)
    assert "跳过模拟" in again.getvalue() and "catalog exists, nothing created" in again.getvalue()
    assert (Category.objects.count(), Product.objects.count(), Sku.objects.count(),
            CatalogImage.objects.count(), CouponTemplate.objects.count(), FullReductionRule.objects.count(),
            LimitedTimeDiscount.objects.count(), FlashSale.objects.count(), StorePage.objects.count(),
            sum(Sku.objects.values_list("stock_on_hand", flat=True))) == shop_counts
    assert (Customer.objects.count(), Event.objects.count(), SimulationRun.objects.count(), ApiKey.objects.count(),
            WeChatApp.objects.count(), ChannelQrCode.objects.count(), ContactWay.objects.count(),
            Staff.objects.count(), AutoReplyRule.objects.count()) == counts
    assert engagement_counts(workspace) == engagement
    assert secret in again.getvalue() and passwords == json.loads((tmp_path / "demo_logins.json").read_text())
    assert credentials == json.loads((tmp_path / "demo_wechat.json").read_text())
    # a new simulator process: its codes were handed back, nothing created; only the new platform key saved
    assert "QR codes: 0 new, 5 restored" in again.getvalue() and "0 new, 3 restored" in again.getvalue()
    assert AuditLog.objects.filter(action__startswith="wechat_app").count() == audits + 1


@pytest.mark.django_db(transaction=True)
def test_demo_live_part_simulator_consumers_and_payments(tmp_path, settings, live_server):
    """What ``siyu demo`` does once serving, with Siyu as a live HTTP server instead of gunicorn: a simulator
    process gets the brand's accounts and codes, groups are created, the simulated consumers act over HTTP
    (QR scans, mini-program logins, 联系我 adds …), and some shop in the mini-program store: cart, checkout,
    WeChat Pay, a paid order in Siyu."""
    from siyu.commerce.orders.models import Order
    from siyu.console.management.commands._demo_commerce import demo_catalog
    from siyu.console.management.commands._demo_engagement import demo_communities
    from siyu.console.management.commands.demo import GROUPS, Command, simulator_start, wechat_groups
    from siyu.customers.models import Identity
    from siyu.engagement.communities.models import Community, CommunityRule, RhythmSlot
    from siyu.wechat.pay.models import PaymentIntent
    from siyu.wechat.work.models import CustomerGroup
    from siyu.wechat_sim.consumers import DEFAULT_WEIGHTS

    settings.DATA_DIR = tmp_path
    # demo code points this process at the simulator; the fixture puts both settings back afterwards
    settings.SIYU_WECHAT_BASE_URL, settings.SIYU_PUBLIC_URL = "", live_server.url
    workspace = Workspace.objects.create(slug="demo", name="花漾美妆 (演示)")  # the demo's data is not needed here
    channels_install_defaults(workspace=workspace)
    demo_catalog(workspace)
    child, sim_url = simulator_start(port=0, siyu_url=live_server.url)
    try:
        command = Command(stdout=io.StringIO())
        apps = command._wechat_setup(workspace, sim_url=sim_url, public_url=live_server.url)
        assert "QR codes: 5 new" in command.stdout._out.getvalue()
        assert wechat_groups(apps, sim_url=sim_url) == len(GROUPS) == CustomerGroup.objects.count() == 4
        assert wechat_groups(apps, sim_url=sim_url) == 0  # once
        # the groups linked as communities of their types, with a keyword rule and the weekly rhythm, once
        assert demo_communities(workspace) == 4 and demo_communities(workspace) == 0
        assert set(Community.objects.values_list("type", flat=True)) == {"vip", "exchange", "newcomer", "campaign"}
        assert all(CommunityRule.objects.filter(community=community, kind="keyword", active=True).exists()
                   for community in Community.objects.all())
        assert RhythmSlot.objects.filter(workspace=workspace, community_type="vip").exists()
        # The database is only read while the consumers are stopped (SQLite's shared in-memory test
        # database locks tables between the live server's thread and this one).
        crowd = consumers_until(sim_url, {"per_minute": 3000, "seed": 3}, "scan", "miniapp", "add_staff")
        assert Identity.objects.filter(namespace=apps["miniapp"].appid).exists()
        only_buying = {name: 0 for name in DEFAULT_WEIGHTS} | {"buy": 1}
        summary = consumers_until(sim_url, {"per_minute": 3000, "seed": 4, "weights": only_buying}, "buy")
        paid = Order.objects.filter(workspace=workspace, source="miniapp", payment_status="paid")
        assert paid.exists() and all(order.paid_fen == order.total_fen > 0 for order in paid)
        assert PaymentIntent.objects.filter(workspace=workspace, status="paid").count() >= paid.count()
    finally:
        child.terminate()
        child.wait(timeout=10)
    assert not crowd["failures"] and not summary["failures"], (crowd, summary)
    customers = {kind: set(Identity.objects.filter(namespace=apps[kind].appid).values_list("customer", flat=True))
                 for kind in ("official", "miniapp", "work")}
    assert all(customers.values())  # people reached the 公众号, the mini-program and WeCom staff
    for kind, event_type in (("official", "subscribe"), ("miniapp", "mini_program_login"), ("work", "wecom_add")):
        assert Event.objects.filter(type=event_type, identity__customer__in=customers[kind]).exists()
    assert Event.objects.filter(workspace=workspace, type="payment_succeeded").count() >= 1


def consumers_until(sim_url: str, start: dict, *actions: str, seconds: float = 90) -> dict:
    """Run the simulated consumers until each of ``actions`` succeeded once; returns their summary, stopped."""
    import time

    from siyu.console.management.commands.demo import sim_call

    sim_call(sim_url, "POST", "/consumers/start", start)
    deadline = time.monotonic() + seconds
    try:
        while True:
            now = sim_call(sim_url, "GET", "/consumers")
            if all(now["counts"].get(action, 0) > now["failures"].get(action, 0) for action in actions):
                break
            assert time.monotonic() < deadline, sim_call(sim_url, "GET", "/consumers")
            time.sleep(0.2)
    finally:
        summary = sim_call(sim_url, "POST", "/consumers/stop")
    return summary
