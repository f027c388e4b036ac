"""Catalog reads: what the H5 store renders (home page, product lists and search, product detail) and
what the console lists (products, stock, low stock, movements).

Consumer-facing selectors return plain dicts (ids, text, fen amounts, image URLs) and only on-shelf
products with active SKUs; prices here are list prices of the catalog — the pricing engine in
``siyu.commerce.promotions`` decides what a given customer pays.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Min, Prefetch, Q, QuerySet, Sum
from django.urls import reverse

from siyu.commerce.catalog.models import (
    CatalogImage,
    Category,
    Product,
    ProductStatus,
    Sku,
    StockMovement,
    StorePage,
)
from siyu.commerce.catalog.storefront_blocks import ZONES
from siyu.core.errors import SiyuError

PAGE_SIZE = 20
MAX_QUERY = 50


def image_url(image: CatalogImage) -> str:
    return reverse("console:commerce_image", args=[image.pk, image.digest[:16]])


def _first_images() -> Prefetch:
    return Prefetch("images", queryset=CatalogImage.objects.only("id", "digest", "product_id", "position")
                    .order_by("position", "id"), to_attr="image_list")


def _consumer_products(workspace) -> QuerySet[Product]:
    active = Q(skus__active=True)
    return (Product.objects.filter(workspace=workspace, status=ProductStatus.ON_SHELF)
            .annotate(active_skus=Count("skus", filter=active),
                      min_price_fen=Min("skus__price_fen", filter=active),
                      min_list_price_fen=Min("skus__list_price_fen", filter=active),
                      available=Sum(F("skus__stock_on_hand") - F("skus__stock_reserved"), filter=active))
            .filter(active_skus__gt=0))


def _card(product: Product) -> dict[str, Any]:
    images = getattr(product, "image_list", None)
    if images is None:
        images = list(product.images.only("id", "digest").order_by("position", "id")[:1])
    return {
        "id": product.pk,
        "title": product.title,
        "subtitle": product.subtitle,
        "category_id": product.category_id,
        "tags": list(product.tags or []),
        "image_url": image_url(images[0]) if images else "",
        "price_fen": int(product.min_price_fen or 0),
        "list_price_fen": int(product.min_list_price_fen or 0),
        "sold_out": int(product.available or 0) <= 0,
    }


def category_descendant_ids(*, workspace, category_id: int) -> list[int]:
    ids, frontier = [category_id], [category_id]
    while frontier:
        frontier = list(Category.objects.filter(workspace=workspace, parent_id__in=frontier)
                        .values_list("pk", flat=True))
        ids.extend(frontier)
    return ids


def products_in(*, workspace, category_id: int | None = None, query: str = "", page: int = 1,
                page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """On-shelf products of a category (and its sub-categories) and/or matching ``query`` in title,
    subtitle or a tag; newest-sorted within the operator's sort order. ``page`` starts at 1."""
    products = _consumer_products(workspace)
    if category_id is not None:
        if not Category.objects.filter(workspace=workspace, pk=category_id).exists():
            raise SiyuError("category_not_found", "分类不存在", "Category not found", status=404)
        products = products.filter(category_id__in=category_descendant_ids(workspace=workspace,
                                                                             category_id=category_id))
    query = (query or "").strip()[:MAX_QUERY]
    if query:
        products = products.filter(Q(title__icontains=query) | Q(subtitle__icontains=query)
                                   | Q(tags_text__icontains=query))
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise SiyuError("invalid_page", "页码无效", "Invalid page number")
    total = products.count()
    start = (page - 1) * page_size
    rows = products.order_by("sort", "-id").prefetch_related(_first_images())[start:start + page_size]
    return {"items": [_card(product) for product in rows], "page": page, "page_size": page_size,
            "total": total, "has_next": start + page_size < total, "query": query, "category_id": category_id}


def product_with_skus(*, workspace, product_id: int, include_off_shelf: bool = False) -> tuple[Product, list[Sku]]:
    """The product (category and images read along) and its active SKUs in display order, each SKU's
    ``product`` already set (three queries). Off-shelf products are ``not_found`` for consumers
    (``include_off_shelf`` is for the console's preview)."""
    product = (Product.objects.filter(workspace=workspace, pk=product_id).select_related("category")
               .prefetch_related(_first_images()).first()) if isinstance(product_id, int) else None
    if product is None or (not product.on_shelf and not include_off_shelf):
        raise SiyuError("product_not_found", "商品不存在或已下架", "Product not found or not for sale", status=404)
    skus = list(Sku.objects.filter(product=product, active=True).order_by("sort", "id"))
    if not skus and not include_off_shelf:
        raise SiyuError("product_not_found", "商品不存在或已下架", "Product not found or not for sale", status=404)
    for sku in skus:
        sku.product = product
    return product, skus


def product_detail(*, workspace, product_id: int, include_off_shelf: bool = False) -> dict[str, Any]:
    """Everything a product page shows. Off-shelf products are ``not_found`` for consumers
    (``include_off_shelf`` is for the console's preview)."""
    product, skus = product_with_skus(workspace=workspace, product_id=product_id, include_off_shelf=include_off_shelf)
    return detail_of(product, skus)


def detail_of(product: Product, skus: list[Sku]) -> dict[str, Any]:
    """``product_detail``'s dict for rows already read by ``product_with_skus``."""
    spec_names, spec_values = spec_options_of(product, skus)
    return {
        "id": product.pk,
        "title": product.title,
        "subtitle": product.subtitle,
        "on_shelf": product.on_shelf,
        "category": ({"id": product.category.pk, "name": product.category.name} if product.category else None),
        "tags": list(product.tags or []),
        "images": [image_url(image) for image in product.image_list],
        "description_html": product.description_html,
        "specs": [{"name": name, "values": spec_values[name]} for name in spec_names],
        "skus": [{"id": sku.pk, "specs": sku.specs, "code": sku.code, "price_fen": sku.price_fen,
                  "list_price_fen": sku.list_price_fen, "member_prices": dict(sku.member_prices or {}),
                  "available": max(sku.available, 0), "low_stock_threshold": sku.low_stock_threshold}
                 for sku in skus],
        "price_fen": min((sku.price_fen for sku in skus), default=0),
        "sold_out": all(sku.available <= 0 for sku in skus),
    }


def spec_options_of(product: Product, skus: list[Sku]) -> tuple[list[str], dict[str, list[str]]]:
    """Spec names (in the product's order) and each name's values (in SKU order) across ``skus``."""
    spec_names: list[str] = [name for name in (product.spec_names or []) if isinstance(name, str)]
    spec_values: dict[str, list[str]] = {name: [] for name in spec_names}
    for sku in skus:
        for name, value in (sku.specs or {}).items():
            if name not in spec_values:
                spec_names.append(name)
                spec_values[name] = []
            if value not in spec_values[name]:
                spec_values[name].append(value)
    return [name for name in spec_names if spec_values[name]], spec_values


def storefront_home(*, workspace) -> dict[str, Any]:
    """The decorated home page with every block resolved: slides with image URLs, categories with
    names and icons, zones with product cards (missing or off-shelf items are skipped, never an error)."""
    page = StorePage.objects.filter(workspace=workspace).first()
    blocks = list(page.blocks) if page else []
    image_ids = {s["image_id"] for b in blocks if b.get("type") == "banner" for s in b.get("slides", [])}
    category_ids = {c for b in blocks if b.get("type") == "category_grid" for c in b.get("category_ids", [])}
    product_ids = {p for b in blocks if b.get("type") == "zone" for p in b.get("product_ids", [])}
    images = {image.pk: image for image in CatalogImage.objects.filter(workspace=workspace, pk__in=image_ids)
              .only("id", "digest")} if image_ids else {}
    categories = ({c.pk: c for c in Category.objects.filter(workspace=workspace, pk__in=category_ids)}
                  if category_ids else {})
    cards = {product.pk: _card(product) for product in _consumer_products(workspace)
             .filter(pk__in=product_ids).prefetch_related(_first_images())} if product_ids else {}
    resolved: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "banner":
            slides = [{"image_url": image_url(images[s["image_id"]]), "link": s.get("link", "")}
                      for s in block.get("slides", []) if s.get("image_id") in images]
            if slides:
                resolved.append({"type": "banner", "slides": slides})
        elif kind == "category_grid":
            items = [{"id": c, "name": categories[c].name, "icon": categories[c].icon}
                     for c in block.get("category_ids", []) if c in categories]
            if items:
                resolved.append({"type": "category_grid", "title": block.get("title", ""), "categories": items})
        elif kind == "zone":
            zone = block.get("zone")
            item = {"type": "zone", "zone": zone, "title": block.get("title") or ZONES.get(zone, ("", ""))[0],
                    "products": [cards[p] for p in block.get("product_ids", []) if p in cards]}
            if block.get("flash_sale_id"):
                item["flash_sale_id"] = block["flash_sale_id"]
            if item["products"] or item.get("flash_sale_id"):
                resolved.append(item)
    return {"title": (page.title if page else "") or workspace.name, "blocks": resolved}


# --- console ---------------------------------------------------------------------------------------------

def products_for_console(*, workspace, query: str = "", category_id: int | None = None, status: str = "",
                         ) -> QuerySet[Product]:
    products = (Product.objects.filter(workspace=workspace).select_related("category")
                .annotate(sku_count=Count("skus", filter=Q(skus__active=True)),
                          min_price_fen=Min("skus__price_fen", filter=Q(skus__active=True)),
                          available=Sum(F("skus__stock_on_hand") - F("skus__stock_reserved"),
                                        filter=Q(skus__active=True))))
    query = (query or "").strip()[:MAX_QUERY]
    if query:
        products = products.filter(Q(title__icontains=query) | Q(subtitle__icontains=query)
                                   | Q(tags_text__icontains=query)
                                   | Q(pk__in=Sku.objects.filter(workspace=workspace, code__iexact=query)
                                       .values("product_id")))
    if category_id is not None:
        products = products.filter(category_id__in=category_descendant_ids(workspace=workspace,
                                                                           category_id=category_id))
    if status in ProductStatus.values:
        products = products.filter(status=status)
    return products.order_by("sort", "-id")


def skus_for_console(*, workspace, query: str = "", low_only: bool = False) -> QuerySet[Sku]:
    skus = (Sku.objects.filter(workspace=workspace).select_related("product")
            .annotate(available_units=F("stock_on_hand") - F("stock_reserved")))
    query = (query or "").strip()[:MAX_QUERY]
    if query:
        skus = skus.filter(Q(product__title__icontains=query) | Q(code__icontains=query))
    if low_only:
        skus = skus.filter(active=True, available_units__lte=F("low_stock_threshold"))
    return skus.order_by("product__sort", "-product_id", "sort", "id")


def low_stock_skus(*, workspace) -> QuerySet[Sku]:
    """Active SKUs whose available stock (on hand − reserved) is at or below their threshold."""
    return skus_for_console(workspace=workspace, low_only=True)


def movements_of(*, workspace, sku_id: int, limit: int = 200) -> list[StockMovement]:
    return list(StockMovement.objects.filter(workspace=workspace, sku_id=sku_id).select_related("actor")
                .order_by("-id")[:limit])


def category_tree(*, workspace) -> list[tuple[Category, int]]:
    """Categories in display order with their depth (0 = root), for indented lists and selects."""
    categories = list(Category.objects.filter(workspace=workspace).order_by("sort", "id"))
    children: dict[int | None, list[Category]] = {}
    for category in categories:
        children.setdefault(category.parent_id, []).append(category)
    ordered: list[tuple[Category, int]] = []

    def walk(parent_id, depth):
        for category in children.get(parent_id, []):
            ordered.append((category, depth))
            walk(category.pk, depth + 1)

    walk(None, 0)
    return ordered
