"""The demo brand's shop: a beauty catalog, the storefront page and a few promotions, created once.

Called by ``siyu demo`` (not a command itself: the leading underscore keeps Django from listing it). Everything
goes through the catalog and promotions services, as an operator's clicks would. Idempotent: when the
workspace already has products, nothing is created. Pictures are small solid brand-colour PNGs written here
with the standard library (no picture files, no dependency).
"""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

from django.utils import timezone

from siyu.commerce.catalog.models import Product
from siyu.commerce.catalog.services import (
    category_create,
    image_add,
    product_save,
    product_shelve,
    storefront_save,
)
from siyu.commerce.promotions.campaigns import (
    coupon_template_save,
    flash_sale_save,
    full_reduction_save,
    limited_discount_save,
)

CATEGORIES = (("护肤", "💧"), ("彩妆", "💄"), ("香氛", "🌸"), ("身体护理", "🧴"), ("礼盒", "🎁"))
# (category, title, subtitle, description, colour, tags, [(specs, price_fen, list_price_fen, stock)])
# Member prices: gold 95%, diamond 90% of the price (rounded down to the yuan).
PRODUCTS = (
    ("护肤", "花漾水光精华", "玻尿酸+烟酰胺 | 一瓶喝饱水", "三重玻尿酸深层补水，5% 烟酰胺提亮肤色，质地清透好吸收。",
     (233, 120, 150), ["热卖", "补水"], [({"容量": "30ml"}, 19900, 26900, 120), ({"容量": "50ml"}, 29900, 39900, 60)]),
    ("护肤", "氨基酸温和洁面乳", "弱酸性 | 敏感肌可用", "氨基酸表活，洗后不紧绷，绵密泡沫温和带走油污。",
     (180, 220, 230), ["敏感肌"], [({"规格": "120g"}, 6900, 8900, 200)]),
    ("护肤", "玻尿酸修护面膜", "急救补水 | 10 片装", "医用级无纺布，一片含 25ml 精华液，熬夜后急救。",
     (160, 200, 240), ["面膜"], [({"规格": "10 片装"}, 9900, 12900, 150), ({"规格": "30 片装"}, 25900, 36900, 4)]),
    ("护肤", "轻薄防晒乳 SPF50+", "PA++++ | 不泛白不搓泥", "新一代化学+物理防晒，清爽成膜，通勤户外都适用。",
     (250, 210, 120), ["防晒", "新品"], [({"容量": "50ml"}, 12900, 16900, 90)]),
    ("彩妆", "丝绒雾面口红", "显白不拔干 | 6 色可选", "丝绒雾面质地，一抹显色，含玫瑰果油不拔干。",
     (200, 40, 70), ["口红", "新品"], [({"色号": "#01 正红"}, 15900, 19900, 80), ({"色号": "#03 豆沙"}, 15900, 19900, 60),
                                    ({"色号": "#07 枫叶棕"}, 15900, 19900, 3)]),
    ("彩妆", "水润持妆粉底液", "12 小时持妆 | 轻薄服帖", "轻薄水感，遮瑕服帖，混油肌也能一整天不脱妆。",
     (235, 200, 170), ["底妆"], [({"色号": "象牙白"}, 22900, 29900, 50), ({"色号": "自然色"}, 22900, 29900, 50)]),
    ("彩妆", "四色眼影盘", "大地色 | 新手友好", "哑光与珠光搭配，日常通勤一盘搞定。",
     (170, 120, 100), ["眼妆"], [({"色号": "奶茶大地"}, 13900, 16900, 70), ({"色号": "蜜桃粉"}, 13900, 16900, 70)]),
    ("香氛", "晨露玫瑰淡香水", "保加利亚玫瑰 | 清新花香", "前调佛手柑，中调大马士革玫瑰，后调白麝香。",
     (240, 170, 190), ["香水"], [({"容量": "30ml"}, 32900, 39900, 40), ({"容量": "50ml"}, 45900, 55900, 25)]),
    ("香氛", "白茶香薰蜡烛", "天然大豆蜡 | 燃烧 40 小时", "白茶与雪松的安静气息，适合睡前放松。",
     (230, 230, 210), ["家居香氛"], [({"规格": "200g"}, 16900, 19900, 60)]),
    ("身体护理", "樱花香氛身体乳", "烟酰胺亮肤 | 持久留香", "质地轻盈不黏腻，樱花香持续一整天。",
     (250, 200, 215), ["身体乳"], [({"容量": "250ml"}, 8900, 11900, 150), ({"容量": "400ml"}, 12900, 16900, 80)]),
    ("身体护理", "海盐去角质磨砂膏", "细腻海盐 | 告别鸡皮", "天然海盐颗粒配合乳木果油，温和去角质。",
     (150, 210, 220), ["身体护理"], [({"规格": "300g"}, 7900, 9900, 100)]),
    ("礼盒", "花漾焕颜护肤礼盒", "精华+面霜+面膜 | 送礼首选", "水光精华 30ml、修护面霜 50g、面膜 5 片，附贺卡与礼袋。",
     (190, 60, 100), ["礼盒", "会员专享"], [({"规格": "标准装"}, 49900, 65900, 30)]),
    ("礼盒", "口红香水节日礼盒", "限量款 | 情人节限定", "丝绒口红 #01 + 晨露玫瑰淡香水 30ml，限量发售。",
     (210, 90, 120), ["礼盒", "限量"], [({"规格": "限定款"}, 39900, 51900, 5)]),
)
LOW_STOCK_THRESHOLD = 10


def png_square(rgb: tuple[int, int, int], *, size: int = 96) -> bytes:
    """A ``size``×``size`` PNG in one colour with a lighter band across the middle (a label-like stripe)."""
    light = tuple(min(255, channel + (255 - channel) // 2) for channel in rgb)
    rows = []
    for y in range(size):
        colour = light if size * 2 // 5 <= y < size * 3 // 5 else rgb
        rows.append(b"\x00" + bytes(colour) * size)  # filter byte 0, then RGB pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def _member_prices(price_fen: int) -> dict[str, int]:
    return {"gold": price_fen * 95 // 100 // 100 * 100, "diamond": price_fen * 90 // 100 // 100 * 100}


def demo_catalog(workspace) -> dict[str, int]:
    """Create the demo shop once; returns what was created (all zero when the workspace has products)."""
    created = {"categories": 0, "products": 0, "skus": 0, "coupons": 0, "promotions": 0}
    if Product.objects.filter(workspace=workspace).exists():
        return created
    categories = {}
    for sort, (name, icon) in enumerate(CATEGORIES):
        categories[name] = category_create(workspace=workspace, name=name, icon=icon, sort=sort)
        created["categories"] += 1
    products: dict[str, Product] = {}
    for sort, (category, title, subtitle, description, colour, tags, skus) in enumerate(PRODUCTS):
        product = product_save(
            workspace=workspace, title=title, subtitle=subtitle, category_id=categories[category].pk,
            description_html=f"<p>{description}</p><p>花漾美妆官方正品，7 天无理由退换。</p>", sort=sort, tags=tags,
            skus=[{"specs": specs, "price_fen": price, "list_price_fen": list_price,
                   "member_prices": _member_prices(price), "initial_stock": stock,
                   "low_stock_threshold": LOW_STOCK_THRESHOLD, "code": f"HY{sort + 1:02d}{index + 1:02d}"}
                  for index, (specs, price, list_price, stock) in enumerate(skus)])
        image_add(workspace=workspace, content=png_square(colour), product=product)
        product_shelve(product=product, on_shelf=True)
        products[title] = product
        created["products"] += 1
        created["skus"] += len(skus)

    now = timezone.now()
    starts = now - timedelta(minutes=5)
    serum = products["花漾水光精华"]
    for name, kind, fields in (
            ("满 199 减 30 券", "threshold", {"threshold_fen": 19900, "amount_fen": 3000}),
            ("全场 9 折券", "percent", {"percent_off": 10, "threshold_fen": 10000, "cap_fen": 5000}),
            ("10 元无门槛券", "no_threshold", {"amount_fen": 1000, "total_quantity": 5000}),
            ("新人专享 20 元券", "newcomer", {"amount_fen": 2000, "threshold_fen": 9900})):
        coupon_template_save(workspace=workspace, actor=None, name=name, kind=kind, valid_days=30, **fields)
        created["coupons"] += 1
    full_reduction_save(workspace=workspace, actor=None, name="会员日满减", tiers=[(29900, 3000), (49900, 6000)],
                        starts_at=starts, ends_at=now + timedelta(days=30))
    limited_discount_save(workspace=workspace, actor=None, name="彩妆限时 85 折", percent_off=15,
                          product_ids=[products["丝绒雾面口红"].pk, products["四色眼影盘"].pk],
                          starts_at=starts, ends_at=now + timedelta(days=14))
    mask = products["玻尿酸修护面膜"].skus.order_by("sort").first()
    sale = flash_sale_save(workspace=workspace, actor=None, sku_id=mask.pk, name="面膜限量秒杀", price_fen=5900,
                           stock_total=30, per_customer_limit=2, starts_at=starts, ends_at=now + timedelta(days=7))
    created["promotions"] += 3

    slides = [image_add(workspace=workspace, content=png_square(colour, size=160)) for colour in
              ((233, 120, 150), (200, 40, 70))]
    storefront_save(workspace=workspace, title="花漾美妆官方商城", blocks=[
        {"type": "banner", "slides": [
            {"image_id": slides[0].pk, "link": f"/shop/{workspace.slug}/products/{serum.pk}/"},
            {"image_id": slides[1].pk, "link": f"/shop/{workspace.slug}/products/{products['丝绒雾面口红'].pk}/"}]},
        {"type": "category_grid", "title": "分类", "category_ids": [category.pk for category in categories.values()]},
        {"type": "zone", "zone": "seckill", "title": "限时秒杀", "flash_sale_id": sale.pk},
        {"type": "zone", "zone": "new", "title": "新品上市",
         "product_ids": [product.pk for product in products.values() if "新品" in product.tags]},
        {"type": "zone", "zone": "member", "title": "会员专区",
         "product_ids": [products["花漾焕颜护肤礼盒"].pk, serum.pk, products["晨露玫瑰淡香水"].pk]},
    ])
    return created
