"""The mini-program's JSON API (/api/mini/v1/…): the same operations and services as the H5 store.

Authentication is the consumer session (``Authorization: Bearer wxs_…`` from /wx/consumer/miniapp/<appid>/login;
the H5 cookie works too, and then a write must carry Django's CSRF token like any cookie-authenticated
form). The workspace is the session's. Errors are ``{code, message, message_en}`` with the error's status
(siyu/api.py maps them); a malformed body is 422 ``invalid_request``. Another customer's order or another
workspace's SKU is "not found".
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from ninja import Field, Router, Schema, Status
from pydantic import StrictInt, StrictStr

from siyu.commerce.store import cart as carts
from siyu.commerce.store import selectors, shopping
from siyu.commerce.store.identity import Shopper
from siyu.commerce.store.inputs import parse_coupon_ids, parse_id, parse_points
from siyu.core.errors import SiyuError
from siyu.wechat.consumer.models import SessionKind
from siyu.wechat.consumer.sessions import ninja_consumer_auth

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def mini_auth(request: HttpRequest):
    """The consumer session (``request.auth``); a cookie session's writes must also pass the CSRF check."""
    session = ninja_consumer_auth(request)
    if session is not None and session.kind == SessionKind.H5 and request.method not in SAFE_METHODS:
        refusal = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if refusal is not None:
            raise SiyuError("csrf_failed", "请求来源校验失败,请刷新页面后重试",
                            "The CSRF check failed; reload the page and try again", status=403)
    return session


router = Router(auth=mini_auth, tags=["mini-program"])


def _shopper(request) -> Shopper:
    session = request.auth
    return Shopper(workspace=session.workspace, customer=session.customer, session=session)


# --- schemas --------------------------------------------------------------------------------------------------
class Error(Schema):
    code: str
    message: str
    message_en: str
    details: dict | None = None


ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 409: Error, 410: Error, 422: Error}


class Card(Schema):
    id: int
    title: str
    subtitle: str = ""
    image_url: str = ""
    price_fen: int = Field(description="本客户实际单价(促销引擎报价,含会员价/限时价) / unit price quoted for this customer")
    list_price_fen: int
    price_kind: str
    tags: list[str]
    sold_out: bool


class CategoryOut(Schema):
    id: int
    name: str
    icon: str = ""


class Zone(Schema):
    kind: str
    title: str
    flash_sale_id: int | None = None
    products: list[Card]


class Banner(Schema):
    image_url: str
    link: str = ""


class Home(Schema):
    title: str
    banners: list[Banner]
    categories: list[CategoryOut]
    zones: list[Zone]


class ProductList(Schema):
    items: list[Card]
    page: int
    page_size: int
    total: int
    has_next: bool


class SkuOut(Schema):
    id: int
    specs: dict[str, str]
    price_fen: int
    price_kind: str
    list_price_fen: int
    available: int
    low: bool


class Spec(Schema):
    name: str
    values: list[str]


class ProductOut(Schema):
    id: int
    title: str
    subtitle: str
    images: list[str]
    description_html: str
    tags: list[str]
    specs: list[Spec]
    skus: list[SkuOut]
    price_fen: int
    sold_out: bool


class CartLineOut(Schema):
    sku_id: int
    product_id: int
    title: str
    specs: dict[str, str]
    quantity: int
    selected: bool
    unit_price_fen: int
    available: int
    problem: str = Field(description="'' | off_shelf | out_of_stock")


class CartOut(Schema):
    lines: list[CartLineOut]
    count: int


class CartAdd(Schema):
    sku_id: StrictInt
    quantity: StrictInt = 1


class CartSet(Schema):
    quantity: StrictInt = Field(description="0 removes the line")
    selected: bool | None = None


class LineIn(Schema):
    sku_id: StrictInt
    quantity: StrictInt


class QuoteIn(Schema):
    lines: list[LineIn] | None = Field(None, description="省略则为购物车中选中的商品 / omitted: the cart's selected lines")
    coupon_ids: list[StrictInt] = []
    points: StrictInt = 0
    flash_sale_id: StrictInt | None = Field(None, description="秒杀活动(须同时给出 lines)/ a flash sale (with lines)")


class AdjustmentOut(Schema):
    kind: str
    label_zh: str
    label_en: str
    amount_fen: int


class QuoteLineOut(Schema):
    sku_id: int
    quantity: int
    unit_price_fen: int
    item_price_fen: int
    price_kind: str
    payable_fen: int


class QuoteOut(Schema):
    lines: list[QuoteLineOut]
    adjustments: list[AdjustmentOut] = Field(description="每项优惠单独一行,合计等于 total_fen / every discount on its own line")
    subtotal_fen: int
    discount_fen: int
    points_used: int
    points_fen: int
    shipping_fen: int
    total_fen: int
    applied_coupon_ids: list[int]


class Address(Schema):
    name: StrictStr
    phone: StrictStr
    province: StrictStr
    city: StrictStr
    district: StrictStr
    detail: StrictStr


class CheckoutIn(QuoteIn):
    address: Address
    note: StrictStr = ""


class OrderLineOut(Schema):
    id: int
    sku_id: int
    product_id: int | None
    title: str
    specs: dict
    unit_price_fen: int
    quantity: int
    payable_fen: int


class OrderOut(Schema):
    number: str
    order_status: str
    payment_status: str
    fulfilment_status: str
    subtotal_fen: int
    discount_fen: int
    points_used: int
    points_fen: int
    shipping_fen: int
    total_fen: int
    paid_fen: int
    refunded_fen: int
    created_at: datetime
    pay_expires_at: datetime
    paid_at: datetime | None
    carrier: str
    tracking_number: str
    lines: list[OrderLineOut]


class OrderDetail(OrderOut):
    adjustments: list[AdjustmentOut]
    address: dict


class PrepayOut(Schema):
    order_number: str
    prepay_id: str
    pay_params: dict[str, str] = Field(description="传给 wx.requestPayment / for wx.requestPayment")


class AfterSaleLineIn(Schema):
    line_id: StrictInt
    quantity: StrictInt


class AfterSaleIn(Schema):
    kind: StrictStr = Field(description="refund_only | return_refund | exchange")
    reason: StrictStr
    description: StrictStr = ""
    lines: list[AfterSaleLineIn]


class AfterSaleOut(Schema):
    id: int
    kind: str
    status: str
    amount_fen: int
    reason: str


class CouponOut(Schema):
    id: int
    name: str
    value_text: str
    condition_text: str
    validity_text: str
    usable: bool = True
    state: str = ""


class Coupons(Schema):
    mine: list[CouponOut]
    claimable: list[CouponOut]


class ClaimIn(Schema):
    template_id: StrictInt


class ClaimOut(Schema):
    coupon_id: int
    expires_at: datetime


# --- helpers ----------------------------------------------------------------------------------------------------
def _quote_out(quote) -> dict:
    return {
        "lines": [{"sku_id": line.sku_id, "quantity": line.quantity, "unit_price_fen": line.unit_price_fen,
                   "item_price_fen": line.item_price_fen, "price_kind": line.price_kind,
                   "payable_fen": line.payable_fen} for line in quote.lines],
        "adjustments": [{"kind": a.kind, "label_zh": a.label_zh, "label_en": a.label_en, "amount_fen": a.amount_fen}
                        for a in quote.adjustments],
        "subtotal_fen": quote.subtotal_fen, "discount_fen": quote.discount_fen, "points_used": quote.points_used,
        "points_fen": quote.points_fen, "shipping_fen": quote.shipping_fen, "total_fen": quote.total_fen,
        "applied_coupon_ids": list(quote.applied_coupon_ids),
    }


def _order_out(order, *, detail: bool = False) -> dict:
    data = {name: getattr(order, name) for name in (
        "number", "order_status", "payment_status", "fulfilment_status", "subtotal_fen", "discount_fen",
        "points_used", "points_fen", "shipping_fen", "total_fen", "paid_fen", "refunded_fen", "created_at",
        "pay_expires_at", "paid_at", "carrier", "tracking_number")}
    data["lines"] = [{"id": line.pk, "sku_id": line.sku_id, "product_id": line.product_id, "title": line.title,
                      "specs": line.specs, "unit_price_fen": line.unit_price_fen, "quantity": line.quantity,
                      "payable_fen": line.payable_fen} for line in order.lines.all()]
    if detail:
        data["adjustments"] = (order.price_explanation or {}).get("adjustments") or []
        data["address"] = order.address
    return data


def _cart_out(shopper: Shopper) -> dict:
    lines = carts.cart_lines(workspace=shopper.workspace, customer=shopper.customer)
    prices = selectors.item_prices(workspace=shopper.workspace, customer=shopper.customer,
                                   sku_ids=[line.sku.pk for line in lines if line.on_sale])
    return {"count": sum(line.item.quantity for line in lines), "lines": [
        {"sku_id": line.sku.pk, "product_id": line.sku.product_id, "title": line.sku.product.title,
         "specs": line.sku.specs or {}, "quantity": line.item.quantity, "selected": line.item.selected,
         "unit_price_fen": prices.get(line.sku.pk, (line.sku.price_fen, ""))[0], "available": line.available,
         "problem": line.problem} for line in lines]}


def _lines(body) -> list[dict] | None:
    return None if body.lines is None else [line.model_dump() for line in body.lines]


# --- browsing ---------------------------------------------------------------------------------------------------
@router.get("/home", response={200: Home, **ERRORS}, summary="装修首页 / Decorated home page")
def home(request):
    shopper = _shopper(request)
    return selectors.home_page(workspace=shopper.workspace, customer=shopper.customer)


@router.get("/categories", response={200: list[CategoryOut], **ERRORS}, summary="分类 / Categories")
def categories(request):
    return selectors.categories_of(_shopper(request).workspace)


@router.get("/products", response={200: ProductList, **ERRORS}, summary="商品列表与搜索 / Products and search")
def products(request, category_id: int | None = None, q: str = "", page: int = 1):
    shopper = _shopper(request)
    if category_id is not None:
        category_id = parse_id(category_id, what_zh="分类", what_en="category")
    if page < 1 or page > 1000:
        raise SiyuError("invalid_page", "页码无效", "Invalid page number", status=400)
    return selectors.products_page(workspace=shopper.workspace, customer=shopper.customer, category_id=category_id,
                                   query=q, page=page)


@router.get("/products/{product_id}", response={200: ProductOut, **ERRORS}, summary="商品详情 / Product")
def product(request, product_id: int):
    shopper = _shopper(request)
    page = selectors.product_page(workspace=shopper.workspace, customer=shopper.customer,
                                  product_id=parse_id(product_id, what_zh="商品", what_en="product"))
    shopping.product_viewed(shopper=shopper, product_id=page["id"])
    return page


# --- cart -------------------------------------------------------------------------------------------------------
@router.get("/cart", response={200: CartOut, **ERRORS}, summary="购物车 / Cart")
def cart(request):
    return _cart_out(_shopper(request))


@router.post("/cart/items", response={200: CartOut, **ERRORS}, summary="加入购物车 / Add to cart")
def cart_add(request, body: CartAdd):
    shopper = _shopper(request)
    carts.cart_item_add(workspace=shopper.workspace, customer=shopper.customer, sku_id=body.sku_id,
                        quantity=body.quantity)
    return _cart_out(shopper)


@router.put("/cart/items/{sku_id}", response={200: CartOut, **ERRORS}, summary="修改数量 / Set quantity")
def cart_set(request, sku_id: int, body: CartSet):
    shopper = _shopper(request)
    carts.cart_item_set(workspace=shopper.workspace, customer=shopper.customer, sku_id=sku_id,
                        quantity=body.quantity, selected=body.selected)
    return _cart_out(shopper)


@router.delete("/cart/items/{sku_id}", response={200: CartOut, **ERRORS}, summary="移出购物车 / Remove")
def cart_remove(request, sku_id: int):
    shopper = _shopper(request)
    carts.cart_item_remove(workspace=shopper.workspace, customer=shopper.customer, sku_id=sku_id)
    return _cart_out(shopper)


@router.get("/cart/topups", response={200: ProductList, **ERRORS}, summary="凑单推荐 / Top-up suggestions")
def topups(request):
    shopper = _shopper(request)
    cards, _hint = shopping.topups_for(workspace=shopper.workspace, customer=shopper.customer)
    return {"items": cards, "page": 1, "page_size": len(cards), "total": len(cards), "has_next": False}


# --- quote, checkout, pay --------------------------------------------------------------------------------------
@router.post("/quote", response={200: QuoteOut, **ERRORS}, summary="报价(价格说明)/ Quote with explanation")
def quote(request, body: QuoteIn):
    shopper = _shopper(request)
    coupon_ids, points = parse_coupon_ids(body.coupon_ids), parse_points(body.points)
    if body.lines is None:
        if body.flash_sale_id is not None:
            raise SiyuError("invalid_lines", "秒杀商品请直接下单", "A flash-sale quote names its lines", status=400)
        result = shopping.cart_quote(workspace=shopper.workspace, customer=shopper.customer, coupon_ids=coupon_ids,
                                     points=points)
    else:
        result = shopping.lines_quote(shopper=shopper, lines=_lines(body), coupon_ids=coupon_ids, points=points,
                                      flash_sale_id=body.flash_sale_id)
    return _quote_out(result)


@router.post("/checkout", response={201: OrderDetail, **ERRORS}, summary="下单 / Place the order")
def checkout(request, body: CheckoutIn):
    shopper = _shopper(request)
    order = shopping.place_order(shopper=shopper, coupon_ids=body.coupon_ids, points=body.points,
                                 address=body.address.model_dump(), note=body.note, source="miniapp", lines=_lines(body),
                                 flash_sale_id=body.flash_sale_id)
    return Status(201, _order_out(shopping.order_of(shopper=shopper, number=order.number), detail=True))


@router.post("/orders/{number}/prepay", response={200: PrepayOut, **ERRORS},
             summary="支付参数 / WeChat Pay parameters (wx.requestPayment)")
def prepay(request, number: str):
    shopper = _shopper(request)
    order = shopping.order_of(shopper=shopper, number=number)
    result = shopping.prepay(shopper=shopper, order=order)
    return {"order_number": order.number, "prepay_id": result["prepay_id"], "pay_params": result["client_params"]}


# --- orders -----------------------------------------------------------------------------------------------------
@router.get("/orders", response={200: list[OrderOut], **ERRORS}, summary="我的订单 / My orders")
def orders(request):
    return [_order_out(order) for order in shopping.orders_list(shopper=_shopper(request))]


@router.get("/orders/{number}", response={200: OrderDetail, **ERRORS}, summary="订单详情 / Order")
def order(request, number: str):
    return _order_out(shopping.order_of(shopper=_shopper(request), number=number), detail=True)


@router.post("/orders/{number}/cancel", response={200: OrderDetail, **ERRORS}, summary="取消订单 / Cancel")
def cancel(request, number: str):
    shopper = _shopper(request)
    row = shopping.order_of(shopper=shopper, number=number)
    shopping.cancel(shopper=shopper, order=row)
    return _order_out(shopping.order_of(shopper=shopper, number=number), detail=True)


@router.post("/orders/{number}/aftersales", response={201: AfterSaleOut, **ERRORS},
             summary="申请售后 / Ask for after-sales")
def aftersale(request, number: str, body: AfterSaleIn):
    shopper = _shopper(request)
    row = shopping.order_of(shopper=shopper, number=number)
    result = shopping.aftersale(shopper=shopper, order=row, kind=body.kind, reason=body.reason,
                                description=body.description, lines=[line.model_dump() for line in body.lines])
    return Status(201, {"id": result.pk, "kind": result.kind, "status": result.status, "amount_fen": result.amount_fen,
                        "reason": result.reason})


# --- coupons ----------------------------------------------------------------------------------------------------
@router.get("/coupons", response={200: Coupons, **ERRORS}, summary="我的券与可领券 / Coupons")
def coupons(request):
    shopper = _shopper(request)
    return {"mine": selectors.coupons_of(workspace=shopper.workspace, customer=shopper.customer),
            "claimable": selectors.coupons_claimable(workspace=shopper.workspace)}


@router.post("/coupons/claim", response={201: ClaimOut, **ERRORS}, summary="领取优惠券 / Claim a coupon")
def claim(request, body: ClaimIn):
    coupon = shopping.claim(shopper=_shopper(request), template_id=body.template_id)
    return Status(201, {"coupon_id": coupon.pk, "expires_at": coupon.expires_at})


router.add_router("/member", "siyu.commerce.store.member_api.router")  # 会员中心: tier, points, tasks, mall, lottery
