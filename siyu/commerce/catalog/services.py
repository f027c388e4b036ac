"""Catalog writes: categories, products with their SKU matrix, images, shelf status, and the storefront page.

Stock is never written here: a new SKU's opening stock is counted in through ``inventory.stock_adjust`` so
the movement ledger stays complete.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.db import IntegrityError, transaction

from siyu.commerce.catalog.inventory import stock_adjust
from siyu.commerce.catalog.models import CatalogImage, Category, Product, ProductStatus, Sku, StorePage
from siyu.commerce.catalog.sanitize import sanitize_html
from siyu.commerce.catalog.specs import specs_canonical, specs_validate
from siyu.commerce.catalog.storefront_blocks import blocks_validate
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.loyalty.tier_rules import TIER_CODES

MAX_FEN = 100_000_000_00  # 1 亿元: a typo guard, not a business rule
MAX_STOCK = 10_000_000
MAX_IMAGE_BYTES = 3 * 1024 * 1024
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
                    b"GIF89a": "image/gif"}
MAX_TAGS = 20
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def _int(value: Any, *, field_zh: str, field_en: str, minimum: int = 0, maximum: int = MAX_FEN) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if _INTEGER.fullmatch(value) else None
    if not isinstance(value, int) or not minimum <= value <= maximum:
        raise SiyuError("invalid_number", f"{field_zh}必须是 {minimum}–{maximum} 之间的整数",
                        f"{field_en} must be a whole number between {minimum} and {maximum}",
                        details={"field": field_en})
    return value


def _category_of(workspace, category_id) -> Category | None:
    if category_id in (None, ""):
        return None
    category = Category.objects.filter(workspace=workspace, pk=category_id).first() \
        if str(category_id).isdigit() else None
    if category is None:
        raise SiyuError("category_not_found", "分类不存在", "Category not found", status=404)
    return category


def category_create(*, workspace, name: str, parent_id=None, icon: str = "", sort: int = 0, actor=None) -> Category:
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise SiyuError("invalid_name", "分类名称不能为空且不超过 64 字", "A category needs a name (≤64 characters)")
    if len(icon or "") > 64:
        raise SiyuError("invalid_icon", "图标过长", "The icon is too long")
    parent = _category_of(workspace, parent_id)
    if parent is not None and parent.parent_id is not None and parent.parent.parent_id is not None:
        raise SiyuError("category_too_deep", "分类最多三级", "Categories go at most three levels deep")
    sort = _int(sort, field_zh="排序", field_en="Sort", minimum=-100000, maximum=100000)
    try:
        with transaction.atomic():
            category = Category.objects.create(workspace=workspace, parent=parent, name=name, icon=icon or "",
                                               sort=sort)
    except IntegrityError as error:
        raise SiyuError("category_exists", "同级已有同名分类", "A category with this name already exists here",
                        status=409) from error
    audit_record(workspace=workspace, actor=actor, action="catalog.category_create", target_type="category",
                 target_id=category.pk, name=name)
    return category


def _clean_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.replace("，", ",").split(",")
    if not isinstance(tags, list | tuple):
        raise SiyuError("invalid_tags", "标签格式错误", "Tags must be a list")
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise SiyuError("invalid_tags", "标签必须是文字", "Tags must be text")
        tag = tag.strip().replace("|", "")
        if tag and tag not in clean:
            if len(tag) > 20:
                raise SiyuError("invalid_tags", "单个标签不超过 20 字", "A tag is at most 20 characters")
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        raise SiyuError("invalid_tags", f"标签最多 {MAX_TAGS} 个", f"At most {MAX_TAGS} tags")
    return clean


def _clean_member_prices(value) -> dict[str, int]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise SiyuError("invalid_member_prices", "会员价格式错误", "Member prices must map tier → fen")
    clean = {}
    for code, fen in value.items():
        if code not in TIER_CODES:
            raise SiyuError("invalid_member_prices", "会员等级不存在", "Unknown member tier", details={"tier": code})
        if fen in (None, ""):
            continue
        clean[code] = _int(fen, field_zh="会员价", field_en="Member price")
    return clean


def _clean_sku(row: dict) -> dict[str, Any]:
    specs = specs_validate(row.get("specs") or {})
    code = (row.get("code") or "").strip()
    if len(code) > 64:
        raise SiyuError("invalid_code", "SKU 编码不超过 64 字", "A SKU code is at most 64 characters")
    return {
        "specs": specs,
        "specs_key": specs_canonical(specs),
        "code": code,
        "price_fen": _int(row.get("price_fen"), field_zh="售价", field_en="Price"),
        "list_price_fen": _int(row.get("list_price_fen") or 0, field_zh="划线价", field_en="List price"),
        "member_prices": _clean_member_prices(row.get("member_prices")),
        "low_stock_threshold": _int(row.get("low_stock_threshold") or 0, field_zh="低库存阈值",
                                    field_en="Low-stock threshold", maximum=MAX_STOCK),
        "active": bool(row.get("active", True)),
        "initial_stock": _int(row.get("initial_stock") or 0, field_zh="初始库存", field_en="Opening stock",
                              maximum=MAX_STOCK),
    }


def product_save(*, workspace, product: Product | None = None, title: str, subtitle: str = "",
                 category_id=None, description_html: str = "", sort: int = 0, tags=(), skus: list[dict],
                 actor=None) -> Product:
    """Create (``product`` None) or update a product and its SKU matrix in one transaction.

    ``skus``: one dict per spec combination with specs, price_fen, list_price_fen, member_prices, code,
    low_stock_threshold, active and, for new SKUs, initial_stock. Existing SKUs (matched by specs) keep
    their stock; SKUs no longer listed are deactivated (orders keep pointing at them), never deleted.
    """
    if product is not None and product.workspace_id != workspace.pk:
        raise SiyuError("not_found", "商品不存在", "Product not found", status=404)
    title = (title or "").strip()
    if not title or len(title) > 120:
        raise SiyuError("invalid_title", "商品标题不能为空且不超过 120 字", "A product needs a title (≤120 characters)")
    subtitle = (subtitle or "").strip()
    if len(subtitle) > 200:
        raise SiyuError("invalid_subtitle", "副标题不超过 200 字", "The subtitle is at most 200 characters")
    category = _category_of(workspace, category_id)
    sort = _int(sort, field_zh="排序", field_en="Sort", minimum=-100000, maximum=100000)
    tags = _clean_tags(tags)
    if not isinstance(skus, list) or not skus:
        raise SiyuError("skus_required", "至少需要一个 SKU", "A product needs at least one SKU")
    rows = [_clean_sku(row) for row in skus]
    keys = [row["specs_key"] for row in rows]
    if len(set(keys)) != len(keys):
        raise SiyuError("duplicate_specs", "有重复的规格组合", "Two SKUs have the same specs", status=409)
    if len({len(row["specs"]) for row in rows}) > 1 or len({tuple(sorted(row["specs"])) for row in rows}) > 1:
        raise SiyuError("inconsistent_specs", "各 SKU 的规格名必须一致", "Every SKU must use the same spec names")
    codes = [row["code"] for row in rows if row["code"]]
    if len(set(codes)) != len(codes):
        raise SiyuError("duplicate_sku_code", "SKU 编码重复", "Two SKUs have the same code", status=409)
    fields = {"title": title, "subtitle": subtitle, "category": category, "sort": sort, "tags": tags,
              "tags_text": "".join(f"|{tag}" for tag in tags) + ("|" if tags else ""),
              "description_html": sanitize_html(description_html), "spec_names": list(rows[0]["specs"])}
    try:
        with transaction.atomic():
            if product is None:
                product = Product.objects.create(workspace=workspace, status=ProductStatus.OFF_SHELF, **fields)
            else:
                product = Product.objects.select_for_update().get(pk=product.pk)
                for key, value in fields.items():
                    setattr(product, key, value)
                product.save()
            existing = {sku.specs_key: sku for sku in Sku.objects.select_for_update().filter(product=product)}
            opening: list[tuple[Sku, int]] = []
            for index, row in enumerate(rows):
                initial = row.pop("initial_stock")
                sku = existing.pop(row["specs_key"], None)
                if sku is None:
                    sku = Sku.objects.create(workspace=workspace, product=product, sort=index, **row)
                    if initial:
                        opening.append((sku, initial))
                else:
                    for key, value in row.items():
                        setattr(sku, key, value)
                    sku.sort = index
                    sku.save()
            for sku in existing.values():
                if sku.active:
                    sku.active = False
                    sku.save(update_fields=["active"])
            for sku, initial in opening:
                stock_adjust(sku=sku, delta=initial, reason="新建 SKU 初始库存", actor=actor)
            audit_record(workspace=workspace, actor=actor, action="catalog.product_save", target_type="product",
                         target_id=product.pk, title=title, skus=len(rows))
    except IntegrityError as error:
        raise SiyuError("sku_code_taken", "SKU 编码已被其他商品使用", "A SKU code is already used by another product",
                        status=409) from error
    return product


def product_shelve(*, product: Product, on_shelf: bool, actor=None) -> Product:
    """Put a product on or off the shelf; on the shelf needs at least one active SKU."""
    with transaction.atomic():
        product = Product.objects.select_for_update().get(pk=product.pk)
        if on_shelf and not product.skus.filter(active=True).exists():
            raise SiyuError("no_active_sku", "没有启用的 SKU，不能上架", "A product needs an active SKU to go on sale",
                            status=409)
        product.status = ProductStatus.ON_SHELF if on_shelf else ProductStatus.OFF_SHELF
        product.save(update_fields=["status", "updated_at"])
        audit_record(workspace=product.workspace, actor=actor, action="catalog.product_shelve",
                     target_type="product", target_id=product.pk, status=product.status)
    return product


def image_add(*, workspace, content: bytes, product: Product | None = None, actor=None) -> CatalogImage:
    """Store a PNG/JPEG/GIF picture (checked by its bytes, not its name) for a product or the storefront."""
    if product is not None and product.workspace_id != workspace.pk:
        raise SiyuError("not_found", "商品不存在", "Product not found", status=404)
    if not content:
        raise SiyuError("image_empty", "请选择图片", "Choose a picture")
    if len(content) > MAX_IMAGE_BYTES:
        raise SiyuError("image_too_large", "图片不能超过 3 MB", "A picture may be at most 3 MB", status=413)
    content_type = next((kind for magic, kind in IMAGE_SIGNATURES.items() if content.startswith(magic)), None)
    if content_type is None:
        raise SiyuError("image_type", "只支持 PNG、JPEG、GIF 图片", "Only PNG, JPEG and GIF pictures are accepted",
                        status=415)
    with transaction.atomic():
        position = (product.images.count() if product is not None else 0)
        image = CatalogImage.objects.create(workspace=workspace, product=product, content=content,
                                            content_type=content_type, digest=hashlib.sha256(content).hexdigest(),
                                            size=len(content), position=position)
        audit_record(workspace=workspace, actor=actor, action="catalog.image_add", target_type="image",
                     target_id=image.pk, product_id=product.pk if product else None)
    return image


def image_delete(*, image: CatalogImage, actor=None) -> None:
    with transaction.atomic():
        audit_record(workspace=image.workspace, actor=actor, action="catalog.image_delete", target_type="image",
                     target_id=image.pk)
        image.delete()


def storefront_save(*, workspace, blocks, title: str = "", actor=None) -> StorePage:
    """Validate the blocks and that every image, category and product they name belongs to ``workspace``."""
    clean, refs = blocks_validate(blocks)
    if not isinstance(title, str) or len(title) > 64:
        raise SiyuError("invalid_title", "页面标题不超过 64 字", "The page title is at most 64 characters")
    checks = ((CatalogImage, refs.image_ids, "图片", "image"), (Category, refs.category_ids, "分类", "category"),
              (Product, refs.product_ids, "商品", "product"))
    for model, ids, what_zh, what_en in checks:
        found = set(model.objects.filter(workspace=workspace, pk__in=ids).values_list("pk", flat=True))
        missing = sorted(ids - found)
        if missing:
            raise SiyuError("block_reference_not_found", f"模块引用的{what_zh}不存在：{missing[0]}",
                            f"A block names a {what_en} that does not exist: {missing[0]}", status=404,
                            details={what_en: missing})
    with transaction.atomic():
        page, _created = StorePage.objects.select_for_update().get_or_create(workspace=workspace)
        page.blocks = clean
        page.title = title.strip()
        page.updated_by = actor if getattr(actor, "pk", None) else None
        page.save()
        audit_record(workspace=workspace, actor=actor, action="catalog.storefront_save", target_type="store_page",
                     target_id=page.pk, blocks=len(clean))
    return page
