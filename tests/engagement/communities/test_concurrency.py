"""PostgreSQL: a bridge batch posted by several workers at once (a bridge retrying while the first try is
still running) is stored once and moderated once; rhythm runs and KOC incentives racing make one each."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from siyu.core.services import workspace_create
from siyu.core.timeutil import SHANGHAI
from siyu.engagement.communities.koc import incentives_apply
from siyu.engagement.communities.messages import messages_record
from siyu.engagement.communities.models import (
    GroupMessage,
    KocAward,
    KocIncentive,
    ModerationRecord,
    RhythmRun,
)
from siyu.engagement.communities.rhythm import rhythm_run_due, rhythm_slots
from siyu.engagement.communities.services import community_create
from siyu.engagement.inbox.models import StaffTask
from siyu.loyalty.models import PointsTransaction
from tests.concurrency import run_together

from .conftest import customer_make

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 6


def test_concurrent_bridge_posts_store_and_moderate_once():
    workspace = workspace_create(slug="bridge-race", name="桥接并发")
    community = community_create(workspace=workspace, name="福利群", type="welfare")
    customer = customer_make(workspace, "wmRace")
    batch = [{"msg_id": f"race-{n}", "community_id": community.pk, "sender": {"id": "wmRace"},
              "content": f"代购第{n}批 13812345678", "sent_at": int(time.time()) - 30 + n} for n in range(5)]
    errors = run_together(THREADS, lambda i: messages_record(workspace=workspace, messages=batch))
    assert errors == []
    assert GroupMessage.objects.filter(community=community).count() == 5
    assert ModerationRecord.objects.filter(community=community).count() == 10  # keyword + contact, each once
    assert StaffTask.objects.filter(workspace=workspace, ref__startswith=f"warn:{community.pk}:").count() == 1
    assert GroupMessage.objects.filter(customer=customer).count() == 5


def test_concurrent_rhythm_runs_and_incentives_make_one_each():
    workspace = workspace_create(slug="rhythm-race", name="节奏并发")
    community = community_create(workspace=workspace, name="交流群", type="exchange")
    rhythm_slots(workspace=workspace, community_type="exchange")
    at = datetime(2026, 11, 23, 21, 0, tzinfo=SHANGHAI)
    produced = []
    assert run_together(THREADS, lambda i: produced.append(rhythm_run_due(workspace=workspace, now=at))) == []
    assert sum(produced) == 2 and RhythmRun.objects.filter(community=community).count() == 2
    assert StaffTask.objects.filter(workspace=workspace, source="community").count() == 2

    customer = customer_make(workspace)
    KocAward.objects.create(workspace=workspace, community=None, customer=customer, period="2026-10", score=50,
                            rank=1, created_at=at)
    given = []
    assert run_together(THREADS, lambda i: given.append(incentives_apply(workspace=workspace, period="2026-10", now=at))) == []
    assert sum(given) == 1 and KocIncentive.objects.filter(customer=customer).count() == 1
    assert PointsTransaction.objects.filter(customer=customer, ref__startswith="community-koc:").count() == 1
