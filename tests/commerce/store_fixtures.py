"""Set-up for the store tests: a brand with a 公众号 (H5 OAuth), a 小程序 and a WeChat Pay merchant, in the
simulator and in Siyu; products; shoppers with an H5 cookie session or a mini-program Bearer token.

    from tests.commerce.store_fixtures import store, wechat_sim, wechat_app_factory  # noqa: F401 (fixtures)
    h5 = h5_shopper(store, "u1")           # h5.client carries the signed H5 cookie
    mini = mini_shopper(store, "u2")       # mini.headers carries Authorization: Bearer wxs_…
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from siyu.customers.models import Customer, Identity
from siyu.wechat.consumer.sessions import H5_COOKIE, H5_COOKIE_SALT, consumer_session_create
from siyu.wechat.models import WeChatApp
from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim.state import SimUser
from tests.commerce.catalog_fixtures import make_category, make_product
from tests.commerce.promotions_fixtures import make_coupon_template, make_customer
from tests.wechat.conftest import wechat_app_factory, wechat_sim
from tests.wechat.test_pay_support import APPID, MCHID, Shop, shop_open

MINI_APPID = "wxmini0000store01"
ADDRESS = {"name": "林晓雨", "phone": "13812345678", "province": "上海市", "city": "上海市", "district": "静安区",
           "detail": "南京西路 1266 号 2 楼"}


@dataclass
class Store:
    shop: Shop
    official: WeChatApp
    miniapp: WeChatApp
    products: dict = field(default_factory=dict)

    @property
    def sim(self):
        return self.shop.sim

    @property
    def workspace(self):
        return self.shop.workspace


@pytest.fixture
def store(wechat_sim, wechat_app_factory, workspace, settings):
    """The brand's 公众号 has the merchant's AppID (H5 JSAPI pay), the 小程序 is bound to the merchant too."""
    shop = shop_open(wechat_sim, workspace, settings)
    # The store's simulated cashier asks the simulator over HTTP, so the payment notification would be sent
    # from the simulator's thread, outside this test's database transaction. It fails there (as a notification
    # Siyu missed) and ``notifications_settle`` delivers it from the test's thread: WeChat's retry.
    in_process, test_thread = wechat_sim.transport, threading.current_thread()

    def transport(method, url, body, headers):
        if threading.current_thread() is not test_thread:
            return 0, b""
        return in_process(method, url, body, headers)

    wechat_sim.transport = transport
    official = wechat_app_factory("official", appid=APPID, name="花间集")
    miniapp = wechat_app_factory("miniapp", appid=MINI_APPID, name="花间集小程序")
    with wechat_sim.lock:
        wechat_sim.state.apps[MCHID].extra["appids"].append(MINI_APPID)
    category = make_category(workspace, name="护肤")
    cream, cream_skus = make_product(workspace, title="玫瑰面霜", price_fen=12900, category=category, stock=10,
                                     specs=[{"规格": "50ml"}, {"规格": "100ml"}])
    serum, serum_skus = make_product(workspace, title="精华液", price_fen=8900, category=category, stock=5,
                                     specs=[{"颜色": "红", "尺码": "M"}, {"颜色": "蓝", "尺码": "M"}])
    return Store(shop=shop, official=official, miniapp=miniapp,
                 products={"cream": (cream, cream_skus), "serum": (serum, serum_skus), "category": category})


@dataclass
class Shopper:
    customer: Customer
    user: SimUser
    openid: str
    client: Client
    headers: dict


def _identity(workspace, customer: Customer, appid: str, openid: str) -> Identity:
    now = timezone.now()
    return Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=appid,
                                   value=openid, first_seen_at=now, last_seen_at=now)


def h5_shopper(store: Store, key: str = "h5-buyer") -> Shopper:
    """A consumer who came through the 公众号's H5 OAuth (the session opened directly; test_store_pages
    also walks the real OAuth redirects)."""
    with store.sim.lock:
        user = store.sim.state.user(key)
        openid = store.sim.state.openid(user, store.official.appid)
    customer = make_customer(store.workspace)
    identity = _identity(store.workspace, customer, store.official.appid, openid)
    _session, token = consumer_session_create(app=store.official, identity=identity, kind="h5")
    client = Client(enforce_csrf_checks=True)
    client.cookies[H5_COOKIE] = signing.get_cookie_signer(salt=H5_COOKIE + H5_COOKIE_SALT).sign(token)
    return Shopper(customer, user, openid, client, {})


def mini_shopper(store: Store, key: str = "mini-buyer") -> Shopper:
    with store.sim.lock:
        user = store.sim.state.user(key)
        openid = store.sim.state.openid(user, store.miniapp.appid)
    customer = make_customer(store.workspace)
    identity = _identity(store.workspace, customer, store.miniapp.appid, openid)
    _session, token = consumer_session_create(app=store.miniapp, identity=identity, kind="miniapp")
    return Shopper(customer, user, openid, Client(), {"HTTP_AUTHORIZATION": f"Bearer {token}"})


def notifications_settle(store: Store) -> list[int]:
    """Deliver the payment notifications the simulator could not send from its own thread (see ``store``)."""
    return sim_pay.notifications_flush(store.sim)


def csrf_post(client: Client, store: Store, path: str, data: dict | None = None, **extra):
    """POST a form the way the page does: a store page first (it sets the CSRF cookie), the token sent back."""
    if "csrftoken" not in client.cookies:
        client.get(f"/shop/{store.workspace.slug}/cart/")
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": client.cookies["csrftoken"].value}, **extra)


__all__ = ["ADDRESS", "MINI_APPID", "Shopper", "Store", "csrf_post", "h5_shopper", "make_coupon_template",
           "mini_shopper", "notifications_settle", "store", "wechat_app_factory", "wechat_sim"]
