"""Cart services (writes, each in a transaction) and the cart selector.

A line names one SKU of this workspace whose product is on shelf; its quantity is 1..MAX_QUANTITY and never
more than the stock a buyer can take now (on hand minus reserved). Checkout re-checks all of it under the
inventory's own locks; the cart only keeps a consumer from building an order that cannot be placed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum

from siyu.commerce.catalog.models import Sku
from siyu.commerce.store.inputs import MAX_LINES, MAX_QUANTITY, parse_id, parse_quantity
from siyu.commerce.store.models import Cart, CartItem
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Customer

ON_SHELF = "on_shelf"


def sku_available(sku: Sku) -> int:
    return max(0, sku.stock_on_hand - sku.stock_reserved)


def sku_for_sale(*, workspace: Workspace, sku_id, lock: bool = False) -> Sku:
    """The SKU if it belongs to this workspace and is on sale; a foreign SKU is "not found" (never revealed)."""
    sku_id = parse_id(sku_id, what_zh="商品规格", what_en="SKU")
    rows = Sku.objects.select_related("product")
    if lock:
        rows = rows.select_for_update()
    return _for_sale(rows.filter(pk=sku_id, workspace=workspace).first())


def _for_sale(sku: Sku | None) -> Sku:
    """The SKU read for a purchase, refused when missing (404) or not on sale (409)."""
    if sku is None:
        raise SiyuError("sku_not_found", "商品规格不存在", "This SKU does not exist", status=404)
    if sku.product.status != ON_SHELF or not sku.active:
        raise SiyuError("product_off_shelf", f"「{sku.product.title}」已下架", f"“{sku.product.title}” is no longer on sale",
                        status=409, details={"sku_id": sku.pk})
    return sku


def skus_for_sale(*, workspace: Workspace, sku_ids) -> dict[int, Sku]:
    """``sku_for_sale`` for several SKUs in one query ({id: SKU with its product}); the first refused id, in the
    order given, raises what ``sku_for_sale`` would."""
    ids = [parse_id(sku_id, what_zh="商品规格", what_en="SKU") for sku_id in sku_ids]
    rows = {sku.pk: sku for sku in Sku.objects.select_related("product").filter(workspace=workspace, pk__in=ids)}
    for sku_id in ids:
        _for_sale(rows.get(sku_id))
    return rows


def check_stock(sku: Sku, quantity: int) -> None:
    available = sku_available(sku)
    if quantity > available:
        raise SiyuError("out_of_stock", f"「{sku.product.title}」库存不足(剩余 {available} 件)",
                        f"Not enough stock for “{sku.product.title}” ({available} left)", status=409,
                        details={"sku_id": sku.pk, "available": available})


def _cart(workspace: Workspace, customer: Customer, *, lock: bool) -> Cart:
    cart, _ = Cart.objects.get_or_create(workspace=workspace, customer=customer)
    if lock:
        cart = Cart.objects.select_for_update().get(pk=cart.pk)
    return cart


@transaction.atomic
def cart_item_add(*, workspace: Workspace, customer: Customer, sku_id, quantity) -> CartItem:
    """Put ``quantity`` more of a SKU in the cart (a new line, or added to the existing one)."""
    quantity = parse_quantity(quantity)
    sku = sku_for_sale(workspace=workspace, sku_id=sku_id)
    cart = _cart(workspace, customer, lock=True)
    item = CartItem.objects.filter(cart=cart, sku=sku).first()
    total = quantity + (item.quantity if item else 0)
    if total > MAX_QUANTITY:
        raise SiyuError("quantity_too_large", f"单件商品最多购买 {MAX_QUANTITY} 件",
                        f"At most {MAX_QUANTITY} of one item per order", status=400)
    check_stock(sku, total)
    if item is None:
        if CartItem.objects.filter(cart=cart).count() >= MAX_LINES:
            raise SiyuError("cart_full", f"购物车最多 {MAX_LINES} 种商品", f"The cart holds at most {MAX_LINES} items",
                            status=409)
        return CartItem.objects.create(cart=cart, sku=sku, quantity=total)
    item.quantity, item.selected = total, True
    item.save(update_fields=["quantity", "selected", "updated_at"])
    return item


@transaction.atomic
def cart_item_set(*, workspace: Workspace, customer: Customer, sku_id, quantity, selected: bool | None = None) -> CartItem | None:
    """Set a line's quantity (0 removes it) and optionally whether it is selected for checkout."""
    quantity = parse_quantity(quantity, allow_zero=True)
    sku_id = parse_id(sku_id, what_zh="商品规格", what_en="SKU")
    cart = _cart(workspace, customer, lock=True)
    item = CartItem.objects.select_related("sku__product").filter(cart=cart, sku_id=sku_id).first()
    if item is None:
        raise SiyuError("cart_item_not_found", "购物车中没有这件商品", "This item is not in the cart", status=404)
    if quantity == 0:
        item.delete()
        return None
    if quantity > item.quantity:  # lowering a quantity is always allowed, even for a product now off shelf
        sku = sku_for_sale(workspace=workspace, sku_id=sku_id)
        check_stock(sku, quantity)
    item.quantity = quantity
    if selected is not None:
        item.selected = bool(selected)
    item.save(update_fields=["quantity", "selected", "updated_at"])
    return item


@transaction.atomic
def cart_item_remove(*, workspace: Workspace, customer: Customer, sku_id) -> bool:
    sku_id = parse_id(sku_id, what_zh="商品规格", what_en="SKU")
    deleted, _ = CartItem.objects.filter(cart__workspace=workspace, cart__customer=customer, sku_id=sku_id).delete()
    if not deleted:
        raise SiyuError("cart_item_not_found", "购物车中没有这件商品", "This item is not in the cart", status=404)
    return True


@transaction.atomic
def cart_lines_remove(*, workspace: Workspace, customer: Customer, sku_ids) -> int:
    """After an order is placed: drop the lines it bought."""
    deleted, _ = CartItem.objects.filter(cart__workspace=workspace, cart__customer=customer,
                                         sku_id__in=list(sku_ids)).delete()
    return deleted


@dataclass
class CartLine:
    item: CartItem
    sku: Sku
    available: int
    on_sale: bool
    price_fen: int = 0  # the engine's unit price, filled in by the page that shows it
    image_url: str = ""

    @property
    def spec_text(self) -> str:
        return " / ".join(f"{key}:{value}" for key, value in (self.sku.specs or {}).items())

    @property
    def problem(self) -> str:
        if not self.on_sale:
            return "off_shelf"
        if self.item.quantity > self.available:
            return "out_of_stock"
        return ""


def cart_lines(*, workspace: Workspace, customer: Customer) -> list[CartLine]:
    items = (CartItem.objects.select_related("sku__product")
             .filter(cart__workspace=workspace, cart__customer=customer).order_by("added_at", "pk"))
    return [CartLine(item=item, sku=item.sku, available=sku_available(item.sku),
                     on_sale=item.sku.product.status == ON_SHELF and item.sku.active)
            for item in items]


def cart_count(*, workspace: Workspace, customer: Customer) -> int:
    """Units in the cart, every line counted (the badge on the store's tab bar)."""
    total = (CartItem.objects.filter(cart__workspace=workspace, cart__customer=customer)
             .aggregate(units=Sum("quantity"))["units"])
    return int(total or 0)


def cart_checkout_lines(*, workspace: Workspace, customer: Customer) -> list[tuple[int, int]]:
    """The selected lines to price or buy; refuses a cart with nothing selected or a line that cannot be bought."""
    lines = [line for line in cart_lines(workspace=workspace, customer=customer) if line.item.selected]
    if not lines:
        raise SiyuError("cart_empty", "购物车里还没有选中的商品", "Nothing in the cart is selected", status=400)
    for line in lines:
        if line.problem == "off_shelf":
            raise SiyuError("product_off_shelf", f"「{line.sku.product.title}」已下架,请从购物车移除",
                            f"“{line.sku.product.title}” is no longer on sale; remove it from the cart", status=409,
                            details={"sku_id": line.sku.pk})
        if line.problem == "out_of_stock":
            raise SiyuError("out_of_stock", f"「{line.sku.product.title}」库存不足", f"Not enough stock for "
                            f"“{line.sku.product.title}”", status=409, details={"sku_id": line.sku.pk})
    return [(line.sku.pk, line.item.quantity) for line in lines]
