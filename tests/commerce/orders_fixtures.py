"""Shared set-up for the order tests: a shop with a WeChat Pay merchant (in the simulator and in Siyu),
products, buyers who can pay, and helpers to place and pay orders.

    from tests.commerce.orders_fixtures import shop, wechat_sim  # noqa: F401  (fixtures)
    buyer = make_buyer(shop, "u1")
    order = place(shop, buyer, [(sku.pk, 2)])
    pay(shop, buyer, order)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from siyu.commerce.orders import services
from siyu.commerce.orders.models import Order
from siyu.customers.models import Customer, Identity
from siyu.wechat_sim import pay as sim_pay
from siyu.wechat_sim.state import SimUser
from tests.commerce.promotions_fixtures import make_customer
from tests.wechat.conftest import wechat_sim  # noqa: F401 - a fixture the order tests use
from tests.wechat.test_pay_support import APPID, Shop, shop_open

ADDRESS = {"name": "张三", "phone": "13800138000", "province": "上海市", "city": "上海市", "district": "徐汇区",
           "detail": "漕溪北路 88 号 1201 室"}


@pytest.fixture
def shop(wechat_sim, workspace, settings):  # noqa: F811
    return shop_open(wechat_sim, workspace, settings)


@pytest.fixture
def immediate_tasks():
    """Queued tasks (the customer timeline, loyalty earning) run in-process right when they are queued."""
    from huey.contrib.djhuey import HUEY

    previous = HUEY.immediate
    HUEY.immediate = True
    yield HUEY
    HUEY.immediate = previous


@dataclass
class Buyer:
    customer: Customer
    user: SimUser
    openid: str


def make_buyer(shop: Shop, key: str = "buyer") -> Buyer:
    """A customer known by the openid the simulated WeChat user has under the shop's AppID."""
    with shop.sim.lock:
        user, openid = shop.payer(key)
    customer = make_customer(shop.workspace)
    Identity.objects.create(workspace=shop.workspace, customer=customer, kind="openid", namespace=APPID,
                            value=openid, first_seen_at=customer.first_seen_at, last_seen_at=customer.first_seen_at)
    return Buyer(customer, user, openid)


def make_buyers(shop: Shop, prefix: str, count: int) -> list[Buyer]:
    """Many buyers at once (bulk inserts), as ``make_buyer`` makes one."""
    with shop.sim.lock:
        payers = [shop.payer(f"{prefix}-{n}") for n in range(count)]
    at = timezone.now()
    customers = Customer.objects.bulk_create([Customer(workspace=shop.workspace, first_seen_at=at, last_seen_at=at)
                                              for _ in range(count)])
    Identity.objects.bulk_create([Identity(workspace=shop.workspace, customer=customer, kind="openid",
                                           namespace=APPID, value=openid, first_seen_at=at, last_seen_at=at)
                                  for customer, (_, openid) in zip(customers, payers, strict=True)])
    return [Buyer(customer, user, openid) for customer, (user, openid) in zip(customers, payers, strict=True)]


def place(shop: Shop, buyer: Buyer, lines, **options) -> Order:
    options.setdefault("address", ADDRESS)
    return services.checkout(workspace=shop.workspace, customer=buyer.customer, lines=lines, **options)


def pay(shop: Shop, buyer: Buyer, order: Order):
    """Prepay and confirm in the simulated WeChat (the notification is delivered to Siyu)."""
    params = services.order_prepay(order=order, openid=buyer.openid, appid=APPID)
    return sim_pay.pay(shop.sim, buyer.user, params["prepay_id"])
