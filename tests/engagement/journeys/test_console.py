"""Console pages of journeys per role: list, create, editor (save, refuse bad definitions, activate, pause),
report, guards, the customer 360 panel."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from siyu.engagement.journeys.models import Journey, JourneyRun, JourneySettings, JourneyStatus
from siyu.engagement.journeys.runner import run_until
from siyu.engagement.segments.models import Segment, SegmentMember
from tests.engagement.journeys.conftest import NOON, template_step

pytestmark = pytest.mark.django_db


def test_roles_on_the_list(clients, workspace):
    for role in ("admin", "operator", "analyst"):
        assert clients[role].get(reverse("console:journeys")).status_code == 200
    assert clients["service"].get(reverse("console:journeys")).status_code == 403
    refused = clients["analyst"].post(reverse("console:journeys"), {"name": "偷偷建"})
    assert refused.status_code == 403 and not Journey.objects.exists()
    refused = clients["service"].post(reverse("console:journeys"), {"name": "偷偷建"})
    assert refused.status_code == 403 and not Journey.objects.exists()


def test_create_edit_refuse_activate_pause_and_report(clients, workspace, account, follow):
    customers = follow(2)
    segment = Segment.objects.create(workspace=workspace, name="新客", definition={})
    SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c, entered_at=NOON) for c in customers])
    admin = clients["admin"]
    created = admin.post(reverse("console:journeys"), {"name": "新客欢迎"})
    journey = Journey.objects.get(name="新客欢迎")
    assert created.status_code == 302 and created.url == reverse("console:journey_edit", args=[journey.pk])
    editor = admin.get(created.url)
    assert editor.status_code == 200 and "新客" in editor.content.decode()  # the segment picker offers it
    edit_url = created.url
    # a bad definition: refused, every problem listed in Chinese, nothing activated
    bad = {"trigger": {"type": "segment_entered"}, "steps": [{"id": "a", "type": "wait", "minutes": 0, "next": "zz"}]}
    answer = admin.post(edit_url, {"name": "新客欢迎", "definition": json.dumps(bad), "action": "activate"})
    page = answer.content.decode()
    assert answer.status_code == 400 and "请选择人群" in page and "指向的步骤「zz」不存在" in page
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.DRAFT and journey.version == 0
    # not JSON
    assert admin.post(edit_url, {"definition": "{oops", "action": "save"}).status_code == 400
    good = {"trigger": {"type": "segment_entered", "segment_id": segment.pk, "include_existing": True},
            "steps": [template_step(account)]}
    assert admin.post(edit_url, {"name": "新客欢迎", "definition": json.dumps(good), "action": "save"}).status_code == 302
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.DRAFT and journey.definition == good
    assert admin.post(edit_url, {"name": "新客欢迎", "definition": json.dumps(good), "action": "activate"}).status_code == 302
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.ACTIVE and journey.version == 1
    assert JourneyRun.objects.filter(journey=journey).count() == 2
    # an analyst reads but cannot pause
    assert clients["analyst"].get(edit_url).status_code == 200
    assert clients["analyst"].post(edit_url, {"action": "pause"}).status_code == 403
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.ACTIVE
    assert clients["service"].get(edit_url).status_code == 403
    run_until(start=NOON, until=NOON)
    report = clients["analyst"].get(reverse("console:journey_report", args=[journey.pk]))
    body = report.content.decode()
    assert report.status_code == 200 and 'data-testid="report-entered">2<' in body and "chart-data" in body
    # the customer 360 panel lists the run
    detail = admin.get(reverse("console:customer_detail", args=[customers[0].pk])).content.decode()
    assert 'data-testid="customer-journeys"' in detail and "新客欢迎" in detail
    assert admin.post(edit_url, {"action": "pause"}).status_code == 302
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.PAUSED
    # another workspace's journey is not found
    assert admin.get(reverse("console:journey_edit", args=[journey.pk + 999])).status_code == 404


def test_guards_form_validates(clients, workspace):
    admin = clients["admin"]
    ok = admin.post(reverse("console:journeys"), {"action": "settings", "official_template_day": "2",
                                                  "official_template_week": "5", "quiet_start": "21:30",
                                                  "quiet_end": "09:00"})
    assert ok.status_code == 302
    row = JourneySettings.objects.get(workspace=workspace)
    assert row.caps["official_template"] == {"day": 2, "week": 5} and row.quiet_start == "21:30"
    admin.post(reverse("console:journeys"), {"action": "settings", "official_template_day": "9",
                                             "official_template_week": "3", "quiet_start": "25:00", "quiet_end": "x"})
    row.refresh_from_db()
    assert row.caps["official_template"] == {"day": 2, "week": 5}  # refused: nothing changed
