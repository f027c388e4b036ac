"""Console pages of 客户分群 per role, the builder page, the live count endpoint, refresh and archive."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from siyu.core.models import AuditLog
from siyu.engagement.segments.conditions import CustomerFacts, EventFact
from siyu.engagement.segments.models import Segment, SegmentMember
from siyu.engagement.segments.services import segment_create, segment_refresh
from tests.engagement.segments.factories import customer_make

pytestmark = pytest.mark.django_db

VIEWED = {"version": 1, "root": {"and": [
    {"field": "event", "type": "product_view", "op": "gte", "count": 2, "days": 7},
    {"field": "event", "type": "order_paid", "op": "eq", "count": 0, "days": 7}]}}


@pytest.fixture
def population(workspace, now):
    viewer = CustomerFacts(events=(EventFact("product_view", now - timedelta(days=1)),
                                   EventFact("product_view", now - timedelta(days=2))))
    buyer = CustomerFacts(events=(*viewer.events, EventFact("order_paid", now - timedelta(days=1))))
    return {"viewer": customer_make(workspace, viewer, now=now, name="张三丰", phone="13800138000"),
            "buyer": customer_make(workspace, buyer, now=now, name="李四", phone="13900139000")}


@pytest.fixture
def segment(workspace, admin_membership, population):
    created = segment_create(workspace=workspace, actor=admin_membership.user, name="想买未买", definition=VIEWED)
    segment_refresh(segment=created)
    return Segment.objects.get(pk=created.pk)


def test_list_and_detail_per_role(clients, segment):
    for role in ("admin", "operator", "analyst"):
        assert clients[role].get(reverse("console:segments")).status_code == 200
        detail = clients[role].get(reverse("console:segment_detail", args=[segment.pk]))
        assert detail.status_code == 200
        assert "近 7 天 浏览商品 ≥ 2 次 且 近 7 天 没有 支付订单" in detail.content.decode()
    assert clients["service"].get(reverse("console:segments")).status_code == 403
    assert clients["service"].get(reverse("console:segment_detail", args=[segment.pk])).status_code == 403


def test_members_masked_for_analysts(clients, segment):
    admin_page = clients["admin"].get(reverse("console:segment_detail", args=[segment.pk])).content.decode()
    analyst_page = clients["analyst"].get(reverse("console:segment_detail", args=[segment.pk])).content.decode()
    assert "13800138000" in admin_page and "张三丰" in admin_page
    assert "13800138000" not in analyst_page and "张三丰" not in analyst_page
    assert "138****8000" in analyst_page
    assert "13900139000" not in admin_page  # the buyer is not a member


def test_builder_page_has_stable_test_ids(clients):
    page = clients["operator"].get(reverse("console:segment_new"))
    assert page.status_code == 200
    html = page.content.decode()
    for testid in ("segment-form", "segment-name", "segment-builder", "live-count", "live-text", "live-error",
                   "segment-save"):
        assert f'data-testid="{testid}"' in html
    # The lists come from the workspace and the presets: RFM layers of both presets, stages, tiers, events.
    start = html.index('<script id="segment-options" type="application/json">') + len(
        '<script id="segment-options" type="application/json">')
    options = json.dumps(json.loads(html[start:html.index("</script>", start)]), ensure_ascii=False)
    for label in ("高价值活跃用户", "重要价值用户", "流失", "钻石", "浏览商品", "小红书"):
        assert label in options
    assert clients["analyst"].get(reverse("console:segment_new")).status_code == 403
    assert clients["service"].get(reverse("console:segment_new")).status_code == 403


def test_create_from_builder_post(clients, workspace, population):
    response = clients["operator"].post(reverse("console:segment_new"), {
        "name": "想买未买", "description": "", "refresh_minutes": "30", "definition": json.dumps(VIEWED)})
    assert response.status_code == 302
    segment = Segment.objects.get(workspace=workspace, name="想买未买")
    assert segment.definition == VIEWED and segment.refresh_minutes == 30


def test_create_refused_changes_nothing(clients, workspace):
    bad = {"version": 1, "root": {"and": [{"field": "event", "type": "product_view", "op": "gte", "count": -1}]}}
    response = clients["operator"].post(reverse("console:segment_new"), {
        "name": "坏条件", "refresh_minutes": "60", "definition": json.dumps(bad)})
    assert response.status_code == 400
    assert "root.and[0].count" in response.content.decode()
    assert not Segment.objects.filter(workspace=workspace).exists()
    response = clients["analyst"].post(reverse("console:segment_new"), {
        "name": "x", "refresh_minutes": "60", "definition": json.dumps(VIEWED)})
    assert response.status_code == 403
    assert not Segment.objects.filter(workspace=workspace).exists()


def test_live_count_endpoint(clients, population):
    url = reverse("console:segment_count")
    response = clients["analyst"].post(url, json.dumps({"definition": VIEWED}), content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["text"] == "近 7 天 浏览商品 ≥ 2 次 且 近 7 天 没有 支付订单"
    bad = clients["admin"].post(url, json.dumps({"definition": {"version": 1, "root": {"or": []}}}),
                                content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "segment_empty_group"
    assert clients["admin"].post(url, "not json", content_type="application/json").status_code == 400
    assert clients["service"].post(url, json.dumps({"definition": VIEWED}),
                                   content_type="application/json").status_code == 403


def test_refresh_and_archive_buttons(clients, segment, population):
    SegmentMember.objects.filter(segment=segment).delete()
    response = clients["analyst"].post(reverse("console:segment_refresh", args=[segment.pk]))
    assert response.status_code == 403 and not SegmentMember.objects.filter(segment=segment).exists()
    response = clients["operator"].post(reverse("console:segment_refresh", args=[segment.pk]))
    assert response.status_code == 302
    assert list(SegmentMember.objects.filter(segment=segment).values_list("customer_id", flat=True)) == [
        population["viewer"].pk]
    assert AuditLog.objects.filter(action="segment.refresh", target_id=str(segment.pk)).exists()
    clients["operator"].post(reverse("console:segment_archive", args=[segment.pk]))
    segment.refresh_from_db()
    assert segment.archived


def test_edit_page_round_trip(clients, segment):
    page = clients["admin"].get(reverse("console:segment_edit", args=[segment.pk]))
    assert page.status_code == 200
    changed = {"version": 1, "root": {"field": "city", "op": "eq", "value": "上海"}}
    response = clients["admin"].post(reverse("console:segment_edit", args=[segment.pk]), {
        "name": segment.name, "refresh_minutes": "0", "definition": json.dumps(changed)})
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.definition == changed and segment.refresh_minutes == 0


def test_customer_panel_lists_segments(clients, segment, population):
    page = clients["admin"].get(reverse("console:customer_detail", args=[population["viewer"].pk])).content.decode()
    assert 'data-testid="customer-segments"' in page and "想买未买" in page
