"""Console RFM 分层与生命周期: who sees and changes what, counts and charts, thresholds (bad input refused,
nothing written), recompute now with progress, a layer's customers, and the customer 360 panel."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.models import AuditLog
from siyu.engagement.rfm.models import CustomerScore, RfmSettings
from siyu.engagement.rfm.presets import RFM5_PRESET
from siyu.engagement.rfm.services import rfm_recompute, rfm_settings_of, thresholds_of
from tests.engagement.rfm import factories as f

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def scored(workspace):
    now = timezone.now()
    big = f.customer(workspace, first_seen_at=now - 200 * DAY)
    for days in (1, 5, 9):
        f.order(workspace, big, paid_at=now - days * DAY, paid_fen=60000)
    identity = f.identity(workspace, big)
    for minutes in range(3):
        f.event(workspace, identity, type="message_in", occurred_at=now - timedelta(hours=2, minutes=minutes))
    fresh = f.customer(workspace, first_seen_at=now - 9 * DAY)
    rfm_recompute(workspace=workspace, now=now - 8 * DAY)
    rfm_recompute(workspace=workspace, now=now)  # the newcomer moves on: a move for the chart
    return {"big": big, "fresh": fresh}


def _charts(html: str) -> dict:
    return json.loads(html.split('id="chart-data" type="application/json">')[1].split("</script>")[0])


def test_roles_see_the_page_service_gets_403(clients, scored):
    for role in ("admin", "operator", "analyst"):
        assert clients[role].get(reverse("console:rfm")).status_code == 200
        assert clients[role].get(reverse("console:rfm_status")).status_code == 200
    for name in ("console:rfm", "console:rfm_status"):
        assert clients["service"].get(reverse(name)).status_code == 403
    url = reverse("console:rfm_customers") + "?kind=rfm5&layer=high_active"
    assert clients["service"].get(url).status_code == 403


def test_page_shows_both_presets_with_counts_strategies_lifecycle_and_moves(clients, scored):
    html = clients["analyst"].get(reverse("console:rfm")).content.decode()
    for layer in ("高价值活跃用户", "潜在高价值用户", "沉默用户", "新用户", "低价值用户", "重要价值用户", "重要保持用户",
                  "重要发展用户", "一般价值用户", "沉睡用户"):
        assert layer in html
    assert "专属客服、新品内测资格" in html and "唤醒券、情感召回、问题调研" in html  # strategies beside layers
    charts = _charts(html)
    assert sum(charts["rfm5"]["series"][0]["y"]) == 2 and sum(charts["rfm6"]["series"][0]["y"]) == 2
    assert sum(charts["lifecycle"]["series"][0]["y"]) == 2
    assert sum(sum(series["y"]) for series in charts["moves"]["series"]) >= 1
    assert 'data-thresholds="rfm5"' in html and "disabled" in html  # analysts see thresholds read-only
    assert reverse("console:rfm_recompute") not in html


def test_layer_drill_down_lists_its_customers(clients, scored):
    score = CustomerScore.objects.get(customer=scored["big"])
    url = reverse("console:rfm_customers") + f"?kind=rfm6&layer={score.rfm6}"
    html = clients["analyst"].get(url).content.decode()
    assert f'data-customer="{scored["big"].pk}"' in html and f'data-customer="{scored["fresh"].pk}"' not in html
    assert clients["analyst"].get(reverse("console:rfm_customers") + "?kind=rfm5&layer=nope").status_code == 404


def test_operator_saves_thresholds_in_yuan(workspace, clients):
    form = {item.key: str(item.default / 100 if item.unit == "fen" else item.default) for item in RFM5_PRESET.thresholds}
    form["high_spend_30d_fen"] = "800.50"
    response = clients["operator"].post(reverse("console:rfm_thresholds_save", args=["rfm5"]), form)
    assert response.status_code == 302
    assert thresholds_of(rfm_settings_of(workspace=workspace))["rfm5"]["high_spend_30d_fen"] == 80050
    assert AuditLog.objects.filter(workspace=workspace, action="rfm.thresholds_update").count() == 1


@pytest.mark.parametrize(("field", "value", "code"), [
    ("high_spend_30d_fen", "abc", "rfm_threshold_invalid"),
    ("high_spend_30d_fen", "1.234", "rfm_threshold_invalid"),
    ("high_interactions_7d", "2.5", "rfm_threshold_invalid"),
    ("high_interactions_7d", "-1", "rfm_threshold_out_of_range"),
    ("potential_spend_30d_fen", "900", "rfm_threshold_order"),
])
def test_bad_threshold_input_is_refused_and_nothing_changes(workspace, clients, field, value, code):
    form = {item.key: str(item.default / 100 if item.unit == "fen" else item.default) for item in RFM5_PRESET.thresholds}
    form[field] = value
    response = clients["admin"].post(reverse("console:rfm_thresholds_save", args=["rfm5"]), form)
    assert response.status_code == 400
    assert code in response.content.decode() or response.context["error"].code == code
    assert not (rfm_settings_of(workspace=workspace).thresholds or {})
    assert not AuditLog.objects.filter(workspace=workspace, action="rfm.thresholds_update").exists()


def test_analyst_cannot_change_thresholds_or_recompute(workspace, clients):
    response = clients["analyst"].post(reverse("console:rfm_thresholds_save", args=["rfm5"]), {"new_days": "3"})
    assert response.status_code == 403
    assert clients["analyst"].post(reverse("console:rfm_recompute")).status_code == 403
    assert clients["service"].post(reverse("console:rfm_recompute")).status_code == 403
    row = RfmSettings.objects.filter(workspace=workspace).first()
    assert row is None or (not row.thresholds and row.run_state == "idle")


def test_recompute_now_runs_the_job_and_reports_progress(workspace, clients, settings):
    from huey.contrib.djhuey import HUEY

    f.customer(workspace, first_seen_at=timezone.now() - DAY)
    previous, HUEY.immediate = HUEY.immediate, True
    try:
        response = clients["admin"].post(reverse("console:rfm_recompute"))
    finally:
        HUEY.immediate = previous
    assert response.status_code == 302
    status = clients["analyst"].get(reverse("console:rfm_status")).json()
    assert status["state"] == "done" and status["progress"] == 100 and status["summary"]["scored"] == 1
    assert CustomerScore.objects.filter(workspace=workspace).count() == 1


def test_recompute_is_refused_while_one_runs(workspace, clients):
    row = rfm_settings_of(workspace=workspace)
    RfmSettings.objects.filter(pk=row.pk).update(run_state="running", run_started_at=timezone.now())
    response = clients["admin"].post(reverse("console:rfm_recompute"))
    assert response.status_code == 409


def test_customer_panel_shows_rfm_layers_stage_and_moves(clients, scored):
    html = clients["analyst"].get(reverse("console:customer_detail", args=[scored["fresh"].pk])).content.decode()
    assert 'data-panel="rfm"' in html and 'data-layer-kind="lifecycle"' in html
    assert "新客 → " in html  # its move out of 新
    big = clients["operator"].get(reverse("console:customer_detail", args=[scored["big"].pk])).content.decode()
    assert "data-f>3<" in big and "data-m>1,800.00<" in big
