"""``siyu journeys_run --until``: runs what falls due up to that time and no further, refuses a malformed or
naive time (clear message, exit status 1, nothing run), and a second run over the same span changes nothing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command
from django.db import connections

from siyu.engagement.journeys.models import (
    JourneyMessage,
    JourneyRun,
    MessageStatus,
    RunStatus,
    StepExecution,
)
from siyu.engagement.segments.models import Segment, SegmentMember
from tests.engagement.journeys.conftest import NOON, activate, sent_templates, template_step

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("journeys_run", *args, stdout=out)
    return out.getvalue()


def _journey(workspace, account, customers):
    segment = Segment.objects.create(workspace=workspace, name="命令", definition={})
    SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c, entered_at=NOON) for c in customers])
    return activate(workspace, {"trigger": {"type": "segment_entered", "segment_id": segment.pk,
                                            "include_existing": True},
                                "steps": [{"id": "w", "type": "wait", "minutes": 60, "next": "m1"},
                                          template_step(account)]})


def test_until_runs_due_steps_up_to_that_time_and_is_idempotent(workspace, wechat_sim, account, follow):
    customers = follow(2)
    journey = _journey(workspace, account, customers)
    start = NOON.isoformat()
    # 30 minutes in: the wait is not over, nothing sent
    _run("--from", start, "--until", (NOON + timedelta(minutes=30)).isoformat())
    assert sent_templates(wechat_sim, account) == []
    assert set(JourneyRun.objects.filter(journey=journey).values_list("status", flat=True)) == {RunStatus.ACTIVE}
    # an offset other than Shanghai's is the same instant: 07:30 UTC is 15:30 in Shanghai, past the wait
    output = _run("--from", start, "--until", "2026-11-24T07:30:00+00:00")
    assert "delivered=2" in output
    assert len(sent_templates(wechat_sim, account)) == 2
    assert set(JourneyRun.objects.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    before = (StepExecution.objects.count(), JourneyMessage.objects.count())
    again = _run("--from", start, "--until", "2026-11-24T07:30:00+00:00")
    assert "advanced=0" in again and "delivered=0" in again
    assert (StepExecution.objects.count(), JourneyMessage.objects.count()) == before
    assert len(sent_templates(wechat_sim, account)) == 2
    assert set(JourneyMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


@pytest.mark.parametrize(("value", "says"), [
    ("next tuesday", "ISO 8601"),
    ("2026-13-01T10:00+08:00", "ISO 8601"),
    ("2026-11-24T18:00", "UTC offset"),  # naive: which zone? refused rather than guessed
])
def test_a_malformed_or_naive_time_is_refused_with_exit_status_1(workspace, account, follow, capsys, monkeypatch,
                                                                 value, says):
    _journey(workspace, account, follow(1))
    # run_from_argv closes every connection when it ends; the test's transaction must survive it (PostgreSQL)
    monkeypatch.setattr(connections, "close_all", lambda: None)
    utility = ManagementUtility(["siyu", "journeys_run", "--from", NOON.isoformat(), "--until", value])
    with pytest.raises(SystemExit) as exited:
        utility.execute()
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert says in error and "--until" in error
    assert not StepExecution.objects.exists() and not JourneyMessage.objects.exists()
