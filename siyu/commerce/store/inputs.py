"""What a consumer sends, checked before any service runs (pure: no ORM).

Both the H5 forms (strings) and the mini-program JSON (any JSON type) go through these, so a wrong type,
a negative or absurd quantity or a malformed address is refused the same way, with a stable code.
"""

from __future__ import annotations

import re
from typing import Any

from siyu.core.errors import SiyuError

MAX_QUANTITY = 99  # per cart line; WeChat shops commonly cap a line like this
MAX_LINES = 50  # distinct SKUs in one cart / order
MAX_ID = 2**53  # ids beyond what JSON numbers carry exactly are never ours
MAX_COUPONS = 5
MAX_POINTS = 10**8
_PHONE = re.compile(r"1[3-9]\d{9}")
ADDRESS_FIELDS = {  # name -> (label zh, label en, max length)
    "name": ("收货人", "recipient", 32),
    "phone": ("手机号", "phone", 11),
    "province": ("省份", "province", 16),
    "city": ("城市", "city", 16),
    "district": ("区县", "district", 16),
    "detail": ("详细地址", "street address", 120),
}


def _integer(value: Any) -> int | None:
    """An integer from JSON (int, never bool/float) or a form string of digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        return int(value.strip())
    return None


def parse_id(value: Any, *, what_zh: str = "编号", what_en: str = "id") -> int:
    number = _integer(value)
    if number is None or not 0 < number < MAX_ID:
        raise SiyuError("invalid_id", f"{what_zh}无效", f"The {what_en} is invalid", status=400)
    return number


def parse_quantity(value: Any, *, allow_zero: bool = False) -> int:
    number = _integer(value)
    if number is None:
        raise SiyuError("invalid_quantity", "数量必须是整数", "The quantity must be a whole number", status=400)
    low = 0 if allow_zero else 1
    if number < low:
        raise SiyuError("invalid_quantity", f"数量不能小于 {low}", f"The quantity cannot be below {low}", status=400)
    if number > MAX_QUANTITY:
        raise SiyuError("quantity_too_large", f"单件商品最多购买 {MAX_QUANTITY} 件",
                        f"At most {MAX_QUANTITY} of one item per order", status=400)
    return number


def parse_points(value: Any) -> int:
    if value in (None, ""):
        return 0
    number = _integer(value)
    if number is None or number < 0 or number > MAX_POINTS:
        raise SiyuError("invalid_points", "积分数量无效", "The number of points is invalid", status=400)
    return number


def parse_coupon_ids(values: Any) -> tuple[int, ...]:
    if values in (None, ""):
        return ()
    if not isinstance(values, list | tuple):
        values = [values]
    ids = tuple(dict.fromkeys(parse_id(value, what_zh="优惠券", what_en="coupon") for value in values if value != ""))
    if len(ids) > MAX_COUPONS:
        raise SiyuError("too_many_coupons", f"一单最多使用 {MAX_COUPONS} 张优惠券",
                        f"At most {MAX_COUPONS} coupons per order", status=400)
    return ids


def parse_lines(values: Any) -> list[tuple[int, int]]:
    """``[{"sku_id": 1, "quantity": 2}, …]`` → [(sku_id, quantity)], duplicates refused."""
    if not isinstance(values, list) or not values:
        raise SiyuError("invalid_lines", "请选择要购买的商品", "Choose what to buy (lines must be a non-empty list)",
                        status=400)
    if len(values) > MAX_LINES:
        raise SiyuError("too_many_lines", f"一单最多 {MAX_LINES} 种商品", f"At most {MAX_LINES} items per order",
                        status=400)
    lines: dict[int, int] = {}
    for value in values:
        if not isinstance(value, dict):
            raise SiyuError("invalid_lines", "商品行格式不正确", "Each line must be an object", status=400)
        sku_id = parse_id(value.get("sku_id"), what_zh="商品规格", what_en="SKU")
        if sku_id in lines:
            raise SiyuError("duplicate_line", "同一规格只能出现一次", "A SKU may appear only once", status=400)
        lines[sku_id] = parse_quantity(value.get("quantity"))
    return list(lines.items())


def parse_address(values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        raise SiyuError("invalid_address", "请填写收货地址", "Enter a delivery address", status=400)
    address: dict[str, str] = {}
    for name, (label_zh, label_en, limit) in ADDRESS_FIELDS.items():
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            raise SiyuError("invalid_address", f"请填写{label_zh}", f"Enter the {label_en}", status=400,
                            details={"field": name})
        value = value.strip()
        if len(value) > limit or "\x00" in value:
            raise SiyuError("invalid_address", f"{label_zh}过长或包含无效字符", f"The {label_en} is too long or invalid",
                            status=400, details={"field": name})
        address[name] = value
    phone = address["phone"].replace(" ", "").replace("-", "")
    if not _PHONE.fullmatch(phone):
        raise SiyuError("invalid_address", "手机号格式不正确", "The phone number is not a valid mainland mobile number",
                        status=400, details={"field": "phone"})
    address["phone"] = phone
    return address


def parse_text(value: Any, *, limit: int, required: bool, what_zh: str, what_en: str) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise SiyuError("invalid_text", f"{what_zh}无效或过长", f"The {what_en} is invalid or too long", status=400)
    value = value.strip()
    if required and not value:
        raise SiyuError("invalid_text", f"请填写{what_zh}", f"Enter the {what_en}", status=400)
    return value
