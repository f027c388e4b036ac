"""PostgreSQL: several workers advance runs and deliver messages at the same moments — the frequency caps
are never exceeded, no step runs twice, and nobody receives the same message twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count

from siyu.engagement.journeys import delivery, engine, fanout
from siyu.engagement.journeys.models import (
    CAP_COUNTED,
    JourneyMessage,
    JourneyRun,
    MessageStatus,
    StepExecution,
)
from siyu.engagement.segments.models import Segment, SegmentMember
from tests.engagement.journeys.conftest import NOON, activate, sent_templates, template_step

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
WORKERS = 4


def race(work) -> list[str]:
    barrier = threading.Barrier(WORKERS)
    crashes: list[str] = []

    def run() -> None:
        try:
            barrier.wait()
            work()
        except Exception as error:
            crashes.append(f"{type(error).__name__}: {error}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return crashes


@pytest.mark.parametrize("set_based", [False, True], ids=["per-run", "fan-out"])
def test_caps_hold_and_nothing_double_sends_under_concurrent_workers(workspace, wechat_sim, account, follow,
                                                                       monkeypatch, set_based):
    if set_based:  # every group of due runs at a message step goes through the set-based planner
        monkeypatch.setattr(fanout, "FANOUT_MIN", 1)
    customers = follow(5)
    for index in range(6):  # six journeys all want three messages a day apart to the same five customers
        segment = Segment.objects.create(workspace=workspace, name=f"人群{index}", definition={})
        SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c, entered_at=NOON)
                                           for c in customers])
        activate(workspace, {"trigger": {"type": "segment_entered", "segment_id": segment.pk}, "steps": [
            template_step(account, "m1", "w1"), {"id": "w1", "type": "wait", "minutes": 1440, "next": "m2"},
            template_step(account, "m2", "w2"), {"id": "w2", "type": "wait", "minutes": 1440, "next": "m3"},
            template_step(account, "m3")]}, name=f"旅程{index}")
    assert JourneyRun.objects.count() == 30
    moment = NOON
    while moment <= NOON + timedelta(days=4):
        def work(now=moment):
            for _ in range(3):
                engine.runs_process(now=now, limit=7)
                delivery.messages_deliver(now=now, limit=7)

        assert race(work) == []
        moment += timedelta(hours=6)
    # each step at most once per run
    assert not StepExecution.objects.values("run_id", "step_id").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert JourneyMessage.objects.filter(status=MessageStatus.SENDING).count() == 0
    counted = JourneyMessage.objects.filter(status__in=CAP_COUNTED)
    per_day = Counter((m.customer_id, m.cap_day) for m in counted)
    assert per_day and max(per_day.values()) == 1  # 1 a day
    for customer in customers:
        days = sorted(day for (cid, day) in per_day if cid == customer.pk)
        for day in days:
            assert sum(1 for d in days if day - timedelta(days=6) <= d <= day) <= 3  # 3 a week
    assert JourneyMessage.objects.filter(status=MessageStatus.CAPPED).exists()
    assert StepExecution.objects.filter(detail__fanout=True).exists() == set_based
    sent = sent_templates(wechat_sim, account)
    assert len(sent) == JourneyMessage.objects.filter(status=MessageStatus.SENT).count()
    assert max(Counter(item["touser"] for item in sent).values()) <= 3
