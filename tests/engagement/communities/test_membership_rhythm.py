"""Membership in step with the WeCom group (events published), group creation input, and the rhythm:
tasks at the planned times, produced once per (group, slot, day)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from siyu.core.domain_events import subscribe, unsubscribe
from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.engagement.communities import COMMUNITY_JOINED, COMMUNITY_LEFT
from siyu.engagement.communities.models import Community, CommunityMember, RhythmRun, RhythmSlot
from siyu.engagement.communities.rhythm import rhythm_run_due, rhythm_slot_save, rhythm_slots
from siyu.engagement.communities.services import community_create, members_sync
from siyu.engagement.inbox.models import StaffTask
from siyu.wechat.work.models import GroupMember


@pytest.fixture
def published():
    seen = []

    def joined(**payload):
        seen.append(("joined", payload))

    def left(**payload):
        seen.append(("left", payload))

    subscribe(COMMUNITY_JOINED, joined)
    subscribe(COMMUNITY_LEFT, left)
    yield seen
    unsubscribe(COMMUNITY_JOINED, joined)
    unsubscribe(COMMUNITY_LEFT, left)


def test_linking_takes_the_groups_customers_and_sync_follows_leaves(workspace, wecom_group, published,
                                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        community = community_create(workspace=workspace, name="交流群", type="exchange", chat_id="wrChat1")
    assert CommunityMember.objects.filter(community=community, left_at=None).count() == 3  # staff not counted
    assert published[0][0] == "joined" and len(published[0][1]["customer_ids"]) == 3
    assert published[0][1]["community_id"] == community.pk and published[0][1]["workspace_id"] == workspace.pk
    GroupMember.objects.filter(group=wecom_group, member_id="wm2").update(left_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert members_sync(community=community) == {"joined": 0, "left": 1}
        assert members_sync(community=community) == {"joined": 0, "left": 0}
    assert published[-1][0] == "left" and len(published) == 2
    assert CommunityMember.objects.filter(community=community, left_at=None).count() == 2


def test_create_refuses_bad_input_and_writes_nothing(workspace, wecom_group):
    cases = [({"name": "", "type": "vip"}, "community_field_required"),
             ({"name": "x", "type": "nope"}, "community_type_invalid"),
             ({"name": "x", "type": "vip", "chat_id": "wrUnknown"}, "community_group_unknown"),
             ({"name": "x", "type": "vip", "owner_id": "999999"}, "community_owner_invalid"),
             ({"name": "x" * 65, "type": "vip"}, "community_field_too_long")]
    for kwargs, code in cases:
        with pytest.raises(SiyuError) as refused:
            community_create(workspace=workspace, **kwargs)
        assert refused.value.code == code
    assert not Community.objects.exists()
    community_create(workspace=workspace, name="a", type="vip", chat_id="wrChat1")
    with pytest.raises(SiyuError) as refused:
        community_create(workspace=workspace, name="b", type="vip", chat_id="wrChat1")
    assert (refused.value.code, refused.value.status) == ("community_group_linked", 409)
    assert Community.objects.count() == 1


def test_rhythm_defaults_are_seeded_and_editable(workspace):
    slots = rhythm_slots(workspace=workspace, community_type="welfare")
    assert len(slots) == 10 and rhythm_slots(workspace=workspace, community_type="welfare")[0].pk == slots[0].pk
    changed = rhythm_slot_save(workspace=workspace, community_type="welfare", slot_id=slots[0].pk, weekday=7,
                               at="08:30", theme="早安", content="早安问候", action="task")
    assert changed.at == time(8, 30)
    for kwargs, code in [({"weekday": 9}, "rhythm_weekday_invalid"), ({"at": "25:99"}, "rhythm_time_invalid"),
                         ({"theme": ""}, "rhythm_theme_invalid"), ({"action": "sms"}, "rhythm_action_invalid")]:
        with pytest.raises(SiyuError) as refused:
            rhythm_slot_save(workspace=workspace, community_type="welfare",
                             **({"weekday": 1, "at": "10:00", "theme": "t", "action": "task"} | kwargs))
        assert refused.value.code == code
    assert RhythmSlot.objects.filter(workspace=workspace).count() == 10


def test_rhythm_produces_each_slot_once_per_group_and_day(workspace):
    community = community_create(workspace=workspace, name="福利群", type="welfare")
    monday = datetime(2026, 11, 23, 21, 0, tzinfo=SHANGHAI)  # a Monday, 21:00 Shanghai
    produced = rhythm_run_due(workspace=workspace, now=monday)
    # Within the 3-hour look-back: 20:00 daily interaction and the 19:30 Monday theme.
    assert produced == 2
    assert rhythm_run_due(workspace=workspace, now=monday) == 0
    assert rhythm_run_due(workspace=workspace, now=monday + timedelta(minutes=10)) == 0
    tasks = StaffTask.objects.filter(workspace=workspace, source="community").order_by("due_at")
    assert [task.title for task in tasks] == ["【话题讨论】福利群", "【晚间互动】福利群"]
    assert tasks[0].due_at == datetime(2026, 11, 23, 20, 30, tzinfo=SHANGHAI)  # planned 19:30 + 60 min
    assert RhythmRun.objects.filter(community=community).count() == 2
    tuesday_morning = datetime(2026, 11, 24, 9, 5, tzinfo=SHANGHAI)
    assert rhythm_run_due(workspace=workspace, now=tuesday_morning) == 1  # 早安资讯 09:00


def test_rhythm_mass_send_without_a_synced_group_falls_back_to_a_task(workspace):
    community = community_create(workspace=workspace, name="兴趣群", type="interest")
    slot = rhythm_slots(workspace=workspace, community_type="interest")[0]
    rhythm_slot_save(workspace=workspace, community_type="interest", slot_id=slot.pk, weekday=7, at="09:00",
                     theme="早安资讯", content="早安", action="mass_send")
    Community.objects.filter(pk=community.pk).update(wecom_chat_id="wrNotSynced")
    rhythm_run_due(workspace=workspace, now=datetime(2026, 11, 24, 9, 1, tzinfo=SHANGHAI))
    run = RhythmRun.objects.get(slot=slot)
    assert run.outcome == "task" and run.task_id and "群发未创建" in run.error
