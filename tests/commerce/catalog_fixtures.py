"""Factories other areas' tests can use: a product on shelf with SKUs and stock.

    from tests.commerce.catalog_fixtures import make_product
    product, skus = make_product(workspace, stock=10)          # two SKUs (红/M, 蓝/M), 10 units each
"""

from __future__ import annotations

import itertools

from siyu.commerce.catalog.inventory import stock_adjust
from siyu.commerce.catalog.models import Category, Product, ProductStatus, Sku
from siyu.commerce.catalog.specs import specs_canonical

_counter = itertools.count(1)


def make_category(workspace, *, name: str | None = None, parent=None) -> Category:
    return Category.objects.create(workspace=workspace, name=name or f"分类{next(_counter)}", parent=parent)


def make_product(workspace, *, title: str | None = None, stock: int = 10, price_fen: int = 9900,
                 specs: list[dict] | None = None, on_shelf: bool = True, category=None,
                 member_prices: dict | None = None, low_stock_threshold: int = 0,
                 tags: list[str] | None = None) -> tuple[Product, list[Sku]]:
    """A product with one SKU per entry of ``specs`` (default 红/M and 蓝/M), each with ``stock`` units
    counted in through the inventory ledger (so ledger totals hold)."""
    specs = specs if specs is not None else [{"颜色": "红", "尺码": "M"}, {"颜色": "蓝", "尺码": "M"}]
    product = Product.objects.create(
        workspace=workspace, title=title or f"测试商品{next(_counter)}", category=category,
        status=ProductStatus.ON_SHELF if on_shelf else ProductStatus.OFF_SHELF, tags=tags or [],
        tags_text="".join(f"|{tag}" for tag in tags or []) + ("|" if tags else ""),
        spec_names=list(specs[0]) if specs else [])
    skus = []
    for index, spec in enumerate(specs):
        sku = Sku.objects.create(workspace=workspace, product=product, specs=spec, specs_key=specs_canonical(spec),
                                 price_fen=price_fen, list_price_fen=price_fen + 2000, sort=index,
                                 member_prices=member_prices or {}, low_stock_threshold=low_stock_threshold)
        if stock:
            stock_adjust(sku=sku, delta=stock, reason="测试入库")
        sku.refresh_from_db()
        skus.append(sku)
    return product, skus
