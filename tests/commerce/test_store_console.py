"""The console's H5 商城 page: the store's links and what is in shoppers' carts, for this workspace only."""

from __future__ import annotations

import pytest
from django.test import Client

from siyu.commerce.store.cart import cart_item_add
from siyu.core.services import membership_grant
from tests.commerce import store_fixtures
from tests.commerce.catalog_fixtures import make_product
from tests.commerce.promotions_fixtures import make_customer
from tests.commerce.store_fixtures import h5_shopper

pytestmark = pytest.mark.django_db
store, wechat_sim, wechat_app_factory = store_fixtures.store, store_fixtures.wechat_sim, store_fixtures.wechat_app_factory


def _login(workspace, role: str) -> Client:
    membership = membership_grant(workspace=workspace, username=f"{role}-store", password="pass-12345", role=role)
    client = Client()
    client.force_login(membership.user)
    return client


def test_store_page_shows_entry_links_and_cart_contents(store, other_workspace):
    shopper = h5_shopper(store)
    _cream, (small, _large) = store.products["cream"]
    cart_item_add(workspace=store.workspace, customer=shopper.customer, sku_id=small.pk, quantity=3)
    _foreign, (foreign_sku, _) = make_product(other_workspace, title="别家商品")
    cart_item_add(workspace=other_workspace, customer=make_customer(other_workspace), sku_id=foreign_sku.pk,
                  quantity=1)
    page = _login(store.workspace, "analyst").get("/commerce/store/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f"/wx/consumer/oauth/{store.official.appid}/start?scope=snsapi_base" in html
    assert f"/shop/{store.workspace.slug}/" in html and "/api/mini/v1/" in html
    assert "玫瑰面霜" in html and "别家商品" not in html


def test_store_page_needs_a_login(store):
    answer = Client().get("/commerce/store/")
    assert answer.status_code == 302 and "/login/" in answer["Location"]
