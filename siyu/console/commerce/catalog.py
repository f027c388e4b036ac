"""Console pages for 商品与库存: products (with the SKU matrix, images, shelf status), categories, inventory
(stock, low stock, adjustments, movement history) and storefront decoration with a mobile preview.

Admins and operators edit; analysts read; service staff (客服/导购) have no use for these pages: 403.
Product images are served publicly by ``commerce_image`` (the H5 store shows them to anonymous shoppers).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.commerce.catalog import inventory, selectors, services
from siyu.commerce.catalog.models import CatalogImage, Category, Product, ProductStatus, Sku, StorePage
from siyu.commerce.catalog.specs import spec_matrix, spec_options_parse, specs_canonical
from siyu.commerce.catalog.storefront_blocks import ZONES, blocks_validate
from siyu.console.access import MANAGER_ROLES, console_view, posted_object
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.loyalty.tier_rules import TIER_CODES, TIER_NAMES

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})
_YUAN = re.compile(r"-?[0-9]{1,10}(\.[0-9]{1,2})?")


def yuan_to_fen(raw: str, *, field_zh: str, field_en: str, required: bool = True) -> int | None:
    """"12.5" → 1250. Money is typed in 元 with at most two decimals; negative amounts are refused."""
    text = (raw or "").strip().replace("¥", "").replace(",", "")
    if not text:
        if required:
            raise SiyuError("invalid_price", f"请填写{field_zh}", f"{field_en} is required")
        return None
    if not _YUAN.fullmatch(text):
        raise SiyuError("invalid_price", f"{field_zh}须为金额（元，最多两位小数）",
                        f"{field_en} must be an amount in yuan with at most two decimals")
    try:
        fen = int(Decimal(text) * 100)
    except InvalidOperation as error:  # pragma: no cover - the pattern already guarantees a number
        raise SiyuError("invalid_price", f"{field_zh}无效", f"{field_en} is invalid") from error
    if fen < 0:
        raise SiyuError("invalid_price", f"{field_zh}不能为负数", f"{field_en} cannot be negative")
    return fen


def fen_to_yuan(fen: int | None) -> str:
    return "" if fen is None else f"{fen / 100:.2f}"


def _category_choices(workspace) -> list[tuple[Category, str]]:
    return [(category, "— " * depth) for category, depth in selectors.category_tree(workspace=workspace)]


def _int_param(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _workspace_object(model, workspace, pk, what_zh: str, what_en: str):
    row = model.objects.filter(workspace=workspace, pk=pk).first()
    if row is None:
        raise SiyuError("not_found", f"{what_zh}不存在", f"{what_en} not found", status=404)
    return row


# --- images ------------------------------------------------------------------------------------------------

@require_GET
def commerce_image(request, image_id: int, digest: str):
    """Public: product and banner pictures. The digest in the URL makes it immutable (cache for a year)."""
    image = CatalogImage.objects.filter(pk=image_id).only("content", "content_type", "digest").first()
    if image is None or not image.digest.startswith(digest) or len(digest) < 16:
        raise Http404
    response = HttpResponse(bytes(image.content), content_type=image.content_type)
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- products ----------------------------------------------------------------------------------------------

@console_view(roles=VIEW_ROLES)
def commerce_products(request):
    category_id = _int_param(request.GET.get("category"))
    status = request.GET.get("status", "")
    query = request.GET.get("q", "")
    products = selectors.products_for_console(workspace=request.workspace, query=query, category_id=category_id,
                                              status=status)
    rows = list(products[:200])
    for product in rows:
        product.min_price_yuan = fen_to_yuan(product.min_price_fen)
    return page(request, "console/commerce/catalog/products.html", {
        "products": rows, "total": products.count(), "query": query, "status": status,
        "category_id": category_id, "statuses": ProductStatus.choices,
        "categories": _category_choices(request.workspace),
        "can_manage": request.membership.role in MANAGER_ROLES,
    }, active="products")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_category_create(request):
    category = services.category_create(workspace=request.workspace, name=request.POST.get("name", ""),
                                        parent_id=request.POST.get("parent_id") or None,
                                        icon=request.POST.get("icon", "").strip(),
                                        sort=request.POST.get("sort") or 0, actor=request.user)
    messages.success(request, _("已创建分类：%(name)s") % {"name": category.name})
    return redirect("console:commerce_products")


def _sku_rows_from_post(post) -> list[dict]:
    """The SKU matrix as the form posted it (prices in 元), ready for services.product_save."""
    rows = []
    count = _int_param(post.get("sku_count")) or 0
    for index in range(min(count, 200)):
        prefix = f"sku-{index}-"
        try:
            specs = json.loads(post.get(prefix + "specs") or "{}")
        except json.JSONDecodeError as error:
            raise SiyuError("invalid_specs", "规格格式错误", "Specs are not valid") from error
        label = specs_canonical(specs) if isinstance(specs, dict) else "?"
        member_prices = {}
        for code in TIER_CODES:
            fen = yuan_to_fen(post.get(f"{prefix}mp-{code}", ""), field_zh=f"{label} 会员价",
                              field_en=f"{label} member price", required=False)
            if fen is not None:
                member_prices[code] = fen
        rows.append({
            "specs": specs,
            "code": post.get(prefix + "code", ""),
            "price_fen": yuan_to_fen(post.get(prefix + "price", ""), field_zh=f"{label} 售价",
                                     field_en=f"{label} price"),
            "list_price_fen": yuan_to_fen(post.get(prefix + "list_price", ""), field_zh=f"{label} 划线价",
                                          field_en=f"{label} list price", required=False) or 0,
            "member_prices": member_prices,
            "low_stock_threshold": post.get(prefix + "threshold") or 0,
            "initial_stock": post.get(prefix + "stock") or 0,
            "active": post.get(prefix + "active") == "on",
        })
    return rows


def _matrix_rows(product: Product | None, options_text: str, post=None) -> list[dict]:
    """Rows for the SKU table: one per spec combination, filled from the existing SKU or the posted form."""
    existing = {sku.specs_key: sku for sku in product.skus.all()} if product else {}
    posted = {}
    if post is not None:
        for index in range(min(_int_param(post.get("sku_count")) or 0, 200)):
            posted[post.get(f"sku-{index}-specs", "")] = index
    rows = []
    for specs in spec_matrix(spec_options_parse(options_text)):
        key = specs_canonical(specs)
        sku = existing.get(key)
        row = {"specs": specs, "specs_json": json.dumps(specs, ensure_ascii=False), "label": " / ".join(
            specs.values()) or _("默认"), "sku": sku, "is_new": sku is None}
        index = posted.get(row["specs_json"])
        if index is not None:
            prefix = f"sku-{index}-"
            row.update(code=post.get(prefix + "code", ""), price=post.get(prefix + "price", ""),
                       list_price=post.get(prefix + "list_price", ""), threshold=post.get(prefix + "threshold", ""),
                       stock=post.get(prefix + "stock", ""), active=post.get(prefix + "active") == "on",
                       member_prices={code: post.get(f"{prefix}mp-{code}", "") for code in TIER_CODES})
        elif sku is not None:
            row.update(code=sku.code, price=fen_to_yuan(sku.price_fen), list_price=fen_to_yuan(sku.list_price_fen),
                       threshold=sku.low_stock_threshold, stock="", active=sku.active,
                       member_prices={code: fen_to_yuan(sku.member_prices.get(code)) for code in TIER_CODES})
        else:
            row.update(code="", price="", list_price="", threshold=0, stock=0, active=True,
                       member_prices={code: "" for code in TIER_CODES})
        row["member_price_cells"] = [(code, TIER_NAMES[code][0], row["member_prices"][code]) for code in TIER_CODES]
        rows.append(row)
    return rows


def _options_text_of(product: Product | None) -> str:
    if product is None:
        return ""
    names, values = selectors.spec_options_of(product, list(product.skus.filter(active=True).order_by("sort", "id")))
    return "\n".join(f"{name}: {', '.join(values[name])}" for name in names)


def _product_form(request, product: Product | None):
    can_manage = request.membership.role in MANAGER_ROLES
    post = request.POST if request.method == "POST" else None
    form = {"title": product.title if product else "", "subtitle": product.subtitle if product else "",
            "category_id": product.category_id if product else None,
            "description_html": product.description_html if product else "", "sort": product.sort if product else 0,
            "tags": ", ".join(product.tags) if product else "", "spec_options": _options_text_of(product)}
    error = None
    if post is not None:
        if not can_manage or not request.membership.can_edit:
            raise SiyuError("read_only", "您的角色只能查看，不能修改", "Your role is read-only", status=403)
        form.update(title=post.get("title", ""), subtitle=post.get("subtitle", ""),
                    category_id=_int_param(post.get("category_id")), description_html=post.get("description_html", ""),
                    sort=post.get("sort", "0"), tags=post.get("tags", ""), spec_options=post.get("spec_options", ""))
        if post.get("action") == "save":
            try:
                saved = services.product_save(
                    workspace=request.workspace, product=product, title=form["title"], subtitle=form["subtitle"],
                    category_id=post.get("category_id") or None, description_html=form["description_html"],
                    sort=form["sort"] or 0, tags=form["tags"], skus=_sku_rows_from_post(post), actor=request.user)
            except SiyuError as failure:
                error = failure
            else:
                messages.success(request, _("已保存商品：%(title)s") % {"title": saved.title})
                return redirect("console:commerce_product_edit", product_id=saved.pk)
    try:
        rows = _matrix_rows(product, form["spec_options"], post)
    except SiyuError as failure:
        error = error or failure
        rows = []
    status = error.status if error else 200
    return page(request, "console/commerce/catalog/product_form.html", {
        "product": product, "form": form, "rows": rows, "error": error,
        "error_message": _error_text(error) if error else "",
        "categories": _category_choices(request.workspace),
        "tiers": [(code, TIER_NAMES[code][0]) for code in TIER_CODES],
        "images": [(image, selectors.image_url(image)) for image in product.images.all()] if product else [],
        "can_manage": can_manage,
    }, active="products", status=status)


def _error_text(error: SiyuError) -> str:
    from django.utils.translation import get_language

    return error.message_zh if (get_language() or "zh").startswith("zh") else error.message_en


@console_view(edit=True, roles=VIEW_ROLES)
def commerce_product_new(request):
    return _product_form(request, None)


@console_view(edit=True, roles=VIEW_ROLES)
def commerce_product_edit(request, product_id: int):
    return _product_form(request, _workspace_object(Product, request.workspace, product_id, "商品", "Product"))


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_product_shelve(request, product_id: int):
    product = _workspace_object(Product, request.workspace, product_id, "商品", "Product")
    on_shelf = request.POST.get("on_shelf") == "1"
    services.product_shelve(product=product, on_shelf=on_shelf, actor=request.user)
    messages.success(request, _("已上架：%(title)s") % {"title": product.title} if on_shelf
                     else _("已下架：%(title)s") % {"title": product.title})
    back = request.POST.get("back", "")
    return redirect(back if back.startswith("/commerce/") and not back.startswith("//") else
                    "console:commerce_products")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_product_images(request, product_id: int):
    product = _workspace_object(Product, request.workspace, product_id, "商品", "Product")
    if request.POST.get("delete_image"):
        image = posted_object(request, CatalogImage, "delete_image", "图片", "Image")
        if image.product_id != product.pk:
            raise SiyuError("not_found", "图片不存在", "Image not found", status=404)
        services.image_delete(image=image, actor=request.user)
        messages.success(request, _("已删除图片"))
    else:
        files = request.FILES.getlist("images")
        if not files:
            raise SiyuError("image_empty", "请选择图片", "Choose a picture")
        for upload in files[:9]:
            services.image_add(workspace=request.workspace, product=product, content=upload.read(),
                               actor=request.user)
        messages.success(request, _("已上传 %(count)s 张图片") % {"count": min(len(files), 9)})
    return redirect("console:commerce_product_edit", product_id=product.pk)


# --- inventory ---------------------------------------------------------------------------------------------

@console_view(roles=VIEW_ROLES)
def commerce_inventory(request):
    low_only = request.GET.get("low") == "1"
    query = request.GET.get("q", "")
    skus = selectors.skus_for_console(workspace=request.workspace, query=query, low_only=low_only)
    sku_id = _int_param(request.GET.get("sku"))
    selected = Sku.objects.filter(workspace=request.workspace, pk=sku_id).select_related("product").first() \
        if sku_id else None
    return page(request, "console/commerce/catalog/inventory.html", {
        "skus": skus[:300], "total": skus.count(), "low_only": low_only, "query": query,
        "low_count": selectors.low_stock_skus(workspace=request.workspace).count(),
        "selected": selected,
        "movements": selectors.movements_of(workspace=request.workspace, sku_id=selected.pk) if selected else [],
        "can_manage": request.membership.role in MANAGER_ROLES,
    }, active="inventory")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_inventory_adjust(request):
    sku = posted_object(request, Sku, "sku_id", "SKU", "SKU")
    raw = request.POST.get("delta", "").strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", raw):
        raise SiyuError("invalid_delta", "调整数量必须是非零整数（负数为出库）",
                        "The adjustment must be a non-zero whole number (negative to take out)")
    inventory.stock_adjust(sku=sku, delta=int(raw), reason=request.POST.get("reason", ""), actor=request.user)
    messages.success(request, _("已调整库存：%(sku)s %(delta)s") % {"sku": sku, "delta": raw})
    return redirect(f"{reverse('console:commerce_inventory')}?sku={sku.pk}")


# --- storefront --------------------------------------------------------------------------------------------

def _current_blocks(workspace) -> list[dict]:
    store_page = StorePage.objects.filter(workspace=workspace).first()
    return list(store_page.blocks) if store_page else []


@console_view(roles=VIEW_ROLES)
def commerce_storefront(request):
    workspace = request.workspace
    blocks = _current_blocks(workspace)
    store_page = StorePage.objects.filter(workspace=workspace).first()
    products = list(Product.objects.filter(workspace=workspace).order_by("sort", "-id")[:300])
    names = {
        "categories": dict(Category.objects.filter(workspace=workspace).values_list("pk", "name")),
        "products": {product.pk: product.title for product in products},
    }
    described = []
    for index, block in enumerate(blocks):
        if block["type"] == "banner":
            summary = _("%(count)s 张轮播图") % {"count": len(block["slides"])}
        elif block["type"] == "category_grid":
            summary = "、".join(names["categories"].get(c, f"#{c}") for c in block["category_ids"])
        elif block.get("flash_sale_id"):
            summary = _("秒杀活动 #%(id)s") % {"id": block["flash_sale_id"]}
        else:
            summary = "、".join(names["products"].get(p, f"#{p}") for p in block["product_ids"])
        described.append({"index": index, "block": block, "summary": summary, "last": index == len(blocks) - 1})
    home = selectors.storefront_home(workspace=workspace)
    for block in home["blocks"]:
        for card in block.get("products", []):
            card["price_yuan"] = fen_to_yuan(card["price_fen"])
    return page(request, "console/commerce/catalog/storefront.html", {
        "blocks": described, "page_title": store_page.title if store_page else "",
        "blocks_json": json.dumps(blocks, ensure_ascii=False, indent=2),
        "home": home,
        "categories": _category_choices(workspace), "products": products,
        "zones": [(code, label[0]) for code, label in ZONES.items()],
        "can_manage": request.membership.role in MANAGER_ROLES,
    }, active="storefront")


def _ids(values) -> list[int]:
    return [int(v) for v in values if str(v).isdigit()]


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def commerce_storefront_save(request):
    workspace = request.workspace
    blocks = _current_blocks(workspace)
    action = request.POST.get("action", "")
    index = _int_param(request.POST.get("index"))
    title = request.POST.get("title", None)
    store_page = StorePage.objects.filter(workspace=workspace).first()
    if title is None:
        title = store_page.title if store_page else ""
    if action in {"up", "down", "delete"}:
        if index is None or index >= len(blocks):
            raise SiyuError("invalid_block", "模块不存在", "No such block", status=404)
        if action == "delete":
            blocks.pop(index)
        else:
            other = index - 1 if action == "up" else index + 1
            if 0 <= other < len(blocks):
                blocks[index], blocks[other] = blocks[other], blocks[index]
    elif action == "add_banner":
        uploads = request.FILES.getlist("images")
        if not uploads:
            raise SiyuError("image_empty", "请选择轮播图片", "Choose the banner pictures")
        link = request.POST.get("link", "").strip()
        # Validate the block before storing any picture, so a bad link leaves nothing behind.
        blocks_validate([{"type": "banner", "slides": [{"image_id": 1, "link": link}]}])
        slides = []
        for upload in uploads[:8]:
            image = services.image_add(workspace=workspace, content=upload.read(), actor=request.user)
            slides.append({"image_id": image.pk, "link": link})
        blocks.append({"type": "banner", "slides": slides})
    elif action == "add_grid":
        blocks.append({"type": "category_grid", "title": request.POST.get("grid_title", ""),
                       "category_ids": _ids(request.POST.getlist("category_ids"))})
    elif action == "add_zone":
        block = {"type": "zone", "zone": request.POST.get("zone", ""), "title": request.POST.get("zone_title", "")}
        sale = request.POST.get("flash_sale_id", "").strip()
        if sale:
            block["flash_sale_id"] = int(sale) if sale.isdigit() else sale
        else:
            block["product_ids"] = _ids(request.POST.getlist("product_ids"))
        blocks.append(block)
    elif action == "json":
        try:
            blocks = json.loads(request.POST.get("blocks_json", ""))
        except json.JSONDecodeError as error:
            raise SiyuError("invalid_blocks", "模块 JSON 无效", "The blocks are not valid JSON") from error
    elif action != "title":
        raise SiyuError("invalid_action", "未知操作", "Unknown action")
    services.storefront_save(workspace=workspace, blocks=blocks, title=title, actor=request.user)
    messages.success(request, _("店铺首页已保存"))
    return redirect("console:commerce_storefront")


urlpatterns = [
    path("catalog/images/<int:image_id>/<str:digest>/", commerce_image, name="commerce_image"),
    path("products/", commerce_products, name="commerce_products"),
    path("products/new/", commerce_product_new, name="commerce_product_new"),
    path("products/<int:product_id>/", commerce_product_edit, name="commerce_product_edit"),
    path("products/<int:product_id>/shelve/", commerce_product_shelve, name="commerce_product_shelve"),
    path("products/<int:product_id>/images/", commerce_product_images, name="commerce_product_images"),
    path("categories/new/", commerce_category_create, name="commerce_category_create"),
    path("inventory/", commerce_inventory, name="commerce_inventory"),
    path("inventory/adjust/", commerce_inventory_adjust, name="commerce_inventory_adjust"),
    path("storefront/", commerce_storefront, name="commerce_storefront"),
    path("storefront/save/", commerce_storefront_save, name="commerce_storefront_save"),
]
