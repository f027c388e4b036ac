"""What the store shows (reads only): catalog's consumer selectors (home, lists, product detail) with every
price replaced by the promotions engine's item price for this customer (member price, limited-time
discount…), so the store never computes a price of its own; coupons as a consumer sees them.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from siyu.commerce.catalog import selectors as catalog
from siyu.commerce.catalog.models import Category, Sku
from siyu.commerce.promotions.services import MAX_LINES, quote
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer

MAX_QUERY = catalog.MAX_QUERY
PRICE_TAGS = {"member_price": "会员价", "limited_time": "限时价", "flash": "秒杀价"}


def item_prices(*, workspace: Workspace, customer: Customer | None, sku_ids: list[int] | None = None,
                skus: list[Sku] | None = None) -> dict[int, tuple[int, str]]:
    """{sku_id: (the engine's price of one unit for this customer, price kind)} for ``sku_ids``, or for ``skus``:
    rows already read with their product (the engine then does not read them again)."""
    known = {sku.pk: sku for sku in skus} if skus is not None else None
    sku_ids = list(dict.fromkeys(sku_ids if sku_ids is not None else list(known or ())))
    prices: dict[int, tuple[int, str]] = {}
    for start in range(0, len(sku_ids), MAX_LINES):
        chunk = sku_ids[start:start + MAX_LINES]
        try:
            result = quote(workspace=workspace, customer=customer, lines=[(sku_id, 1) for sku_id in chunk], skus=known)
        except SiyuError:
            continue  # e.g. a SKU that just went off shelf: the card keeps the catalog price, the cart says why
        prices.update({line.sku_id: (line.item_price_fen, line.price_kind) for line in result.lines})
    return prices


def priced_cards(*, workspace: Workspace, customer: Customer | None, cards: list[dict]) -> list[dict]:
    """Catalog's product cards with the lowest price this customer pays for any of the product's SKUs."""
    ids = [card["id"] for card in cards]
    skus = (list(Sku.objects.filter(workspace=workspace, product_id__in=ids, active=True).select_related("product"))
            if ids else [])
    prices = item_prices(workspace=workspace, customer=customer, skus=skus)
    best: dict[int, tuple[int, str]] = {}
    for sku in skus:
        if sku.pk in prices and (sku.product_id not in best or prices[sku.pk][0] < best[sku.product_id][0]):
            best[sku.product_id] = prices[sku.pk]
    result = []
    for card in cards:
        price_fen, kind = best.get(card["id"], (card["price_fen"], "sale"))
        tags = ([PRICE_TAGS[kind]] if kind in PRICE_TAGS else []) + list(card.get("tags") or [])[:2]
        result.append({**card, "name": card["title"], "price_fen": price_fen, "price_kind": kind, "tags": tags,
                       "list_price_fen": max(card.get("list_price_fen") or 0, card["price_fen"])})
    return result


def categories_of(workspace: Workspace) -> list[dict]:
    return [{"id": row.pk, "name": row.name, "icon": row.icon}
            for row in Category.objects.filter(workspace=workspace, parent=None).order_by("sort", "id")]


def category_for(*, workspace: Workspace, category_id: int) -> Category:
    category = Category.objects.filter(workspace=workspace, pk=category_id).first()
    if category is None:
        raise SiyuError("category_not_found", "分类不存在", "This category does not exist", status=404)
    return category


def products_page(*, workspace: Workspace, customer: Customer | None, category_id: int | None = None,
                  query: str = "", page: int = 1) -> dict:
    result = catalog.products_in(workspace=workspace, category_id=category_id, query=query, page=page)
    return {**result, "items": priced_cards(workspace=workspace, customer=customer, cards=result["items"])}


def product_page(*, workspace: Workspace, customer: Customer | None, product_id: int) -> dict:
    product, rows = catalog.product_with_skus(workspace=workspace, product_id=product_id)
    detail = catalog.detail_of(product, rows)
    prices = item_prices(workspace=workspace, customer=customer, skus=rows)
    skus = []
    for sku in detail["skus"]:
        price_fen, kind = prices.get(sku["id"], (sku["price_fen"], "sale"))
        skus.append({"id": sku["id"], "specs": sku["specs"] or {}, "price_fen": price_fen, "price_kind": kind,
                     "list_price_fen": max(sku["list_price_fen"], sku["price_fen"]), "available": sku["available"],
                     "low": 0 < sku["available"] <= sku["low_stock_threshold"]})
    cheapest = min(skus, key=lambda row: row["price_fen"]) if skus else None
    return {**detail, "skus": skus, "price_fen": cheapest["price_fen"] if cheapest else 0,
            "list_price_fen": cheapest["list_price_fen"] if cheapest else 0,
            "price_kind": cheapest["price_kind"] if cheapest else "sale",
            "image_url": detail["images"][0] if detail["images"] else ""}


def home_page(*, workspace: Workspace, customer: Customer | None) -> dict:
    """Banners, category grid and activity zones as the console arranged them (catalog's storefront_home)."""
    home = catalog.storefront_home(workspace=workspace)
    banners, zones, categories = [], [], []
    for block in home["blocks"]:
        if block["type"] == "banner":
            banners.extend(block["slides"])
        elif block["type"] == "category_grid":
            categories.extend(block["categories"])
        elif block["type"] == "zone":
            zones.append({"kind": block.get("zone", ""), "title": block.get("title", ""),
                          "flash_sale_id": block.get("flash_sale_id"),
                          "products": priced_cards(workspace=workspace, customer=customer, cards=block["products"])})
    if not categories:
        categories = categories_of(workspace)
    return {"title": home["title"], "banners": banners, "categories": categories, "zones": zones}


def _yuan(fen: int) -> str:
    whole, cents = divmod(int(fen), 100)
    return f"{whole}" if cents == 0 else f"{whole}.{cents:02d}"


def coupon_texts(template) -> dict:
    if template.kind == "percent":
        value = f"{(100 - template.percent_off) / 10:g}折"
    else:
        value = f"¥{_yuan(template.amount_fen)}"
    condition = f"满{_yuan(template.threshold_fen)}可用" if template.threshold_fen else "无门槛"
    return {"value_text": value, "condition_text": condition}


def coupons_claimable(*, workspace: Workspace) -> list[dict]:
    from siyu.commerce.promotions.models import CouponTemplate, PromotionStatus

    now = timezone.now()
    rows = (CouponTemplate.objects.filter(workspace=workspace, status=PromotionStatus.ACTIVE)
            .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now)).order_by("-id"))
    result = []
    for row in rows:
        if row.total_quantity and row.issued_count >= row.total_quantity:
            continue
        validity = (f"领取后 {row.valid_days} 天内有效" if row.valid_days else
                    f"有效期至 {timezone.localtime(row.valid_until):%Y-%m-%d}" if row.valid_until else "长期有效")
        result.append({"id": row.pk, "name": row.name, "kind": row.kind, "validity_text": validity,
                       "newcomer_only": row.newcomer_only, **coupon_texts(row)})
    return result


def coupons_of(*, workspace: Workspace, customer: Customer, usable_only: bool = False) -> list[dict]:
    from siyu.commerce.promotions.models import Coupon

    now = timezone.now()
    rows = (Coupon.objects.select_related("template").filter(workspace=workspace, customer=customer)
            .order_by("expires_at", "id"))
    result = []
    for row in rows:
        usable = row.state == "available" and row.starts_at <= now < row.expires_at
        if usable_only and not usable:
            continue
        status = ("可使用" if usable else "已过期" if row.state == "available" and row.expires_at <= now
                  else "未生效" if row.state == "available" else row.get_state_display())
        texts = coupon_texts(row.template)
        result.append({"id": row.pk, "name": row.template.name, "usable": usable, "state": row.state,
                       "status_text": status, "expires_at": row.expires_at,
                       "validity_text": f"有效期至 {timezone.localtime(row.expires_at):%Y-%m-%d %H:%M}",
                       "label": f"{row.template.name}({texts['value_text']},{texts['condition_text']})", **texts})
    return result


def _duration_text(seconds: int) -> str:
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}天 {clock}" if days else clock


def flash_offers(*, workspace: Workspace, customer: Customer, sku_ids=None, sale_ids=None) -> list[dict]:
    """秒杀 as a shopper sees them: sales not yet ended for these SKUs (or these sale ids), each with its price,
    time to start or to end, units left and how many more this customer may still buy (limit minus what the
    customer holds or bought). ``state`` is running / upcoming / sold_out / limit_reached."""
    from siyu.commerce.promotions.models import FlashCustomerTally, FlashSale, PromotionStatus

    now = timezone.now()
    rows = (FlashSale.objects.select_related("sku__product")
            .filter(workspace=workspace, status=PromotionStatus.ACTIVE, ends_at__gt=now,
                    sku__active=True, sku__product__status="on_shelf"))
    if sku_ids is not None:
        rows = rows.filter(sku_id__in=list(sku_ids))
    if sale_ids is not None:
        rows = rows.filter(pk__in=[pk for pk in sale_ids if isinstance(pk, int)])
    sales = list(rows.order_by("starts_at", "id")[:20])
    taken = dict(FlashCustomerTally.objects.filter(sale__in=sales, customer=customer)
                 .values_list("sale_id", "quantity"))
    result = []
    for sale in sales:
        allowance = max(0, sale.per_customer_limit - taken.get(sale.pk, 0))
        running = sale.starts_at <= now
        state = ("upcoming" if not running else "sold_out" if sale.stock_left <= 0
                 else "limit_reached" if allowance <= 0 else "running")
        seconds = int(((sale.ends_at if running else sale.starts_at) - now).total_seconds())
        result.append({
            "id": sale.pk, "name": sale.name, "sku_id": sale.sku_id, "product_id": sale.sku.product_id,
            "title": sale.sku.product.title,
            "spec_text": " / ".join(f"{k}:{v}" for k, v in (sale.sku.specs or {}).items()),
            "price_fen": sale.price_fen, "list_price_fen": sale.sku.price_fen, "stock_left": sale.stock_left,
            "stock_total": sale.stock_total, "per_customer_limit": sale.per_customer_limit, "allowance": allowance,
            "starts_at": sale.starts_at, "ends_at": sale.ends_at, "state": state, "seconds": seconds,
            "countdown_text": _duration_text(seconds),
            "deadline_ms": int((sale.ends_at if running else sale.starts_at).timestamp() * 1000),
            "max_quantity": min(allowance, sale.stock_left),
        })
    return result
