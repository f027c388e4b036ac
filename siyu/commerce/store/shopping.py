"""What a shopper does beyond the cart — quote, place an order, pay, cancel, ask for after-sales, claim a
coupon — as calls into the orders, promotions and loyalty services, shared by the H5 pages and the
mini-program API so both behave the same. Orders are always looked up within the shopper's own orders:
another customer's order number is "not found", never revealed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone

from siyu.commerce.orders import services as order_services
from siyu.commerce.orders.aftersales import aftersale_request
from siyu.commerce.orders.models import AfterSaleKind, Order
from siyu.commerce.promotions import services as promotion_services
from siyu.commerce.store import cart as carts
from siyu.commerce.store import member_services
from siyu.commerce.store.identity import Shopper
from siyu.commerce.store.inputs import (
    parse_address,
    parse_coupon_ids,
    parse_id,
    parse_lines,
    parse_points,
    parse_quantity,
    parse_text,
)
from siyu.core.errors import SiyuError
from siyu.core.timeutil import local_day
from siyu.customers.models import Customer
from siyu.loyalty.points import points_balance

AFTERSALE_KINDS = list(AfterSaleKind.choices)
AFTERSALE_REASONS = ["不想要了", "商品质量问题", "与描述不符", "发错货", "少件/漏发", "其他"]
MAX_NUMBER = 32


# (session token hash, product id) → the local day its view was queued: a shopper's repeated views of a product
# on the same day queue nothing more (the browse task counts each product once a day anyway).
_views_queued: dict[tuple[str, int], date] = {}
_VIEWS_KEPT = 50_000


def product_viewed(*, shopper: Shopper, product_id: int) -> None:
    """Queue the 浏览商品 task step for a product page, once per session, product and day in this process
    (the queue is a write: SQLite's, with a commit, on a single machine)."""
    key, day = (shopper.session.token_hash, int(product_id)), local_day(timezone.now())
    if _views_queued.get(key) == day:
        return
    if len(_views_queued) >= _VIEWS_KEPT:
        _views_queued.clear()
    _views_queued[key] = day
    member_services.product_viewed(workspace=shopper.workspace, customer=shopper.customer, product_id=product_id)


def points_of(customer: Customer) -> int:
    return points_balance(customer=customer)


def cart_quote(*, workspace, customer, coupon_ids=(), points=0):
    lines = carts.cart_checkout_lines(workspace=workspace, customer=customer)
    return promotion_services.quote(workspace=workspace, customer=customer, lines=lines,
                                    coupon_ids=tuple(coupon_ids), points=points)


def lines_quote(*, shopper: Shopper, lines, coupon_ids=(), points=0, flash_sale_id=None):
    """A quote for explicit lines (the mini-program), every SKU checked to be this workspace's and on sale."""
    lines = parse_lines(lines)
    skus = carts.skus_for_sale(workspace=shopper.workspace, sku_ids=[sku_id for sku_id, _quantity in lines])
    if flash_sale_id is not None:
        flash_sale_id = parse_id(flash_sale_id, what_zh="秒杀活动", what_en="flash sale")
    return promotion_services.quote(workspace=shopper.workspace, customer=shopper.customer, lines=lines,
                                    coupon_ids=parse_coupon_ids(coupon_ids), points=parse_points(points),
                                    flash_sale_id=flash_sale_id, skus=skus)


def topups_for(*, workspace, customer) -> tuple[list[dict], str]:
    """凑单: products the promotions engine suggests to reach the next threshold, as cards, and its hint."""
    lines = [(line.sku.pk, line.item.quantity) for line in carts.cart_lines(workspace=workspace, customer=customer)
             if line.item.selected and not line.problem]
    if not lines:
        return [], ""
    suggestions = promotion_services.topup_suggestions(workspace=workspace, customer=customer, lines=lines)
    if not suggestions:
        return [], ""
    ids = [row["product_id"] for row in suggestions]
    cards = _cards_for(workspace, customer, ids)
    return [cards[pk] for pk in ids if pk in cards], suggestions[0]["reason_zh"]


def _cards_for(workspace, customer, product_ids: list[int]) -> dict[int, dict]:
    from siyu.commerce.catalog.selectors import product_detail
    from siyu.commerce.store.selectors import priced_cards

    cards = []
    for product_id in dict.fromkeys(product_ids):
        try:
            detail = product_detail(workspace=workspace, product_id=product_id)
        except SiyuError:
            continue
        cards.append({"id": detail["id"], "title": detail["title"], "subtitle": detail["subtitle"],
                      "tags": detail["tags"], "image_url": detail["images"][0] if detail["images"] else "",
                      "price_fen": detail["price_fen"], "sold_out": detail["sold_out"],
                      "list_price_fen": min((sku["list_price_fen"] for sku in detail["skus"]), default=0)})
    return {card["id"]: card for card in priced_cards(workspace=workspace, customer=customer, cards=cards)}


def place_order(*, shopper: Shopper, coupon_ids=(), points=0, address: Any, note: Any = "", source: str,
                lines: Any = None, flash_sale_id: Any = None, keep_cart: bool = False) -> Order:
    """Check out the cart's selected lines (or explicit ``lines`` from the mini-program, possibly a flash-sale
    purchase); the bought lines leave the cart once the order exists, unless ``keep_cart`` (the H5 store's
    立即购买 and 立即抢购 buy one line beside the cart, which stays as it was)."""
    address = parse_address(address)
    note = parse_text(note, limit=200, required=False, what_zh="订单备注", what_en="order note")
    coupon_ids, points = parse_coupon_ids(coupon_ids), parse_points(points)
    if lines is None:
        lines = carts.cart_checkout_lines(workspace=shopper.workspace, customer=shopper.customer)
    else:
        lines = parse_lines(lines)
        carts.skus_for_sale(workspace=shopper.workspace, sku_ids=[sku_id for sku_id, _quantity in lines])
    if flash_sale_id is not None:
        if lines is None:
            raise SiyuError("invalid_lines", "秒杀商品请直接下单", "A flash-sale purchase names its lines", status=400)
        flash_sale_id = parse_id(flash_sale_id, what_zh="秒杀活动", what_en="flash sale")
    order = order_services.checkout(workspace=shopper.workspace, customer=shopper.customer, lines=lines,
                                    coupon_ids=coupon_ids, points=points, address=address, source=source,
                                    buyer_note=note, flash_sale_id=flash_sale_id)
    if keep_cart:
        return order
    carts.cart_lines_remove(workspace=shopper.workspace, customer=shopper.customer,
                            sku_ids=[sku_id for sku_id, _quantity in lines])
    return order


def direct_line(*, shopper: Shopper, sku_id: Any, quantity: Any) -> tuple[Any, int]:
    """立即购买: one SKU of this workspace, on sale, with the stock for ``quantity`` (the cart is not involved)."""
    if sku_id in (None, ""):
        raise SiyuError("sku_required", "请先选择规格", "Choose a variant first", status=400)
    sku = carts.sku_for_sale(workspace=shopper.workspace, sku_id=sku_id)
    quantity = parse_quantity(quantity if quantity not in (None, "") else "1")
    carts.check_stock(sku, quantity)
    return sku, quantity


def _flash_limit(limit: int, allowance: int) -> SiyuError:
    if allowance < limit:
        return SiyuError("flash_limit_reached", f"秒杀商品每人限购 {limit} 件,您还可以抢购 {allowance} 件",
                         f"At most {limit} per customer in this flash sale; you may still buy {allowance}",
                         status=409, details={"per_customer_limit": limit, "allowance": allowance})
    return SiyuError("flash_limit_reached", f"秒杀商品每人限购 {limit} 件",
                     f"At most {limit} per customer in this flash sale", status=409,
                     details={"per_customer_limit": limit, "allowance": allowance})


def flash_line(*, shopper: Shopper, sale_id: Any, quantity: Any) -> tuple[Any, Any, int]:
    """立即抢购: the running flash sale of this workspace, its SKU and a quantity within what this customer may
    still buy and what is left; refusals use the promotions service's codes (the checkout decides again under
    its conditional UPDATEs)."""
    from django.utils import timezone

    from siyu.commerce.promotions.models import FlashCustomerTally, FlashSale, PromotionStatus

    sale_id = parse_id(sale_id, what_zh="秒杀活动", what_en="flash sale")
    sale = FlashSale.objects.filter(workspace=shopper.workspace, pk=sale_id).first()
    if sale is None:
        raise SiyuError("flash_sale_not_found", "秒杀活动不存在", "Flash sale not found", status=404)
    now = timezone.now()
    if sale.status != PromotionStatus.ACTIVE or now >= sale.ends_at:
        raise SiyuError("flash_sale_ended", "秒杀活动已结束", "The flash sale has ended", status=409)
    if now < sale.starts_at:
        raise SiyuError("flash_sale_not_started", "秒杀活动尚未开始", "The flash sale has not started", status=409)
    sku = carts.sku_for_sale(workspace=shopper.workspace, sku_id=sale.sku_id)
    quantity = parse_quantity(quantity if quantity not in (None, "") else "1")
    if sale.stock_left <= 0:
        raise SiyuError("flash_sold_out", "秒杀商品已抢光", "The flash sale is sold out", status=409)
    taken = (FlashCustomerTally.objects.filter(sale=sale, customer=shopper.customer)
             .values_list("quantity", flat=True).first() or 0)
    allowance = max(0, sale.per_customer_limit - taken)
    if quantity > allowance:
        raise _flash_limit(sale.per_customer_limit, allowance)
    if quantity > sale.stock_left:
        raise SiyuError("flash_sold_out", f"秒杀商品仅剩 {sale.stock_left} 件", f"Only {sale.stock_left} left in the "
                        "flash sale", status=409, details={"stock_left": sale.stock_left})
    return sale, sku, quantity


def order_of(*, shopper: Shopper, number: Any) -> Order:
    if not isinstance(number, str) or not number or len(number) > MAX_NUMBER:
        raise SiyuError("order_not_found", "订单不存在", "This order does not exist", status=404)
    order = (Order.objects.prefetch_related("lines")
             .filter(workspace=shopper.workspace, customer=shopper.customer, number=number).first())
    if order is None:
        raise SiyuError("order_not_found", "订单不存在", "This order does not exist", status=404)
    return order


def orders_list(*, shopper: Shopper, limit: int = 50) -> list[Order]:
    return list(Order.objects.prefetch_related("lines").filter(workspace=shopper.workspace, customer=shopper.customer)
                .order_by("-created_at", "-id")[:limit])


def order_address(order: Order) -> dict:
    return order.address


def can_pay(order: Order) -> bool:
    return order.order_status == "pending_payment" and order.payment_status == "unpaid"


def can_request_aftersale(order: Order) -> bool:
    return order.payment_status in {"paid", "partially_refunded"} and order.order_status != "cancelled"


def prepay(*, shopper: Shopper, order: Order) -> dict:
    """WeChat Pay parameters for this order, paid by this session's openid (公众号 for H5, 小程序 for the API)."""
    if not can_pay(order):
        raise SiyuError("order_not_payable", "订单当前不能支付(已支付、已取消或已超时)",
                        "This order cannot be paid now (already paid, cancelled or expired)", status=409)
    if not shopper.openid:
        raise SiyuError("payer_unknown", "无法识别您的微信身份,请从微信中重新打开",
                        "Your WeChat identity is unknown; open the store in WeChat again", status=409)
    result = order_services.order_prepay(order=order, openid=shopper.openid, appid=shopper.appid)
    return {"client_params": result["pay_params"], "prepay_id": result["prepay_id"]}


def simulated_pay(*, shopper: Shopper, order: Order, prepay_id: Any) -> dict:
    """Simulator mode: pay as the consumer would in WeChat's cashier (the simulator then notifies Siyu)."""
    from siyu.wechat.pay.models import PaymentIntent

    base = settings.SIYU_WECHAT_BASE_URL
    if not base:
        raise SiyuError("simulator_off", "仅在微信模拟器模式下可用", "Only available in WeChat simulator mode", status=404)
    if not isinstance(prepay_id, str) or not prepay_id or len(prepay_id) > 64:
        raise SiyuError("prepay_invalid", "支付参数无效", "The payment reference is invalid", status=400)
    if not PaymentIntent.objects.filter(workspace=shopper.workspace, out_trade_no=order.number, prepay_id=prepay_id,
                                        payer_openid=shopper.openid).exists():
        raise SiyuError("prepay_invalid", "支付参数与订单不符", "This payment does not belong to the order", status=400)
    if not can_pay(order):
        raise SiyuError("order_not_payable", "订单当前不能支付", "This order cannot be paid now", status=409)
    try:
        answer = requests.post(f"{base}/_sim/pay/pay", json={"openid": shopper.openid, "prepay_id": prepay_id},
                               timeout=getattr(settings, "SIYU_WECHAT_TIMEOUT", 10))
    except requests.RequestException as error:
        raise SiyuError("simulator_unreachable", "微信模拟器无响应", "The WeChat simulator did not answer",
                        status=502) from error
    if answer.status_code != 200:
        try:
            detail = answer.json().get("errmsg", "")
        except ValueError:
            detail = ""
        raise SiyuError("simulated_pay_failed", f"模拟支付失败:{detail}", f"The simulated payment failed: {detail}",
                        status=409)
    return answer.json()


def cancel(*, shopper: Shopper, order: Order) -> Order:
    if not can_pay(order):
        raise SiyuError("order_not_cancellable", "只有待付款的订单可以取消,已支付的订单请申请售后",
                        "Only unpaid orders can be cancelled; ask for after-sales on a paid order", status=409)
    return order_services.order_cancel(order=order, by="customer", customer=shopper.customer)


def aftersale(*, shopper: Shopper, order: Order, kind: Any, lines: Any, reason: Any, description: Any = ""):
    if kind not in dict(AfterSaleKind.choices):
        raise SiyuError("invalid_aftersale_kind", "售后类型无效", "The after-sales kind is invalid", status=400)
    reason = parse_text(reason, limit=80, required=True, what_zh="售后原因", what_en="reason")
    description = parse_text(description, limit=500, required=False, what_zh="问题描述", what_en="description")
    if not isinstance(lines, list) or not lines:
        raise SiyuError("invalid_lines", "请选择要售后的商品", "Choose the items for after-sales", status=400)
    own = {line.pk: line for line in order.lines.all()}
    picked = []
    for value in lines:
        if not isinstance(value, dict):
            raise SiyuError("invalid_lines", "商品行格式不正确", "Each line must be an object", status=400)
        line_id = parse_id(value.get("line_id"), what_zh="订单商品", what_en="order line")
        if line_id not in own:
            raise SiyuError("order_line_not_found", "订单中没有这件商品", "This item is not part of the order", status=404)
        quantity = parse_quantity(value.get("quantity"))
        if quantity > own[line_id].quantity:
            raise SiyuError("invalid_quantity", "售后数量超过购买数量", "More than was bought", status=400)
        picked.append((line_id, quantity))
    if not can_request_aftersale(order):
        raise SiyuError("aftersale_not_allowed", "该订单当前不能申请售后", "This order cannot have an after-sales request now",
                        status=409)
    return aftersale_request(order=order, customer=shopper.customer, kind=kind, lines=picked, reason=reason,
                             description=description)


def claim(*, shopper: Shopper, template_id: Any):
    template_id = parse_id(template_id, what_zh="优惠券", what_en="coupon")
    return promotion_services.coupon_claim(workspace=shopper.workspace, customer=shopper.customer,
                                           template_id=template_id)


def last_address(*, shopper: Shopper) -> dict:
    order = (Order.objects.filter(workspace=shopper.workspace, customer=shopper.customer)
             .order_by("-created_at", "-id").first())
    return order_address(order) if order else {}
