"""Console pages for products, inventory and the storefront: who may see and edit, bad input refused with
nothing changed, images served back."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from siyu.commerce.catalog.models import CatalogImage, Category, Product, Sku, StockMovement, StorePage
from tests.commerce.catalog_fixtures import make_category, make_product

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 40
PAGES = ["/commerce/products/", "/commerce/products/new/", "/commerce/inventory/", "/commerce/storefront/"]


def product_post(**overrides):
    data = {"action": "save", "title": "羊绒衫", "subtitle": "", "category_id": "", "sort": "0", "tags": "新品",
            "description_html": "<p>软</p>", "spec_options": "颜色: 红, 蓝", "sku_count": "2",
            "sku-0-specs": json.dumps({"颜色": "红"}, ensure_ascii=False), "sku-0-price": "199.00",
            "sku-0-list_price": "299", "sku-0-stock": "5", "sku-0-threshold": "1", "sku-0-active": "on",
            "sku-0-mp-gold": "180.5",
            "sku-1-specs": json.dumps({"颜色": "蓝"}, ensure_ascii=False), "sku-1-price": "199",
            "sku-1-stock": "0", "sku-1-active": "on"}
    data.update(overrides)
    return data


def state():
    return (list(Product.objects.values_list("id", "title", "status")),
            list(Sku.objects.values_list("id", "price_fen", "stock_on_hand", "member_prices")),
            StockMovement.objects.count(), list(StorePage.objects.values_list("blocks", flat=True)),
            CatalogImage.objects.count(), Category.objects.count())


@pytest.mark.parametrize("role, status", [("admin", 200), ("operator", 200), ("analyst", 200), ("service", 403)])
def test_who_may_open_the_pages(clients, workspace, role, status):
    make_product(workspace)
    for url in PAGES:
        assert clients[role].get(url).status_code == status, url


def test_anonymous_is_sent_to_login():
    response = Client().get("/commerce/products/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_operator_creates_product_with_sku_matrix(clients, workspace):
    response = clients["operator"].post("/commerce/products/new/", product_post())
    assert response.status_code == 302
    product = Product.objects.get(workspace=workspace, title="羊绒衫")
    red = product.skus.get(specs={"颜色": "红"})
    assert (red.price_fen, red.list_price_fen, red.stock_on_hand, red.member_prices) == (19900, 29900, 5,
                                                                                       {"gold": 18050})
    page = clients["analyst"].get(f"/commerce/products/{product.pk}/")
    assert page.status_code == 200 and "羊绒衫" in page.content.decode()


def test_matrix_action_renders_rows_without_saving(clients):
    response = clients["admin"].post("/commerce/products/new/", {"action": "matrix", "title": "T",
                                                                   "spec_options": "颜色: 红, 蓝\n尺码: S, M, L"})
    assert response.status_code == 200
    assert response.content.decode().count('name="sku-') > 0 and 'value="6"' in response.content.decode()
    assert not Product.objects.exists()


@pytest.mark.parametrize("overrides, code", [
    ({"sku-0-price": "-1"}, "invalid_price"),
    ({"sku-0-price": "abc"}, "invalid_price"),
    ({"sku-0-price": "1.999"}, "invalid_price"),
    ({"sku-0-stock": "-3"}, "invalid_number"),
    ({"sku-0-mp-gold": "-5"}, "invalid_price"),
    ({"sku-1-specs": json.dumps({"颜色": "红"}, ensure_ascii=False)}, "duplicate_specs"),
    ({"sku-0-specs": "{not json"}, "invalid_specs"),
    ({"title": ""}, "invalid_title"),
])
def test_bad_product_form_shows_clear_error_and_saves_nothing(clients, workspace, overrides, code):
    before = state()
    response = clients["operator"].post("/commerce/products/new/", product_post(**overrides))
    assert response.status_code in (400, 409)
    assert f'data-error-code="{code}"' in response.content.decode()
    assert state() == before


def test_foreign_workspace_ids_are_404_and_change_nothing(clients, other_workspace):
    foreign_product, (foreign_sku, _) = make_product(other_workspace)
    foreign_category = make_category(other_workspace)
    before = state()
    admin = clients["admin"]
    assert admin.get(f"/commerce/products/{foreign_product.pk}/").status_code == 404
    assert admin.post(f"/commerce/products/{foreign_product.pk}/", product_post()).status_code == 404
    assert admin.post(f"/commerce/products/{foreign_product.pk}/shelve/", {"on_shelf": "0"}).status_code == 404
    assert admin.post("/commerce/inventory/adjust/", {"sku_id": foreign_sku.pk, "delta": "5",
                                                      "reason": "x"}).status_code == 404
    assert admin.post("/commerce/products/new/", product_post(category_id=str(foreign_category.pk))).status_code \
        == 404
    assert admin.post("/commerce/storefront/save/", {"action": "add_zone", "zone": "new",
                                                     "product_ids": [foreign_product.pk]}).status_code == 404
    assert state() == before


@pytest.mark.parametrize("role", ["analyst", "service"])
def test_read_only_roles_cannot_change_anything(clients, workspace, role):
    product, (sku, _) = make_product(workspace)
    before = state()
    client = clients[role]
    attempts = [
        ("/commerce/products/new/", product_post()),
        (f"/commerce/products/{product.pk}/", product_post()),
        (f"/commerce/products/{product.pk}/shelve/", {"on_shelf": "0"}),
        (f"/commerce/products/{product.pk}/images/", {"images": SimpleUploadedFile("a.png", PNG)}),
        ("/commerce/categories/new/", {"name": "新分类"}),
        ("/commerce/inventory/adjust/", {"sku_id": sku.pk, "delta": "5", "reason": "入库"}),
        ("/commerce/storefront/save/", {"action": "json", "blocks_json": "[]"}),
    ]
    for url, data in attempts:
        assert client.post(url, data).status_code == 403, url
    assert state() == before


def test_inventory_adjust_and_history(clients, workspace):
    _product, (sku, _) = make_product(workspace, stock=5, low_stock_threshold=3)
    admin = clients["admin"]
    response = admin.post("/commerce/inventory/adjust/", {"sku_id": sku.pk, "delta": "-3", "reason": "盘亏"})
    assert response.status_code == 302
    sku.refresh_from_db()
    assert sku.stock_on_hand == 2
    page = admin.get(f"/commerce/inventory/?sku={sku.pk}").content.decode()
    assert "盘亏" in page and "库存不足" in page
    low = admin.get("/commerce/inventory/?low=1").content.decode()
    assert f"?sku={sku.pk}" in low
    for data, code in (({"delta": "abc", "reason": "x"}, 400), ({"delta": "0", "reason": "x"}, 400),
                       ({"delta": "5", "reason": ""}, 400), ({"delta": "-10", "reason": "x"}, 409)):
        assert admin.post("/commerce/inventory/adjust/", {"sku_id": sku.pk, **data}).status_code == code
    sku.refresh_from_db()
    assert sku.stock_on_hand == 2


def test_images_upload_serve_and_reject_non_images(clients, workspace):
    product, _ = make_product(workspace)
    admin = clients["admin"]
    response = admin.post(f"/commerce/products/{product.pk}/images/", {"images": SimpleUploadedFile("a.png", PNG)})
    assert response.status_code == 302
    image = CatalogImage.objects.get(product=product)
    served = Client().get(f"/commerce/catalog/images/{image.pk}/{image.digest[:16]}/")  # anonymous shopper
    assert served.status_code == 200 and served["Content-Type"] == "image/png" and served.content == PNG
    assert Client().get(f"/commerce/catalog/images/{image.pk}/{'0' * 16}/").status_code == 404
    bad = admin.post(f"/commerce/products/{product.pk}/images/",
                     {"images": SimpleUploadedFile("x.png", b"<script>alert(1)</script>")})
    assert bad.status_code == 415
    assert CatalogImage.objects.count() == 1


def test_storefront_editor_builds_and_previews_the_home_page(clients, workspace):
    category = make_category(workspace, name="上新")
    product, _ = make_product(workspace, title="新品外套")
    admin = clients["admin"]
    assert admin.post("/commerce/storefront/save/", {"action": "add_banner", "link": "/shop/",
                                                     "images": SimpleUploadedFile("b.png", PNG)}).status_code == 302
    assert admin.post("/commerce/storefront/save/", {"action": "add_grid",
                                                     "category_ids": [category.pk]}).status_code == 302
    assert admin.post("/commerce/storefront/save/", {"action": "add_zone", "zone": "new",
                                                     "product_ids": [product.pk]}).status_code == 302
    assert admin.post("/commerce/storefront/save/", {"action": "up", "index": "2"}).status_code == 302
    blocks = StorePage.objects.get(workspace=workspace).blocks
    assert [b["type"] for b in blocks] == ["banner", "zone", "category_grid"]
    page = admin.get("/commerce/storefront/").content.decode()
    assert "data-preview" in page and "新品外套" in page and "/commerce/catalog/images/" in page
    before = state()
    for data, status in (({"action": "add_banner", "link": "javascript:alert(1)",
                           "images": SimpleUploadedFile("b.png", PNG)}, 400),
                         ({"action": "add_zone", "zone": "vip", "product_ids": [product.pk]}, 400),
                         ({"action": "json", "blocks_json": "{"}, 400),
                         ({"action": "delete", "index": "9"}, 404),
                         ({"action": "explode"}, 400)):
        assert admin.post("/commerce/storefront/save/", data).status_code == status, data
    assert state() == before


def test_shelve_and_list_filters(clients, workspace):
    product, _ = make_product(workspace, title="围巾", on_shelf=False)
    make_product(workspace, title="手套")
    admin = clients["operator"]
    assert admin.post(f"/commerce/products/{product.pk}/shelve/", {"on_shelf": "1"}).status_code == 302
    product.refresh_from_db()
    assert product.on_shelf
    listing = admin.get("/commerce/products/?q=围巾").content.decode()
    assert "围巾" in listing and "手套" not in listing
    off = admin.get("/commerce/products/?status=off_shelf").content.decode()
    assert "围巾" not in off
    assert admin.post("/commerce/categories/new/", {"name": "配饰", "icon": "🧣"}).status_code == 302
    assert admin.post("/commerce/categories/new/", {"name": "配饰"}).status_code == 409
    assert Category.objects.filter(workspace=workspace, name="配饰").count() == 1
