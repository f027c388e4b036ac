"""Catalog services and selectors: products with SKU matrices, bad input refused with nothing changed,
consumer search and detail (on-shelf only), images, and the storefront page."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from siyu.commerce.catalog import selectors, services
from siyu.commerce.catalog.models import CatalogImage, Product, Sku, StockMovement, StorePage
from siyu.commerce.catalog.specs import spec_matrix, spec_options_parse, specs_canonical
from siyu.core.errors import SiyuError
from tests.commerce.catalog_fixtures import make_category, make_product

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def sku_rows(*specs, price=9900, stock=0, **extra):
    return [{"specs": spec, "price_fen": price, "initial_stock": stock, **extra} for spec in specs]


def snapshot():
    return (list(Product.objects.values_list("id", "title", "status")),
            list(Sku.objects.values_list("id", "price_fen", "stock_on_hand", "active", "specs_key")),
            StockMovement.objects.count())


def test_spec_matrix_from_options():
    options = spec_options_parse("颜色：红，蓝\n尺码: S, M\n\n")
    assert options == [("颜色", ["红", "蓝"]), ("尺码", ["S", "M"])]
    assert spec_matrix(options) == [{"颜色": "红", "尺码": "S"}, {"颜色": "红", "尺码": "M"},
                                    {"颜色": "蓝", "尺码": "S"}, {"颜色": "蓝", "尺码": "M"}]
    assert spec_matrix([]) == [{}]
    assert specs_canonical({"尺码": "M", "颜色": "红"}) == specs_canonical({"颜色": "红", "尺码": "M"})
    for text, code in (("颜色 红", "invalid_spec_options"), ("颜色: 红, 红", "duplicate_specs"),
                       ("颜色: 红\n颜色: 蓝", "duplicate_specs")):
        with pytest.raises(SiyuError) as caught:
            spec_options_parse(text)
        assert caught.value.code == code


def test_product_save_creates_skus_with_opening_stock_through_the_ledger(workspace):
    category = make_category(workspace, name="女装")
    product = services.product_save(
        workspace=workspace, title="羊毛大衣", subtitle="秋冬新款", category_id=category.pk,
        description_html='<p onclick="x()">暖</p><script>bad()</script>', tags="新品, 爆款 ,新品",
        skus=sku_rows({"颜色": "红", "尺码": "M"}, {"颜色": "蓝", "尺码": "M"}, stock=7,
                      member_prices={"gold": 8900, "silver": ""}, list_price_fen=12900))
    assert product.status == "off_shelf" and product.tags == ["新品", "爆款"]
    assert product.description_html == "<p>暖</p>"
    skus = list(product.skus.order_by("sort"))
    assert [s.specs for s in skus] == [{"颜色": "红", "尺码": "M"}, {"颜色": "蓝", "尺码": "M"}]
    assert all(s.stock_on_hand == 7 and s.member_prices == {"gold": 8900} for s in skus)
    assert StockMovement.objects.filter(sku__product=product, reason="adjust").count() == 2


def test_product_update_keeps_stock_and_deactivates_removed_combinations(workspace):
    product = services.product_save(workspace=workspace, title="T恤", skus=sku_rows({"尺码": "S"}, {"尺码": "M"},
                                                                                   stock=3))
    small = product.skus.get(specs_key=specs_canonical({"尺码": "S"}))
    services.product_save(workspace=workspace, product=product, title="T恤（新）",
                          skus=sku_rows({"尺码": "S"}, {"尺码": "L"}, price=5900, stock=9))
    small.refresh_from_db()
    assert (small.price_fen, small.stock_on_hand, small.active) == (5900, 3, True)  # stock untouched on update
    assert product.skus.get(specs_key=specs_canonical({"尺码": "M"})).active is False
    assert product.skus.get(specs_key=specs_canonical({"尺码": "L"})).stock_on_hand == 9


@pytest.mark.parametrize("change, code", [
    ({"skus": sku_rows({"颜色": "红"}, price=-1)}, "invalid_number"),
    ({"skus": sku_rows({"颜色": "红"}, stock=-5)}, "invalid_number"),
    ({"skus": sku_rows({"颜色": "红"}, price="9.9")}, "invalid_number"),
    ({"skus": sku_rows({"颜色": "红"}, {"颜色": "红"})}, "duplicate_specs"),
    ({"skus": sku_rows({"颜色": "红"}, {"尺码": "M"})}, "inconsistent_specs"),
    ({"skus": sku_rows({"颜色": "红"}, member_prices={"platinum": 100})}, "invalid_member_prices"),
    ({"skus": sku_rows({"颜色": "红"}, member_prices={"gold": -100})}, "invalid_number"),
    ({"skus": sku_rows({"颜色": ""})}, "invalid_specs"),
    ({"skus": []}, "skus_required"),
    ({"title": " "}, "invalid_title"),
    ({"category_id": 999999}, "category_not_found"),
])
def test_bad_product_input_changes_nothing(workspace, change, code):
    product, _skus = make_product(workspace, stock=2)
    before = snapshot()
    arguments = {"workspace": workspace, "product": product, "title": "新标题", "skus": sku_rows({"颜色": "红"})}
    arguments.update(change)
    with pytest.raises(SiyuError) as caught:
        services.product_save(**arguments)
    assert caught.value.code == code
    assert caught.value.message_zh and caught.value.message_en
    assert snapshot() == before


def test_foreign_workspace_ids_are_refused(workspace, other_workspace):
    foreign_category = make_category(other_workspace)
    foreign_product, _skus = make_product(other_workspace)
    before = snapshot()
    with pytest.raises(SiyuError) as caught:
        services.product_save(workspace=workspace, title="x", category_id=foreign_category.pk,
                              skus=sku_rows({"颜色": "红"}))
    assert caught.value.code == "category_not_found"
    with pytest.raises(SiyuError) as caught:
        services.product_save(workspace=workspace, product=foreign_product, title="x", skus=sku_rows({"a": "b"}))
    assert caught.value.status == 404
    with pytest.raises(SiyuError):
        services.image_add(workspace=workspace, product=foreign_product, content=PNG)
    with pytest.raises(SiyuError) as caught:
        selectors.product_detail(workspace=workspace, product_id=foreign_product.pk)
    assert caught.value.code == "product_not_found"
    assert snapshot() == before and not CatalogImage.objects.exists()


def test_sku_codes_unique_per_workspace(workspace, other_workspace):
    services.product_save(workspace=workspace, title="甲", skus=sku_rows({"a": "1"}, code="SKU-1"))
    services.product_save(workspace=other_workspace, title="甲", skus=sku_rows({"a": "1"}, code="SKU-1"))
    with pytest.raises(SiyuError) as caught:
        services.product_save(workspace=workspace, title="乙", skus=sku_rows({"a": "1"}, code="SKU-1"))
    assert caught.value.code == "sku_code_taken"
    assert not Product.objects.filter(title="乙").exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        product = Product.objects.get(workspace=workspace, title="甲")
        Sku.objects.create(workspace=workspace, product=product, specs={"a": "1"}, specs_key=specs_canonical(
            {"a": "1"}), price_fen=1)


def test_shelving_needs_an_active_sku(workspace):
    product = services.product_save(workspace=workspace, title="无规格", skus=sku_rows({}))
    Sku.objects.filter(product=product).update(active=False)
    with pytest.raises(SiyuError) as caught:
        services.product_shelve(product=product, on_shelf=True)
    assert caught.value.code == "no_active_sku"
    Sku.objects.filter(product=product).update(active=True)
    assert services.product_shelve(product=product, on_shelf=True).status == "on_shelf"


def test_images_checked_by_content(workspace):
    product, _skus = make_product(workspace)
    image = services.image_add(workspace=workspace, product=product, content=PNG)
    assert image.content_type == "image/png" and image.size == len(PNG)
    for content, code in ((b"<svg onload=alert(1)>", "image_type"), (b"", "image_empty"),
                          (b"\xff\xd8\xff" + b"0" * (3 * 1024 * 1024), "image_too_large")):
        with pytest.raises(SiyuError) as caught:
            services.image_add(workspace=workspace, product=product, content=content)
        assert caught.value.code == code
    assert CatalogImage.objects.count() == 1


def test_consumer_search_and_listing(workspace):
    clothes = make_category(workspace, name="服装")
    coats = make_category(workspace, name="大衣", parent=clothes)
    make_product(workspace, title="羊毛大衣", category=coats, tags=["秋冬"])
    shirt, _ = make_product(workspace, title="Cotton Shirt", category=clothes, stock=0)
    Product.objects.filter(pk=shirt.pk).update(subtitle="纯棉透气")
    hidden, _ = make_product(workspace, title="羊毛围巾", on_shelf=False)
    make_product(workspace, title="无库存但上架", specs=[{"颜色": "黑"}], stock=0)

    def titles(**kwargs):
        return {item["title"] for item in selectors.products_in(workspace=workspace, **kwargs)["items"]}

    assert titles(query="羊毛") == {"羊毛大衣"}  # off-shelf scarf never shown
    assert titles(query="纯棉") == {"Cotton Shirt"}  # subtitle
    assert titles(query="cotton") == {"Cotton Shirt"}  # case-insensitive
    assert titles(query="秋") == {"羊毛大衣"}  # tag substring
    assert titles(category_id=clothes.pk) == {"羊毛大衣", "Cotton Shirt"}  # includes sub-categories
    assert titles(category_id=coats.pk) == {"羊毛大衣"}
    listing = selectors.products_in(workspace=workspace, query="Shirt")
    assert listing["items"][0]["sold_out"] is True and listing["total"] == 1
    assert selectors.products_in(workspace=workspace, page=1, page_size=2)["has_next"] is True
    with pytest.raises(SiyuError):
        selectors.products_in(workspace=workspace, page=0)
    with pytest.raises(SiyuError):
        selectors.products_in(workspace=workspace, category_id=999999)
    with pytest.raises(SiyuError) as caught:
        selectors.product_detail(workspace=workspace, product_id=hidden.pk)
    assert caught.value.status == 404
    assert selectors.product_detail(workspace=workspace, product_id=hidden.pk, include_off_shelf=True)["title"] \
        == "羊毛围巾"


def test_product_detail_for_the_store(workspace):
    product, (red, blue) = make_product(workspace, stock=3, member_prices={"gold": 8000})
    Sku.objects.filter(pk=blue.pk).update(active=False)
    services.image_add(workspace=workspace, product=product, content=PNG)
    detail = selectors.product_detail(workspace=workspace, product_id=product.pk)
    assert [sku["id"] for sku in detail["skus"]] == [red.pk]
    assert detail["skus"][0]["member_prices"] == {"gold": 8000} and detail["skus"][0]["available"] == 3
    assert detail["specs"] == [{"name": "颜色", "values": ["红"]}, {"name": "尺码", "values": ["M"]}]
    assert detail["images"][0].startswith("/commerce/catalog/images/")


def test_storefront_save_validates_blocks_and_references(workspace, other_workspace):
    category = make_category(workspace, name="热卖")
    product, _ = make_product(workspace, title="爆款")
    off, _ = make_product(workspace, title="下架品", on_shelf=False)
    foreign, _ = make_product(other_workspace)
    banner = services.image_add(workspace=workspace, content=PNG)
    blocks = [{"type": "banner", "slides": [{"image_id": banner.pk, "link": "/shop/"}]},
              {"type": "category_grid", "title": "分类", "category_ids": [category.pk]},
              {"type": "zone", "zone": "new", "product_ids": [product.pk, off.pk]},
              {"type": "zone", "zone": "seckill", "flash_sale_id": 3}]
    services.storefront_save(workspace=workspace, blocks=blocks, title="品牌A商城")
    bad_cases = [
        ([{"type": "zone", "zone": "new", "product_ids": [foreign.pk]}], "block_reference_not_found"),
        ([{"type": "banner", "slides": [{"image_id": banner.pk, "link": "javascript:alert(1)"}]}], "invalid_block"),
        ([{"type": "zone", "zone": "vip", "product_ids": [product.pk]}], "invalid_block"),
        ([{"type": "zone", "zone": "new", "flash_sale_id": 1}], "invalid_block"),
        ([{"type": "category_grid", "category_ids": []}], "invalid_block"),
        ([{"type": "marquee"}], "invalid_block"),
        ({"type": "banner"}, "invalid_blocks"),
    ]
    for bad, code in bad_cases:
        with pytest.raises(SiyuError) as caught:
            services.storefront_save(workspace=workspace, blocks=bad)
        assert caught.value.code == code, bad
    assert StorePage.objects.get(workspace=workspace).blocks[0]["type"] == "banner"  # unchanged

    home = selectors.storefront_home(workspace=workspace)
    assert home["title"] == "品牌A商城"
    assert [block["type"] for block in home["blocks"]] == ["banner", "category_grid", "zone", "zone"]
    assert home["blocks"][0]["slides"][0]["image_url"].startswith("/commerce/catalog/images/")
    assert home["blocks"][1]["categories"] == [{"id": category.pk, "name": "热卖", "icon": ""}]
    assert [card["title"] for card in home["blocks"][2]["products"]] == ["爆款"]  # off-shelf skipped
    assert home["blocks"][3]["flash_sale_id"] == 3
    assert selectors.storefront_home(workspace=other_workspace) == {"title": "品牌B", "blocks": []}
