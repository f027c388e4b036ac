"""Refresh publishes entries and exits, debounced stale marking, scheduled refresh, audited masked export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from siyu.core import domain_events
from siyu.core.errors import SiyuError
from siyu.core.models import AuditLog
from siyu.customers.models import Customer
from siyu.engagement.segments import tasks
from siyu.engagement.segments.conditions import CustomerFacts, EventFact
from siyu.engagement.segments.models import Segment, SegmentMember
from siyu.engagement.segments.services import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    segment_archive,
    segment_count,
    segment_create,
    segment_refresh,
    segment_update,
    segments_mark_stale,
    segments_refresh_due,
    segments_refresh_stale,
)
from tests.engagement.segments.factories import customer_make

pytestmark = pytest.mark.django_db

SHANGHAI = {"version": 1, "root": {"field": "city", "op": "eq", "value": "上海"}}
VIEWERS = {"version": 1, "root": {"field": "event", "type": "product_view", "op": "gte", "count": 1, "days": 7}}


@pytest.fixture
def published():
    seen = []

    def entered(**payload):
        seen.append(("entered", payload))

    def exited(**payload):
        seen.append(("exited", payload))

    domain_events.subscribe(SEGMENT_ENTERED, entered)
    domain_events.subscribe(SEGMENT_EXITED, exited)
    yield seen
    domain_events.unsubscribe(SEGMENT_ENTERED, entered)
    domain_events.unsubscribe(SEGMENT_EXITED, exited)


def test_refresh_inserts_new_deletes_gone_and_publishes(workspace, admin_membership, now, published,
                                                        django_capture_on_commit_callbacks):
    a = customer_make(workspace, CustomerFacts(city="上海"), now=now)
    b = customer_make(workspace, CustomerFacts(city="杭州"), now=now)
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(workspace=workspace, actor=admin_membership.user, name="上海客户",
                                 definition=SHANGHAI)
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert segment_refresh(segment=segment, now=now) == {"entered": 1, "exited": 0, "members": 1}
    assert published == [("entered", {"workspace_id": workspace.pk, "segment_id": segment.pk, "customer_ids": [a.pk]})]
    first_entry = SegmentMember.objects.get(segment=segment, customer=a).entered_at

    published.clear()
    Customer.objects.filter(pk=a.pk).update(city="杭州")
    Customer.objects.filter(pk=b.pk).update(city="上海")
    with django_capture_on_commit_callbacks(execute=True):
        assert segment_refresh(segment=segment, now=now) == {"entered": 1, "exited": 1, "members": 1}
    assert ("entered", {"workspace_id": workspace.pk, "segment_id": segment.pk, "customer_ids": [b.pk]}) in published
    assert ("exited", {"workspace_id": workspace.pk, "segment_id": segment.pk, "customer_ids": [a.pk]}) in published

    published.clear()
    with django_capture_on_commit_callbacks(execute=True):  # nothing changed: nothing published
        assert segment_refresh(segment=segment, now=now) == {"entered": 0, "exited": 0, "members": 1}
    assert published == []
    segment.refresh_from_db()
    assert segment.member_count == 1 and segment.refreshed_at == now
    assert first_entry is not None


def test_create_update_archive_and_refusals(workspace, admin_membership):
    segment = segment_create(workspace=workspace, actor=admin_membership.user, name="上海客户", definition=SHANGHAI)
    assert AuditLog.objects.filter(action="segment.create", target_id=str(segment.pk)).exists()
    with pytest.raises(SiyuError) as caught:
        segment_create(workspace=workspace, actor=admin_membership.user, name="上海客户", definition=SHANGHAI)
    assert caught.value.code == "segment_name_taken" and caught.value.status == 409
    with pytest.raises(SiyuError) as caught:
        segment_create(workspace=workspace, actor=admin_membership.user, name=" ", definition=SHANGHAI)
    assert caught.value.code == "segment_name_required"
    with pytest.raises(SiyuError) as caught:
        segment_update(segment=segment, actor=admin_membership.user, definition={"version": 2})
    assert caught.value.code == "segment_bad_version"
    segment.refresh_from_db()
    assert segment.definition == SHANGHAI
    segment_archive(segment=segment, actor=admin_membership.user)
    with pytest.raises(SiyuError) as caught:
        segment_update(segment=segment, actor=admin_membership.user, name="新名字")
    assert caught.value.code == "segment_archived"
    assert Segment.objects.filter(workspace=workspace).count() == 1


def test_live_count_is_not_stored(workspace, now):
    customer_make(workspace, CustomerFacts(city="上海"), now=now)
    assert segment_count(workspace=workspace, definition=SHANGHAI) == 1
    assert not SegmentMember.objects.exists()


def test_events_mark_stale_once_debounced(workspace, admin_membership, now, monkeypatch):
    viewers = segment_create(workspace=workspace, actor=admin_membership.user, name="浏览", definition=VIEWERS)
    city = segment_create(workspace=workspace, actor=admin_membership.user, name="上海", definition=SHANGHAI)
    tags_only = segment_create(workspace=workspace, actor=admin_membership.user, name="标签",
                               definition={"version": 1, "root": {"field": "tag", "op": "has", "value": 1}})
    Segment.objects.update(stale_since=None)
    scheduled = []
    monkeypatch.setattr(tasks.segments_refresh_stale_task, "schedule",
                        lambda args, delay: scheduled.append((args, delay)))
    customer = customer_make(workspace, CustomerFacts(events=(EventFact("product_view", now),)), now=now)
    for _batch in range(5):  # a burst of ingestion batches
        tasks._on_events_ingested(workspace_id=workspace.pk, customer_ids=[customer.pk])
    assert scheduled == [((workspace.pk,), tasks.DEBOUNCE_SECONDS)]
    stale = set(Segment.objects.filter(stale_since__isnull=False).values_list("pk", flat=True))
    assert stale == {viewers.pk, city.pk}  # the tag-only segment cannot change with events
    result = segments_refresh_stale(workspace_id=workspace.pk, now=now)
    assert result[viewers.pk]["entered"] == 1 and tags_only.pk not in result
    assert not Segment.objects.filter(stale_since__isnull=False).exists()
    assert segments_mark_stale(workspace_id=workspace.pk, fields={"tag"}) == [tags_only.pk]


def test_scheduled_refresh_honours_refresh_minutes(workspace, admin_membership, now):
    hourly = segment_create(workspace=workspace, actor=admin_membership.user, name="每小时", definition=SHANGHAI)
    manual = segment_create(workspace=workspace, actor=admin_membership.user, name="手动", definition=SHANGHAI,
                            refresh_minutes=0)
    assert segments_refresh_due(now=now) == [hourly.pk]
    assert segments_refresh_due(now=now + timedelta(minutes=30)) == []
    assert segments_refresh_due(now=now + timedelta(minutes=61)) == [hourly.pk]
    manual.refresh_from_db()
    assert manual.refreshed_at is None


@pytest.fixture
def exported(workspace, admin_membership, now):
    customer_make(workspace, CustomerFacts(city="上海"), now=now, name="王小明", phone="13712345678")
    segment = segment_create(workspace=workspace, actor=admin_membership.user, name="上海客户", definition=SHANGHAI)
    segment_refresh(segment=segment, now=now)
    return segment


def _csv_rows(response):
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_export_csv_audited_and_masked_for_analysts(clients, exported):
    url = reverse("console:segment_export", args=[exported.pk])
    admin_rows = _csv_rows(clients["operator"].get(url + "?format=csv"))
    assert admin_rows[0][0] == "客户编号" and admin_rows[1][1:4] == ["王小明", "13712345678", ""]
    analyst_rows = _csv_rows(clients["analyst"].get(url + "?format=csv"))
    assert analyst_rows[1][1:3] == ["王**", "137****5678"]
    assert "13712345678" not in str(analyst_rows)
    logs = AuditLog.objects.filter(action="segment.export", target_id=str(exported.pk)).order_by("pk")
    assert [log.detail["personal_data_in_clear"] for log in logs] == [True, False]
    assert logs[0].detail["rows"] == 1 and logs[0].detail["format"] == "csv"
    assert clients["service"].get(url + "?format=csv").status_code == 403
    assert clients["admin"].get(url + "?format=pdf").status_code == 400
    assert logs.count() == 2


def test_export_xlsx(clients, exported):
    response = clients["analyst"].get(reverse("console:segment_export", args=[exported.pk]) + "?format=xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "客户编号" and rows[1][1] == "王**" and rows[1][2] == "137****5678"


@pytest.mark.postgres
def test_live_count_times_out_cleanly_on_postgresql(workspace, monkeypatch, now):
    from siyu.engagement.segments import services

    customer_make(workspace, CustomerFacts(city="上海"), now=now)
    slow = Customer.objects.filter(workspace=workspace).extra(where=["(SELECT 1 FROM pg_sleep(0.5)) = 1"])
    monkeypatch.setattr(services, "segment_queryset", lambda **_: slow)
    with pytest.raises(SiyuError) as caught:
        services.segment_count(workspace=workspace, definition=SHANGHAI, timeout_ms=50)
    assert caught.value.code == "segment_count_timeout" and caught.value.status == 503
    assert Customer.objects.filter(workspace=workspace).count() == 1  # the connection is still usable
