"""The H5 store's pages (/shop/<workspace slug>/…): parse, identify the shopper, call a service, render.

Every page needs a shopper of this workspace; a browser without one is sent through the 公众号's H5
OAuth and comes back to the same page. Writes are POST forms with Django's CSRF token (the session is a
cookie the browser sends on its own). A refused request renders the error page with the error's status,
code and both languages; nothing was changed by it.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.commerce.store import cart as carts
from siyu.commerce.store import selectors, shopping
from siyu.commerce.store.identity import oauth_url, shopper_at
from siyu.commerce.store.inputs import (
    ADDRESS_FIELDS,
    parse_coupon_ids,
    parse_id,
    parse_points,
    parse_quantity,
)
from siyu.core.errors import SiyuError


def _error_page(request, error: SiyuError, workspace=None) -> HttpResponse:
    return render(request, "store/error.html", {"error": error, "status": error.status, "workspace": workspace},
                  status=error.status)


def store_page(view):
    """Resolve /shop/<slug>/, require this workspace's shopper (OAuth for a GET without one), map errors."""

    @wraps(view)
    def wrapped(request, slug: str, *args, **kwargs):
        workspace = None
        try:
            workspace, shopper = shopper_at(request, slug)
            if shopper is None:
                if request.method in ("GET", "HEAD"):
                    return HttpResponseRedirect(oauth_url(workspace, request.get_full_path()))
                raise SiyuError("consumer_unauthenticated", "请先登录(登录已过期),请重新打开页面",
                                "Please log in again (the session is missing or expired)", status=401)
            request.shopper = shopper
            response = view(request, shopper, *args, **kwargs)
        except SiyuError as error:
            response = _error_page(request, error, workspace)
        patch_cache_control(response, private=True, no_store=True)  # pages are per customer
        return response

    return wrapped


def _context(request, shopper, **extra) -> dict:
    count = carts.cart_count(workspace=shopper.workspace, customer=shopper.customer)
    return {"workspace": shopper.workspace, "shopper": shopper, "cart_count": count, **extra}


# --- browsing ---------------------------------------------------------------------------------------------
@require_GET
@store_page
def home(request, shopper):
    data = selectors.home_page(workspace=shopper.workspace, customer=shopper.customer)
    sale_ids = [zone["flash_sale_id"] for zone in data["zones"] if zone.get("flash_sale_id")]
    if sale_ids:
        offers = {offer["id"]: offer for offer in selectors.flash_offers(
            workspace=shopper.workspace, customer=shopper.customer, sale_ids=sale_ids)}
        for zone in data["zones"]:
            zone["flash"] = offers.get(zone.get("flash_sale_id"))
    return render(request, "store/home.html", _context(request, shopper, tab="home", **data))


@require_GET
@store_page
def categories(request, shopper):
    return render(request, "store/categories.html", _context(
        request, shopper, tab="categories", categories=selectors.categories_of(shopper.workspace)))


def _page_number(request) -> int:
    raw = request.GET.get("page") or "1"
    return parse_id(raw, what_zh="页码", what_en="page") if raw != "1" else 1


@require_GET
@store_page
def category(request, shopper, category_id: int):
    row = selectors.category_for(workspace=shopper.workspace, category_id=category_id)
    result = selectors.products_page(workspace=shopper.workspace, customer=shopper.customer, category_id=row.pk,
                                     page=_page_number(request))
    return render(request, "store/products.html", _context(request, shopper, tab="categories", heading=row.name,
                                                            products=result["items"], q=""))


@require_GET
@store_page
def search(request, shopper):
    query = (request.GET.get("q") or "").strip()[: selectors.MAX_QUERY]
    items = []
    if query:
        items = selectors.products_page(workspace=shopper.workspace, customer=shopper.customer, query=query,
                                        page=_page_number(request))["items"]
    return render(request, "store/products.html", _context(request, shopper, tab="home", heading=query or _("搜索"),
                                                            products=items, q=query))


PRICE_NOTES = {"member_price": "会员价", "limited_time": "限时折扣价", "flash": "秒杀价"}


@require_GET
@store_page
def product(request, shopper, product_id: int):
    page = selectors.product_page(workspace=shopper.workspace, customer=shopper.customer, product_id=product_id)
    shopping.product_viewed(shopper=shopper, product_id=page["id"])
    total = sum(row["available"] for row in page["skus"])
    return render(request, "store/product.html", _context(
        request, shopper, product={"id": page["id"], "name": page["title"], "subtitle": page["subtitle"],
                                   "image_url": page["image_url"]},
        description_html=page["description_html"], specs=page["specs"], skus=page["skus"],
        price_fen=page["price_fen"], list_price_fen=page["list_price_fen"],
        price_note=PRICE_NOTES.get(page["price_kind"], ""),
        flash_offers=selectors.flash_offers(workspace=shopper.workspace, customer=shopper.customer,
                                            sku_ids=[row["id"] for row in page["skus"]]),
        stock_state="in_stock" if total > 0 else "sold_out", stock_label="请选择规格" if total > 0 else "已售罄"))


# --- cart ---------------------------------------------------------------------------------------------------
def _line_view(workspace, lines, prices) -> list:
    result = []
    for line in lines:
        line.price_fen = prices.get(line.sku.pk, (line.sku.price_fen, "sale"))[0]
        line.image_url = ""
        result.append(line)
    return result


@require_GET
@store_page
def cart(request, shopper):
    lines = carts.cart_lines(workspace=shopper.workspace, customer=shopper.customer)
    prices = selectors.item_prices(workspace=shopper.workspace, customer=shopper.customer,
                                   sku_ids=[line.sku.pk for line in lines])
    quote = quote_error = None
    topups, hint = [], ""
    if lines:
        try:
            quote = shopping.cart_quote(workspace=shopper.workspace, customer=shopper.customer)
        except SiyuError as error:
            quote_error = error
        topups, hint = shopping.topups_for(workspace=shopper.workspace, customer=shopper.customer)
    return render(request, "store/cart.html", _context(
        request, shopper, tab="cart", lines=_line_view(shopper.workspace, lines, prices), quote=quote,
        quote_error=quote_error, topups=topups, topup_hint=hint))


@require_POST
@store_page
def cart_add(request, shopper):
    sku_id = request.POST.get("sku_id")
    if not sku_id:
        raise SiyuError("sku_required", "请先选择规格", "Choose a variant first", status=400)
    if request.POST.get("then") == "buy":  # 立即购买: a checkout of just this SKU; the cart is left as it is
        sku, quantity = shopping.direct_line(shopper=shopper, sku_id=sku_id, quantity=request.POST.get("quantity"))
        return HttpResponseRedirect(reverse("store:buy_now", kwargs={"slug": shopper.workspace.slug})
                                    + "?" + urlencode({"sku_id": sku.pk, "quantity": quantity}))
    carts.cart_item_add(workspace=shopper.workspace, customer=shopper.customer, sku_id=sku_id,
                        quantity=request.POST.get("quantity", "1"))
    messages.success(request, _("已加入购物车"))
    product_id = request.POST.get("product_id")
    if product_id:
        parse_id(product_id)
        return HttpResponseRedirect(reverse("store:product", kwargs={"slug": shopper.workspace.slug,
                                                                     "product_id": int(product_id)}))
    return HttpResponseRedirect(reverse("store:cart", kwargs={"slug": shopper.workspace.slug}))


@require_POST
@store_page
def cart_update(request, shopper):
    carts.cart_item_set(workspace=shopper.workspace, customer=shopper.customer, sku_id=request.POST.get("sku_id"),
                        quantity=request.POST.get("quantity"))
    return HttpResponseRedirect(reverse("store:cart", kwargs={"slug": shopper.workspace.slug}))


@require_POST
@store_page
def cart_remove(request, shopper):
    carts.cart_item_remove(workspace=shopper.workspace, customer=shopper.customer, sku_id=request.POST.get("sku_id"))
    return HttpResponseRedirect(reverse("store:cart", kwargs={"slug": shopper.workspace.slug}))


# --- checkout and pay ---------------------------------------------------------------------------------------
class Direct:
    """A checkout of one line beside the cart: 立即购买 (a SKU) or 立即抢购 (a flash sale's SKU)."""

    def __init__(self, *, sku, quantity: int, flash=None):
        self.sku, self.quantity, self.flash = sku, quantity, flash

    @property
    def lines(self) -> list[dict]:
        return [{"sku_id": self.sku.pk, "quantity": self.quantity}]

    @property
    def flash_sale_id(self):
        return self.flash.pk if self.flash is not None else None

    @property
    def fields(self) -> dict:
        """What the page's forms carry along (the quote form re-asks by GET, the order form posts)."""
        return {"quantity": self.quantity} if self.flash is not None else {"sku_id": self.sku.pk,
                                                                              "quantity": self.quantity}

    def display(self) -> list[carts.CartLine]:
        item = carts.CartItem(sku=self.sku, quantity=self.quantity, selected=True)
        return [carts.CartLine(item=item, sku=self.sku, available=carts.sku_available(self.sku), on_sale=True)]


def _checkout(request, shopper, direct: Direct | None, url: str):
    source = request.POST if request.method == "POST" else request.GET
    coupon_ids = parse_coupon_ids(source.getlist("coupon"))
    points = parse_points(source.get("points"))
    address = {name: (request.POST.get(name) or "").strip() for name in ADDRESS_FIELDS}
    if request.method == "POST":
        try:
            if direct is None:
                order = shopping.place_order(shopper=shopper, coupon_ids=coupon_ids, points=points,
                                             address=dict(request.POST.items()), note=request.POST.get("note"),
                                             source="h5")
            else:
                order = shopping.place_order(shopper=shopper, coupon_ids=coupon_ids, points=points,
                                             address=dict(request.POST.items()), note=request.POST.get("note"),
                                             source="h5", lines=direct.lines, flash_sale_id=direct.flash_sale_id,
                                             keep_cart=True)
        except SiyuError as error:
            if error.status >= 500:
                raise
            messages.error(request, f"{error.message_zh}({error.code})")
            response = _checkout_page(request, shopper, coupon_ids, points, address, request.POST.get("note", ""),
                                      direct, url)
            response.status_code = error.status
            return response
        return HttpResponseRedirect(reverse("store:order_pay_start", kwargs={"slug": shopper.workspace.slug,
                                                                             "number": order.number}))
    return _checkout_page(request, shopper, coupon_ids, points, address, "", direct, url)


@require_http_methods(["GET", "POST"])
@store_page
def checkout(request, shopper):
    return _checkout(request, shopper, None, reverse("store:checkout", kwargs={"slug": shopper.workspace.slug}))


@require_http_methods(["GET", "POST"])
@store_page
def buy_now(request, shopper):
    """立即购买: check out one SKU and quantity (from the product page) without touching the cart."""
    source = request.POST if request.method == "POST" else request.GET
    sku, quantity = shopping.direct_line(shopper=shopper, sku_id=source.get("sku_id"), quantity=source.get("quantity"))
    return _checkout(request, shopper, Direct(sku=sku, quantity=quantity),
                     reverse("store:buy_now", kwargs={"slug": shopper.workspace.slug}))


@require_http_methods(["GET", "POST"])
@store_page
def flash_buy(request, shopper, sale_id: int):
    """立即抢购: check out just the flash sale's line, within the per-customer limit, at the flash price."""
    source = request.POST if request.method == "POST" else request.GET
    sale, sku, quantity = shopping.flash_line(shopper=shopper, sale_id=sale_id, quantity=source.get("quantity"))
    return _checkout(request, shopper, Direct(sku=sku, quantity=quantity, flash=sale),
                     reverse("store:flash_buy", kwargs={"slug": shopper.workspace.slug, "sale_id": sale.pk}))


def _checkout_page(request, shopper, coupon_ids, points, address, note, direct=None, url="") -> HttpResponse:
    if direct is None:
        lines = [line for line in carts.cart_lines(workspace=shopper.workspace, customer=shopper.customer)
                 if line.item.selected]
        if not lines:
            raise SiyuError("cart_empty", "购物车里还没有选中的商品", "Nothing in the cart is selected", status=400)
    else:
        lines = direct.display()
    quote = quote_error = None
    try:
        if direct is None:
            quote = shopping.cart_quote(workspace=shopper.workspace, customer=shopper.customer,
                                        coupon_ids=coupon_ids, points=points)
        else:
            quote = shopping.lines_quote(shopper=shopper, lines=direct.lines, coupon_ids=coupon_ids, points=points,
                                         flash_sale_id=direct.flash_sale_id)
    except SiyuError as error:
        quote_error = error
    if not any(address.values()):
        address = shopping.last_address(shopper=shopper)
    return render(request, "store/checkout.html", _context(
        request, shopper, lines=_line_view(shopper.workspace, lines, {}), quote=quote, quote_error=quote_error,
        coupons=selectors.coupons_of(workspace=shopper.workspace, customer=shopper.customer, usable_only=True),
        coupon_ids=list(coupon_ids), points=points, points_balance=shopping.points_of(shopper.customer),
        address=address, note=note, place_url=url, direct_fields=direct.fields if direct else {},
        flash=direct.flash if direct else None, back_url=(
            reverse("store:product", kwargs={"slug": shopper.workspace.slug, "product_id": direct.sku.product_id})
            if direct else reverse("store:cart", kwargs={"slug": shopper.workspace.slug}))))


@require_GET
@store_page
def order_pay_start(request, shopper, number: str):
    """Right after placing an order: the pay page at once (prepay), as a shop in WeChat does."""
    return _pay_page(request, shopper, number)


@require_POST
@store_page
def pay(request, shopper, number: str):
    return _pay_page(request, shopper, number)


def _pay_page(request, shopper, number: str) -> HttpResponse:
    order = shopping.order_of(shopper=shopper, number=number)
    prepay = shopping.prepay(shopper=shopper, order=order)
    simulator = bool(settings.SIYU_WECHAT_BASE_URL)
    # back on the order page, it refreshes itself a few times until WeChat's notification has marked it paid
    done_url = reverse("store:order", kwargs={"slug": shopper.workspace.slug, "number": order.number}) + "?paying=1"
    config = {"mode": "simulator" if simulator else "jsapi", "params": prepay["client_params"], "done_url": done_url}
    return render(request, "store/pay.html", _context(
        request, shopper, order=order, mode=config["mode"], pay_config=config, prepay_id=prepay["prepay_id"]))


@require_POST
@store_page
def simulate_pay(request, shopper, number: str):
    """Simulator mode only: the consumer confirms in the simulated WeChat cashier."""
    order = shopping.order_of(shopper=shopper, number=number)
    shopping.simulated_pay(shopper=shopper, order=order, prepay_id=request.POST.get("prepay_id"))
    return HttpResponseRedirect(reverse("store:order", kwargs={"slug": shopper.workspace.slug, "number": order.number})
                                + "?paying=1")


# --- orders, after-sales, coupons ---------------------------------------------------------------------------
@require_GET
@store_page
def orders(request, shopper):
    return render(request, "store/orders.html", _context(
        request, shopper, tab="orders", orders=shopping.orders_list(shopper=shopper)))


@require_GET
@store_page
def order(request, shopper, number: str):
    row = shopping.order_of(shopper=shopper, number=number)
    explanation = row.price_explanation or {}
    return render(request, "store/order.html", _context(
        request, shopper, tab="orders", order=row, adjustments=explanation.get("adjustments") or [],
        address=shopping.order_address(row), aftersales=list(row.aftersales.order_by("-id")),
        can_pay=shopping.can_pay(row), can_aftersale=shopping.can_request_aftersale(row),
        awaiting_payment=shopping.can_pay(row) and request.GET.get("paying") == "1"))


@require_POST
@store_page
def cancel(request, shopper, number: str):
    row = shopping.order_of(shopper=shopper, number=number)
    shopping.cancel(shopper=shopper, order=row)
    messages.success(request, _("订单已取消"))
    return HttpResponseRedirect(reverse("store:order", kwargs={"slug": shopper.workspace.slug, "number": number}))


@require_http_methods(["GET", "POST"])
@store_page
def aftersale(request, shopper, number: str):
    row = shopping.order_of(shopper=shopper, number=number)
    if request.method == "POST":
        lines = []
        for line in row.lines.all():
            raw = request.POST.get(f"qty_{line.pk}")
            if raw not in (None, "", "0"):
                lines.append({"line_id": line.pk, "quantity": parse_quantity(raw)})
        shopping.aftersale(shopper=shopper, order=row, kind=request.POST.get("kind"), lines=lines,
                           reason=request.POST.get("reason"), description=request.POST.get("description"))
        messages.success(request, _("售后申请已提交,请等待商家审核"))
        return HttpResponseRedirect(reverse("store:order", kwargs={"slug": shopper.workspace.slug, "number": number}))
    if not shopping.can_request_aftersale(row):
        raise SiyuError("aftersale_not_allowed", "该订单当前不能申请售后", "This order cannot have an after-sales request now",
                        status=409)
    return render(request, "store/aftersale.html", _context(
        request, shopper, order=row, kinds=shopping.AFTERSALE_KINDS, reasons=shopping.AFTERSALE_REASONS))


@require_GET
@store_page
def coupons(request, shopper):
    return render(request, "store/coupons.html", _context(
        request, shopper, tab="orders", claimable=selectors.coupons_claimable(workspace=shopper.workspace),
        mine=selectors.coupons_of(workspace=shopper.workspace, customer=shopper.customer)))


@require_POST
@store_page
def coupon_claim(request, shopper):
    shopping.claim(shopper=shopper, template_id=request.POST.get("template_id"))
    messages.success(request, _("领取成功"))
    return HttpResponseRedirect(reverse("store:coupons", kwargs={"slug": shopper.workspace.slug}))
