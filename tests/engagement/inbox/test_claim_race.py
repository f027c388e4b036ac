"""PostgreSQL: two staff claiming the same task at the same moment — exactly one gets it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from siyu.core.errors import SiyuError
from siyu.core.services import workspace_create
from siyu.engagement.inbox.models import StaffTask, TaskStatus
from siyu.engagement.inbox.services import task_claim
from tests.engagement.inbox.factories import staff, task

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_claims_one_wins():
    workspace = workspace_create(slug="inbox-race", name="任务并发")
    people = [staff(workspace, f"s{index}", "service")[0].user for index in range(4)]
    jobs = [task(workspace, f"race-{index}") for index in range(5)]
    for job in jobs:
        barrier = threading.Barrier(len(people))
        results: dict[int, str] = {}
        lock = threading.Lock()

        def claim(user, job=job, barrier=barrier, results=results, lock=lock) -> None:
            try:
                barrier.wait()
                task_claim(workspace=workspace, task_id=job.pk, user=user)
                outcome = "won"
            except SiyuError as error:
                outcome = error.code
            finally:
                connection.close()
            with lock:
                results[user.pk] = outcome

        threads = [threading.Thread(target=claim, args=(user,)) for user in people]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [pk for pk, outcome in results.items() if outcome == "won"]
        assert len(winners) == 1, results
        assert sorted(outcome for outcome in results.values() if outcome != "won") == ["task_taken"] * 3
        stored = StaffTask.objects.get(pk=job.pk)
        assert (stored.status, stored.assignee_id) == (TaskStatus.CLAIMED, winners[0])
