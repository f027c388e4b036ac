"""End to end with the WeChat simulator: WeCom group members join (callbacks → Siyu's group sync →
community membership), members chat (the simulator's archive bridge → the signed bridge endpoint →
messages and moderation), and a bridge retry is harmless."""

from __future__ import annotations

from siyu.engagement.communities.models import CommunityMember, GroupMessage, ModerationRecord
from siyu.engagement.communities.services import bridge_secret_rotate, community_create, members_sync
from siyu.wechat_sim import groupchat
from siyu.wechat_sim import work as sim_work
from tests.wechat import work_fixtures
from tests.wechat.conftest import wechat_app_factory, wechat_sim, work_app  # noqa: F401 - fixtures

corp, staff, immediate_tasks = work_fixtures.corp, work_fixtures.staff, work_fixtures.immediate_tasks


def test_group_chat_reaches_siyu_once_and_is_moderated(wechat_sim, workspace, corp,  # noqa: F811
                                                       django_capture_on_commit_callbacks):
    chat_id = sim_work.group_create(wechat_sim, corp.appid, "lisi", "会员交流群")
    for user in ("g1", "g2"):
        sim_work.join_group(wechat_sim, user, corp.appid, chat_id)
    with django_capture_on_commit_callbacks(execute=True):
        community = community_create(workspace=workspace, name="会员交流群", type="exchange", chat_id=chat_id)
    assert CommunityMember.objects.filter(community=community, left_at=None).count() == 2

    key_id, secret = bridge_secret_rotate(workspace=workspace)
    groupchat.bridge_register(wechat_sim, corp.appid, key_id=key_id, secret=secret)
    first = groupchat.say(wechat_sim, corp.appid, chat_id, "g1", "这款精华用了两周，皮肤稳定多了")
    assert first["bridge_status"] == 200
    groupchat.say(wechat_sim, corp.appid, chat_id, "g2", "同感！", reply_to=first["msg_id"])
    groupchat.say(wechat_sim, corp.appid, chat_id, "lisi", "感谢分享～", staff=True)
    wechat_sim.faults.add("duplicate_notify", host="qyapi.weixin.qq.com", path="/bridge", times=1)
    groupchat.say(wechat_sim, corp.appid, chat_id, "g2", "扫码领福利", msg_type="image", qr=True)

    stored = GroupMessage.objects.filter(community=community).order_by("sent_at", "pk")
    assert stored.count() == 4  # the retried one is stored once
    assert stored.filter(is_staff=False, customer__isnull=False).count() == 3
    assert list(ModerationRecord.objects.filter(community=community).values_list("kind", flat=True)) == ["card"]

    sim_work.leave_group(wechat_sim, "g1", corp.appid, chat_id)
    with django_capture_on_commit_callbacks(execute=True):
        members_sync(community=community)
    assert CommunityMember.objects.filter(community=community, left_at=None).count() == 1
