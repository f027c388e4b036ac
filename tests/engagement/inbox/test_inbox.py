"""Staff inbox: claim / complete / reassign under row locks, SLA overdue, who sees what, the console page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import AuditLog
from siyu.engagement.inbox.models import StaffTask, TaskStatus
from siyu.engagement.inbox.selectors import task_counts, task_list, tasks_overdue, tasks_visible
from siyu.engagement.inbox.services import task_claim, task_complete, task_reassign
from tests.engagement.inbox.factories import customer, staff, task

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(workspace):
    return {name: staff(workspace, name, role) for name, role in
            (("boss", "admin"), ("ops", "operator"), ("amy", "service"), ("bob", "service"), ("ana", "analyst"))}


def test_claim_complete_and_the_first_claim_wins(workspace, team):
    amy, bob = team["amy"][0].user, team["bob"][0].user
    job = task(workspace, "r1")
    assert task_claim(workspace=workspace, task_id=job.pk, user=amy).status == TaskStatus.CLAIMED
    assert task_claim(workspace=workspace, task_id=job.pk, user=amy).assignee_id == amy.pk  # again: still hers
    with pytest.raises(SiyuError) as taken:
        task_claim(workspace=workspace, task_id=job.pk, user=bob)
    assert (taken.value.code, taken.value.status) == ("task_taken", 409)
    with pytest.raises(SiyuError) as not_yours:
        task_complete(workspace=workspace, task_id=job.pk, user=bob, outcome="做完了")
    assert not_yours.value.code == "task_not_yours"
    with pytest.raises(SiyuError) as empty:
        task_complete(workspace=workspace, task_id=job.pk, user=amy, outcome="  ")
    assert empty.value.code == "outcome_required"
    assert StaffTask.objects.get(pk=job.pk).status == TaskStatus.CLAIMED
    done = task_complete(workspace=workspace, task_id=job.pk, user=amy, outcome="已电话回访，客户满意")
    assert (done.status, done.outcome) == (TaskStatus.DONE, "已电话回访，客户满意") and done.done_at
    with pytest.raises(SiyuError) as finished:
        task_claim(workspace=workspace, task_id=job.pk, user=bob)
    assert finished.value.code == "task_finished"
    assert list(AuditLog.objects.filter(target_type="staff_task").values_list("action", flat=True).order_by("pk")) \
        == ["task_claim", "task_complete"]


def test_reassign_rules(workspace, team, other_workspace):
    amy, bob, boss, ana = (team[name][0].user for name in ("amy", "bob", "boss", "ana"))
    job = task(workspace, "r2")
    task_claim(workspace=workspace, task_id=job.pk, user=amy)
    with pytest.raises(SiyuError) as refused:
        task_reassign(workspace=workspace, task_id=job.pk, user=bob, to_user_id=bob.pk)
    assert refused.value.code == "task_not_yours"
    for target in (ana.pk, "abc", 999999):
        with pytest.raises(SiyuError) as bad:
            task_reassign(workspace=workspace, task_id=job.pk, user=amy, to_user_id=target)
        assert bad.value.code == "assignee_invalid"
    outsider = staff(other_workspace, "outsider", "service")[0].user
    with pytest.raises(SiyuError):
        task_reassign(workspace=workspace, task_id=job.pk, user=amy, to_user_id=outsider.pk)
    assert StaffTask.objects.get(pk=job.pk).assignee_id == amy.pk
    assert task_reassign(workspace=workspace, task_id=job.pk, user=amy, to_user_id=bob.pk).assignee_id == bob.pk
    assert task_reassign(workspace=workspace, task_id=job.pk, user=boss, to_user_id=amy.pk,
                         may_override=True).assignee_id == amy.pk
    with pytest.raises(SiyuError) as missing:
        task_claim(workspace=other_workspace, task_id=job.pk, user=amy)
    assert (missing.value.code, missing.value.status) == ("task_not_found", 404)


def test_overdue_and_views(workspace, team):
    amy = team["amy"][0]
    now = timezone.now()
    late = task(workspace, "late", sla_minutes=5, now=now - timedelta(minutes=10))
    fresh = task(workspace, "fresh", sla_minutes=60, now=now)
    urgent = task(workspace, "urgent", sla_minutes=60, now=now, priority=1)
    assert list(tasks_overdue(workspace=workspace, now=now)) == [late]
    task_claim(workspace=workspace, task_id=fresh.pk, user=amy.user)
    assert [row.pk for row in task_list(workspace=workspace, membership=amy, view="mine", now=now)] == [fresh.pk]
    assert [row.pk for row in task_list(workspace=workspace, membership=amy, view="unassigned", now=now)] == \
        [urgent.pk, late.pk]  # priority first, then the nearest deadline
    assert task_counts(workspace=workspace, membership=amy, now=now) == {"mine": 1, "unassigned": 2, "overdue": 1,
                                                                        "all": 3}


def test_service_staff_see_their_own_and_unowned_customers_tasks(workspace, team):
    amy, bob, ops = team["amy"][0], team["bob"][0], team["ops"][0]
    mine = task(workspace, "amy", customer_id=customer(workspace, owner=amy.user).pk)
    unowned = task(workspace, "nobody", customer_id=customer(workspace).pk)
    bobs = task(workspace, "bob", customer_id=customer(workspace, owner=bob.user).pk)
    assert set(tasks_visible(workspace=workspace, membership=amy)) == {mine, unowned}
    assert set(tasks_visible(workspace=workspace, membership=ops)) == {mine, unowned, bobs}
    # on the console: bob's customer's task is a 404 for amy, and her claim changes nothing
    client = team["amy"][1]
    assert client.get(reverse("console:inbox_task", args=[bobs.pk])).status_code == 404
    assert client.post(reverse("console:inbox_claim", args=[bobs.pk])).status_code == 404
    assert StaffTask.objects.get(pk=bobs.pk).status == TaskStatus.OPEN
    page = client.get(reverse("console:inbox") + "?view=all").content.decode()
    assert f'data-task="{mine.pk}"' in page and f'data-task="{unowned.pk}"' in page
    assert f'data-task="{bobs.pk}"' not in page


def test_console_claim_complete_and_role_checks(workspace, team):
    job = task(workspace, "console", sla_minutes=5, now=timezone.now() - timedelta(minutes=30))
    analyst = team["ana"][1]
    assert analyst.get(reverse("console:inbox") + "?view=overdue").status_code == 200
    refused = analyst.post(reverse("console:inbox_claim", args=[job.pk]))
    assert refused.status_code == 403 and StaffTask.objects.get(pk=job.pk).status == TaskStatus.OPEN
    amy_client, bob_client = team["amy"][1], team["bob"][1]
    overdue = amy_client.get(reverse("console:inbox") + "?view=overdue").content.decode()
    assert f'data-task="{job.pk}"' in overdue and "data-overdue" in overdue and "已超时" in overdue
    assert amy_client.post(reverse("console:inbox_claim", args=[job.pk])).status_code == 302
    lost = bob_client.post(reverse("console:inbox_claim", args=[job.pk]))
    assert lost.status_code == 409 and "已被其他同事领取" in lost.content.decode()
    bad = amy_client.post(reverse("console:inbox_complete", args=[job.pk]), {"outcome": ""})
    assert bad.status_code == 400 and StaffTask.objects.get(pk=job.pk).status == TaskStatus.CLAIMED
    assert amy_client.post(reverse("console:inbox_complete", args=[job.pk]), {"outcome": "已处理"}).status_code == 302
    assert StaffTask.objects.get(pk=job.pk).status == TaskStatus.DONE
    assert amy_client.get(reverse("console:inbox") + "?view=done&level=bogus").status_code == 200
    assert amy_client.get(reverse("console:inbox_task", args=[999999])).status_code == 404
    no_reply = amy_client.post(reverse("console:inbox_reply", args=[job.pk]), {"text": "你好"})
    assert no_reply.status_code == 409
