"""Storefront block types and their validation (pure, no ORM).

A store page is an ordered list of blocks; each is a dict with a ``type``:

- ``banner``: a carousel, ``{"type": "banner", "slides": [{"image_id": 3, "link": "/shop/p/12"}, …]}``
  (1–8 slides; a link is optional, site-relative or http(s)).
- ``category_grid``: ``{"type": "category_grid", "title": "分类", "category_ids": [1, 2, …]}`` (1–20).
- ``zone``: an activity zone, ``{"type": "zone", "zone": "seckill"|"new"|"member", "title": "…",
  "product_ids": [..]}`` (1–20 products) or, for 秒杀, ``"flash_sale_id": 7`` instead of products.

``blocks_validate`` checks shapes and types and returns clean copies plus the ids that the caller must
check belong to the workspace (images, categories, products).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siyu.commerce.catalog.sanitize import url_is_safe
from siyu.core.errors import SiyuError

BLOCK_TYPES = ("banner", "category_grid", "zone")
ZONES = {"seckill": ("秒杀", "Flash sale"), "new": ("新品", "New arrivals"), "member": ("会员专区", "Members only")}
MAX_BLOCKS = 30
MAX_ITEMS = 20
MAX_SLIDES = 8


@dataclass
class ReferencedIds:
    image_ids: set[int] = field(default_factory=set)
    category_ids: set[int] = field(default_factory=set)
    product_ids: set[int] = field(default_factory=set)


def _bad(index: int, zh: str, en: str) -> SiyuError:
    return SiyuError("invalid_block", f"第 {index + 1} 个模块：{zh}", f"Block {index + 1}: {en}",
                     details={"block": index + 1})


def _id_list(value, index: int, what_zh: str, what_en: str, *, maximum: int = MAX_ITEMS) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > maximum:
        raise _bad(index, f"请选择 1–{maximum} 个{what_zh}", f"choose 1–{maximum} {what_en}")
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise _bad(index, f"{what_zh}编号无效", f"invalid {what_en} id")
        if item not in ids:
            ids.append(item)
    return ids


def _title(block: dict, index: int) -> str:
    title = block.get("title", "")
    if not isinstance(title, str) or len(title) > 30:
        raise _bad(index, "标题须为不超过 30 字的文字", "the title must be text of at most 30 characters")
    return title.strip()


def blocks_validate(blocks) -> tuple[list[dict], ReferencedIds]:
    if not isinstance(blocks, list):
        raise SiyuError("invalid_blocks", "页面模块必须是列表", "Blocks must be a list")
    if len(blocks) > MAX_BLOCKS:
        raise SiyuError("invalid_blocks", f"页面模块最多 {MAX_BLOCKS} 个", f"At most {MAX_BLOCKS} blocks")
    refs = ReferencedIds()
    clean: list[dict] = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            raise _bad(index, "未知的模块类型", "unknown block type")
        kind = block["type"]
        if kind == "banner":
            slides = block.get("slides")
            if not isinstance(slides, list) or not slides or len(slides) > MAX_SLIDES:
                raise _bad(index, f"轮播图需要 1–{MAX_SLIDES} 张图片", f"a banner needs 1–{MAX_SLIDES} slides")
            clean_slides = []
            for slide in slides:
                image_id = slide.get("image_id") if isinstance(slide, dict) else None
                if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id <= 0:
                    raise _bad(index, "轮播图缺少图片", "a slide has no image")
                link = slide.get("link", "") or ""
                if not isinstance(link, str) or len(link) > 300 or (link and not url_is_safe(link)):
                    raise _bad(index, "链接只能是站内路径或 http(s) 地址",
                               "links must be site paths or http(s) URLs")
                refs.image_ids.add(image_id)
                clean_slides.append({"image_id": image_id, "link": link})
            clean.append({"type": "banner", "slides": clean_slides})
        elif kind == "category_grid":
            ids = _id_list(block.get("category_ids"), index, "分类", "categories")
            refs.category_ids.update(ids)
            clean.append({"type": "category_grid", "title": _title(block, index), "category_ids": ids})
        else:
            zone = block.get("zone")
            if zone not in ZONES:
                raise _bad(index, "活动专区须为 秒杀 / 新品 / 会员专区", "the zone must be seckill, new or member")
            item = {"type": "zone", "zone": zone, "title": _title(block, index) or ZONES[zone][0]}
            sale_id = block.get("flash_sale_id")
            if sale_id is not None:
                if zone != "seckill":
                    raise _bad(index, "只有秒杀专区可以关联秒杀活动", "only a seckill zone can show a flash sale")
                if isinstance(sale_id, bool) or not isinstance(sale_id, int) or sale_id <= 0:
                    raise _bad(index, "秒杀活动编号无效", "invalid flash sale id")
                item["flash_sale_id"] = sale_id
            else:
                ids = _id_list(block.get("product_ids"), index, "商品", "products")
                refs.product_ids.update(ids)
                item["product_ids"] = ids
            clean.append(item)
    return clean, refs
