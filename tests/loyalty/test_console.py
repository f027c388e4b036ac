"""Console 积分与会员: who sees and changes what, tier configuration, ledger search, audited adjustments."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from siyu.core.models import AuditLog
from siyu.loyalty.models import PointsTransaction, TierLevel
from siyu.loyalty.points import points_balance, points_earn, points_spend
from siyu.loyalty.tiers import growth_record, tier_evaluate, tier_levels
from tests.loyalty.factories import make_customer

pytestmark = pytest.mark.django_db

PAGE = "console:loyalty_members"


def _tier_form(**overrides):
    form = {"basis": "growth", "window_days": "365"}
    for code, growth, spend, discount in (("normal", None, None, "0"), ("silver", "1000", "1000.00", "2"),
                                          ("gold", "5000", "5000", "5"), ("diamond", "20000", "20000", "10")):
        form[f"{code}_discount_percent"] = discount
        if growth is not None:
            form[f"{code}_growth_threshold"] = growth
            form[f"{code}_spend_threshold"] = spend
    form["gold_free_shipping"] = "on"
    form.update(overrides)
    return form


def test_roles_see_the_page_service_gets_403(clients):
    for role in ("admin", "operator", "analyst"):
        assert clients[role].get(reverse(PAGE)).status_code == 200
    response = clients["service"].get(reverse(PAGE))
    assert response.status_code == 403


def test_page_shows_distribution_monthly_chart_and_ledger(workspace, clients):
    rich, plain = make_customer(workspace), make_customer(workspace)
    make_customer(workspace)
    growth_record(workspace=workspace, customer=rich, source="order_paid", ref="o1", spend_fen=600_000)
    tier_evaluate(customer=rich)
    points_earn(workspace=workspace, customer=plain, amount=300, reason="checkin", ref="c1")
    points_spend(workspace=workspace, customer=plain, amount=120, ref="s1", reason="exchange")
    response = clients["analyst"].get(reverse(PAGE), {"customer": str(plain.pk)})
    html = response.content.decode()
    assert 'data-tier-count="gold">1<' in html and 'data-tier-count="normal">2<' in html
    charts = json.loads(html.split('id="chart-data" type="application/json">')[1].split("</script>")[0])
    assert charts["tier_distribution"]["series"][0]["y"] == [2, 0, 1, 0]
    assert charts["points_monthly"]["series"][0]["y"][-1] == 300
    assert charts["points_monthly"]["series"][1]["y"][-1] == 120
    assert "data-balance>180<" in html and 'id="adjust-form"' not in html  # analysts don't adjust
    assert html.count("data-tx=") == 2
    assert 'data-kpi="issued">300<' in html and 'data-kpi="redeemed">120<' in html
    assert 'data-kpi="outstanding">180<' in html


def test_ledger_lookup_bad_input_is_explained(workspace, other_workspace, clients):
    foreign = make_customer(other_workspace)
    for value in ("abc", str(foreign.pk), "99999999"):
        response = clients["admin"].get(reverse(PAGE), {"customer": value})
        assert response.status_code == 200
        assert "data-lookup-error" in response.content.decode()


def test_operator_configures_tiers_analyst_cannot(workspace, clients):
    url = reverse("console:loyalty_tiers_save")
    response = clients["analyst"].post(url, _tier_form(silver_growth_threshold="800"))
    assert response.status_code == 403 and not TierLevel.objects.exists()
    response = clients["service"].post(url, _tier_form(silver_growth_threshold="800"))
    assert response.status_code == 403 and not TierLevel.objects.exists()
    response = clients["operator"].post(url, _tier_form(silver_growth_threshold="800", diamond_exclusive_items="on"))
    assert response.status_code == 302
    tiers = tier_levels(workspace=workspace)
    assert tiers[1].growth_threshold == 800 and tiers[2].free_shipping and tiers[3].exclusive_items
    assert AuditLog.objects.filter(action="tier_config_update").count() == 1


@pytest.mark.parametrize("overrides", [
    {"silver_growth_threshold": "-5"}, {"gold_growth_threshold": "500"}, {"silver_spend_threshold": "12.345"},
    {"silver_discount_percent": "95"}, {"basis": "mood"}, {"window_days": "x"}, {"gold_spend_threshold": "abc"},
])
def test_bad_tier_config_changes_nothing(workspace, clients, overrides):
    response = clients["admin"].post(reverse("console:loyalty_tiers_save"), _tier_form(**overrides))
    assert response.status_code == 400
    assert not TierLevel.objects.exists()
    assert not AuditLog.objects.filter(action="tier_config_update").exists()


def test_only_admins_adjust_with_reason_and_audit(workspace, other_workspace, clients):
    customer = make_customer(workspace)
    url = reverse("console:loyalty_points_adjust")
    for role in ("operator", "analyst", "service"):
        response = clients[role].post(url, {"customer_id": customer.pk, "amount": "100", "reason": "x"})
        assert response.status_code == 403
    assert not PointsTransaction.objects.exists()
    response = clients["admin"].post(url, {"customer_id": customer.pk, "amount": "100", "reason": "活动补发"})
    assert response.status_code == 302 and points_balance(customer=customer) == 100
    response = clients["admin"].post(url, {"customer_id": customer.pk, "amount": "-30", "reason": "误发扣回"})
    assert points_balance(customer=customer) == 70
    log = AuditLog.objects.filter(action="points_adjust").order_by("pk")
    assert [entry.detail["amount"] for entry in log] == [100, -30]
    foreign = make_customer(other_workspace)
    bad = [{"customer_id": customer.pk, "amount": "-71", "reason": "太多"},
           {"customer_id": customer.pk, "amount": "1.5", "reason": "x"},
           {"customer_id": customer.pk, "amount": "10", "reason": ""},
           {"customer_id": foreign.pk, "amount": "10", "reason": "x"},
           {"customer_id": "abc", "amount": "10", "reason": "x"}]
    for form in bad:
        response = clients["admin"].post(url, form)
        assert response.status_code in {400, 404, 409}, form
    assert points_balance(customer=customer) == 70
    assert PointsTransaction.objects.count() == 2
    page = clients["admin"].get(reverse(PAGE), {"customer": customer.pk}).content.decode()
    assert 'id="adjust-form"' in page and "误发扣回" in page
