"""Console pages for promotions and coupons: roles, create / edit / end, issue, bad input refused unchanged."""

from __future__ import annotations

import pytest

from siyu.commerce.promotions.models import (
    Coupon,
    CouponTemplate,
    FlashSale,
    FullReductionRule,
    LimitedTimeDiscount,
)
from siyu.commerce.promotions.services import coupon_claim, flash_commit, flash_reserve
from siyu.customers.models import CustomerTag, Tag, TagGroup
from tests.commerce.catalog_fixtures import make_category, make_product
from tests.commerce.promotions_fixtures import make_coupon_template, make_customer, make_flash_sale

pytestmark = pytest.mark.django_db

PAGES = ["/commerce/promotions/", "/commerce/coupons/"]
WINDOW = {"starts_at": "2026-01-01T10:00", "ends_at": "2036-01-01T10:00"}


def snapshot():
    return (list(FullReductionRule.objects.values()), list(LimitedTimeDiscount.objects.values()),
            list(FlashSale.objects.values()), list(CouponTemplate.objects.values()), list(Coupon.objects.values()))


def test_pages_by_role(clients, workspace):
    _, skus = make_product(workspace)
    sale = make_flash_sale(workspace, skus[0], price_fen=990, stock=5, name="午间秒杀")
    customer = make_customer(workspace)
    flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=1, ref="R1")
    flash_commit(ref="R1")
    template = make_coupon_template(workspace, name="五元券", amount_fen=500)
    coupon_claim(workspace=workspace, customer=customer, template_id=template.id)
    for role in ("admin", "operator", "analyst"):
        for url in PAGES:
            response = clients[role].get(url)
            assert response.status_code == 200, (role, url)
    body = clients["analyst"].get("/commerce/promotions/").content.decode()
    assert "午间秒杀" in body and "<strong>1</strong> / 0 / 4 / 5" in body
    assert "commerce/promotions/save/" not in body  # read-only: no forms
    coupons = clients["admin"].get("/commerce/coupons/").content.decode()
    assert "五元券" in coupons and "coupon-bar" in coupons
    for url in PAGES:
        assert clients["service"].get(url).status_code == 403


def test_create_edit_and_end_full_reduction(clients, workspace):
    before = snapshot()
    response = clients["analyst"].post("/commerce/promotions/save/", {"kind": "full_reduction", "name": "x",
                                                                      "tiers": "满100减10", **WINDOW})
    assert response.status_code == 403 and snapshot() == before
    response = clients["operator"].post("/commerce/promotions/save/", {
        "kind": "full_reduction", "name": "双十一满减", "tiers": "满200减25, 100-10", "scope": "all", **WINDOW})
    assert response.status_code == 302
    rule = FullReductionRule.objects.get()
    assert rule.tiers == [[10000, 1000], [20000, 2500]]
    clients["operator"].post("/commerce/promotions/save/", {
        "kind": "full_reduction", "id": str(rule.pk), "name": "双十一满减", "tiers": "满300减50", **WINDOW})
    rule.refresh_from_db()
    assert rule.tiers == [[30000, 5000]]
    assert "满300减50" in clients["operator"].get(f"/commerce/promotions/?rule={rule.pk}").content.decode()
    clients["admin"].post("/commerce/promotions/end/", {"kind": "full_reduction", "id": str(rule.pk)})
    rule.refresh_from_db()
    assert rule.status == "ended"
    response = clients["admin"].post("/commerce/promotions/save/", {
        "kind": "full_reduction", "id": str(rule.pk), "name": "改", "tiers": "满1减0.5", **WINDOW})
    assert response.status_code == 409


@pytest.mark.parametrize("post", [
    {"kind": "full_reduction", "name": "a", "tiers": "满100减100", **WINDOW},
    {"kind": "full_reduction", "name": "a", "tiers": "abc", **WINDOW},
    {"kind": "full_reduction", "name": "a", "tiers": "满100减10", "starts_at": "2030-01-01T10:00",
     "ends_at": "2029-01-01T10:00"},
    {"kind": "full_reduction", "name": "", "tiers": "满100减10", **WINDOW},
    {"kind": "full_reduction", "name": "a", "tiers": "满100减10", "scope": "categories", **WINDOW},
    {"kind": "limited_discount", "name": "a", "percent_off": "0", **WINDOW},
    {"kind": "limited_discount", "name": "a", "percent_off": "120", "product_ids": ["999999"], **WINDOW},
    {"kind": "flash_sale", "name": "a", "sku_id": "999999", "price": "1", "stock_total": "5", **WINDOW},
    {"kind": "flash_sale", "name": "a", "sku_id": "SKU", "price": "-1", "stock_total": "5", **WINDOW},
    {"kind": "bogus", **WINDOW},
    {"kind": "full_reduction", "name": "a", "tiers": "满100减10", "starts_at": "tomorrow", "ends_at": "x"},
])
def test_bad_promotion_input_changes_nothing(clients, workspace, post):
    before = snapshot()
    response = clients["operator"].post("/commerce/promotions/save/", post)
    assert response.status_code in (400, 404)
    assert snapshot() == before


def test_limited_discount_and_flash_sale_forms(clients, workspace):
    product, skus = make_product(workspace, price_fen=10000)
    response = clients["operator"].post("/commerce/promotions/save/", {
        "kind": "limited_discount", "name": "周末8折", "percent_off": "20", "product_ids": [str(product.pk)], **WINDOW})
    assert response.status_code == 302
    assert LimitedTimeDiscount.objects.get().percent_off == 20
    before = snapshot()
    response = clients["operator"].post("/commerce/promotions/save/", {
        "kind": "flash_sale", "name": "秒杀", "sku_id": str(skus[0].pk), "price": "150", "stock_total": "5", **WINDOW})
    assert response.status_code == 400 and snapshot() == before  # flash price above the sale price
    clients["operator"].post("/commerce/promotions/save/", {
        "kind": "flash_sale", "name": "秒杀", "sku_id": str(skus[0].pk), "price": "9.9", "stock_total": "5",
        "per_customer_limit": "2", **WINDOW})
    sale = FlashSale.objects.get()
    assert (sale.price_fen, sale.stock_total, sale.stock_left, sale.per_customer_limit) == (990, 5, 5, 2)
    customers = [make_customer(workspace) for _ in range(3)]
    for i, customer in enumerate(customers):
        flash_reserve(workspace=workspace, customer=customer, sale_id=sale.id, qty=1, ref=f"F{i}")
    # Shrinking the stock below what is held is refused; shrinking to it is fine.
    response = clients["operator"].post("/commerce/promotions/save/", {
        "kind": "flash_sale", "id": str(sale.pk), "name": "秒杀", "sku_id": str(skus[0].pk), "price": "9.9",
        "stock_total": "2", **WINDOW})
    assert response.status_code == 409
    clients["operator"].post("/commerce/promotions/save/", {
        "kind": "flash_sale", "id": str(sale.pk), "name": "秒杀", "sku_id": str(skus[0].pk), "price": "9.9",
        "stock_total": "3", **WINDOW})
    sale.refresh_from_db()
    assert (sale.stock_total, sale.stock_left) == (3, 0)


def test_coupon_templates_and_issue_to_a_tag(clients, workspace):
    category = make_category(workspace, name="茶")
    response = clients["operator"].post("/commerce/coupons/save/", {
        "name": "满99减10", "coupon_kind": "threshold", "threshold": "99", "amount": "10", "valid_days": "7",
        "total_quantity": "100", "per_customer_limit": "1", "scope": "categories",
        "category_ids": [str(category.pk)]})
    assert response.status_code == 302
    template = CouponTemplate.objects.get()
    assert (template.threshold_fen, template.amount_fen, template.scope_ids) == (9900, 1000, [category.pk])
    group = TagGroup.objects.create(workspace=workspace, name="会员")
    tag = Tag.objects.create(workspace=workspace, group=group, name="老客")
    tagged = [make_customer(workspace) for _ in range(3)]
    for customer in tagged:
        CustomerTag.objects.create(workspace=workspace, customer=customer, tag=tag)
    response = clients["operator"].post("/commerce/coupons/issue/", {"template_id": str(template.pk),
                                                                     "tag_id": str(tag.pk)})
    assert response.status_code == 302
    assert Coupon.objects.filter(template=template).count() == 3
    other = make_customer(workspace)
    clients["operator"].post("/commerce/coupons/issue/", {"template_id": str(template.pk),
                                                          "customer_ids": f"{other.pk}, {tagged[0].pk}"})
    assert Coupon.objects.filter(template=template).count() == 4  # tagged[0] already at the limit
    page = clients["analyst"].get("/commerce/coupons/").content.decode()
    assert "满99减10" in page and "4 / 100" in page


@pytest.mark.parametrize("post", [
    {"name": "a", "coupon_kind": "threshold", "threshold": "5", "amount": "10", "valid_days": "7"},
    {"name": "a", "coupon_kind": "percent", "percent_off": "0", "valid_days": "7"},
    {"name": "a", "coupon_kind": "no_threshold", "amount": "-3", "valid_days": "7"},
    {"name": "a", "coupon_kind": "no_threshold", "amount": "3", "valid_days": "0"},
    {"name": "a", "coupon_kind": "no_threshold", "amount": "3", "valid_days": "0", "valid_until": "2001-01-01T00:00"},
    {"name": "a", "coupon_kind": "gift", "amount": "3", "valid_days": "7"},
    {"name": "a", "coupon_kind": "no_threshold", "amount": "3", "valid_days": "x"},
    {"name": "a", "coupon_kind": "no_threshold", "amount": "3", "valid_days": "7", "per_customer_limit": "0"},
])
def test_bad_coupon_input_changes_nothing(clients, workspace, post):
    before = snapshot()
    response = clients["operator"].post("/commerce/coupons/save/", post)
    assert response.status_code == 400
    assert snapshot() == before


def test_issue_refusals_change_nothing(clients, workspace, other_workspace):
    template = make_coupon_template(workspace)
    foreign_template = make_coupon_template(other_workspace)
    customer = make_customer(workspace)
    before = snapshot()
    for post, status in (({"template_id": str(template.pk), "customer_ids": "abc"}, 400),
                         ({"template_id": str(template.pk), "customer_ids": ""}, 400),
                         ({"template_id": str(foreign_template.pk), "customer_ids": str(customer.pk)}, 404),
                         ({"template_id": str(template.pk), "tag_id": "999999"}, 404)):
        assert clients["operator"].post("/commerce/coupons/issue/", post).status_code == status
    assert clients["analyst"].post("/commerce/coupons/issue/", {"template_id": str(template.pk),
                                                                "customer_ids": str(customer.pk)}).status_code == 403
    assert clients["service"].post("/commerce/coupons/save/", {"name": "x"}).status_code == 403
    assert snapshot() == before
