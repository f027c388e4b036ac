"""Tags in sync both ways (corp library ↔ Siyu's "企业微信" group, marks ↔ customer tags) and customer
groups with their members, through wechatpy.enterprise against the simulator."""

from __future__ import annotations

import pytest

from siyu.customers.models import CustomerTag, Event, Identity, Tag
from siyu.customers.tagging import customer_tag_add, customer_tag_remove, tag_create
from siyu.wechat.work import tag_sync
from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.groups import groups_sync
from siyu.wechat.work.models import CustomerGroup, GroupMember, WorkTag
from siyu.wechat_sim import work as sim_work
from tests.wechat import work_fixtures
from tests.wechat.work_fixtures import sim_corp

corp, staff, immediate_tasks = work_fixtures.corp, work_fixtures.staff, work_fixtures.immediate_tasks
pytestmark = pytest.mark.django_db


@pytest.fixture
def way(workspace, corp, staff):
    return contact_way_save(workspace=workspace, app=corp, name="抖音", channel="douyin",
                            members=[(staff["lisi"].pk, 50)])


def _customer(app, external_userid):
    return Identity.objects.get(kind="external_userid", namespace=app.appid, value=external_userid).customer


def test_library_edits_in_wecom_arrive_as_siyu_tags(wechat_sim, corp):
    sim_work.corp_tag_add(wechat_sim, corp.appid, group_name="兴趣", names=["护肤", "彩妆"], notify=True)
    group_tags = dict(WorkTag.objects.filter(app=corp).values_list("name", "tag__group__name"))
    assert group_tags == {"护肤": "企业微信", "彩妆": "企业微信"}
    skin = WorkTag.objects.get(name="护肤")
    sim_work.corp_tag_edit(wechat_sim, corp.appid, tag_id=skin.wecom_id, name="敏感肌护肤", notify=True)
    assert Tag.objects.get(pk=skin.tag_id).name == "敏感肌护肤"
    sim_work.corp_tag_delete(wechat_sim, corp.appid, tag_ids=[skin.wecom_id], notify=True)
    skin.refresh_from_db()
    assert skin.deleted_at is not None and not Tag.objects.filter(pk=skin.tag_id).exists()


def test_marks_in_wecom_become_siyu_tags_and_back(wechat_sim, workspace, corp, way):
    view = sim_work.corp_tag_add(wechat_sim, corp.appid, group_name="兴趣", names=["护肤", "彩妆"], notify=True)
    skin_id, makeup_id = (tag["id"] for tag in view["tag"])
    person = sim_work.add_contact(wechat_sim, "t1", corp.appid, way.state)
    customer = _customer(corp, person["external_userid"])
    sim_work.staff_tag_customer(wechat_sim, corp.appid, "lisi", "t1", add=[skin_id])
    skin, makeup = WorkTag.objects.get(wecom_id=skin_id), WorkTag.objects.get(wecom_id=makeup_id)
    assert set(CustomerTag.objects.filter(customer=customer).values_list("tag_id", flat=True)) == {skin.tag_id}
    assert Event.objects.filter(type="wecom_edit").count() == 1

    # Siyu side: an operator adds 彩妆 and removes 护肤; the push marks and unmarks in WeCom
    customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=makeup.tag_id)
    customer_tag_remove(workspace=workspace, customer_id=customer.pk, tag_id=skin.tag_id)
    assert tag_sync.app_tags_push(corp) == 1
    relation = sim_corp(wechat_sim, corp).relations[("lisi", person["external_userid"])]
    assert relation.tags == {makeup_id}
    assert tag_sync.app_tags_push(corp) == 0  # nothing left to say


def test_siyu_tags_of_the_wecom_group_are_created_in_wecom(wechat_sim, workspace, corp):
    group = tag_sync.mirror_group(workspace)
    tag_create(workspace=workspace, group_id=group.pk, name="高净值")
    assert tag_sync.siyu_tags_export(corp) == 1
    library = sim_corp(wechat_sim, corp)
    assert [(library.tag_groups[tag.group_id].group_name, tag.name) for tag in library.tags.values()] == [
        ("Siyu", "高净值")]
    assert tag_sync.siyu_tags_export(corp) == 0


def test_contact_way_tag_from_the_mirror_is_marked_in_wecom_on_add(wechat_sim, workspace, corp, staff):
    sim_work.corp_tag_add(wechat_sim, corp.appid, group_name="来源", names=["抖音直播"], notify=True)
    mirrored = WorkTag.objects.get(name="抖音直播")
    way = contact_way_save(workspace=workspace, app=corp, name="抖音直播间", channel="douyin",
                           members=[(staff["wangwu"].pk, 10)], tag_ids=[mirrored.tag_id])
    person = sim_work.add_contact(wechat_sim, "t2", corp.appid, way.state)
    assert sim_corp(wechat_sim, corp).relations[("wangwu", person["external_userid"])].tags == {mirrored.wecom_id}


def test_group_membership_follows_callbacks(wechat_sim, corp, way):
    chat_id = sim_work.group_create(wechat_sim, corp.appid, "lisi", "会员福利群")
    group = CustomerGroup.objects.get(chat_id=chat_id)
    assert group.name == "会员福利群" and group.owner_userid == "lisi"
    sim_work.join_group(wechat_sim, "g1", corp.appid, chat_id)
    sim_work.join_group(wechat_sim, "g2", corp.appid, chat_id)
    members = GroupMember.objects.filter(group=group, left_at=None)
    assert members.filter(is_staff=False).count() == 2 and members.filter(is_staff=True).count() == 1
    assert Event.objects.filter(type="group_join").count() == 2
    g1 = sim_work.work_state(wechat_sim).corp(corp.appid).groups[chat_id].members
    assert len(g1) == 3
    sim_work.leave_group(wechat_sim, "g1", corp.appid, chat_id)
    assert GroupMember.objects.filter(group=group, is_staff=False, left_at=None).count() == 1
    assert Event.objects.filter(type="group_leave").count() == 1
    # a full sync adds nothing new
    assert groups_sync(corp) == 1
    assert Event.objects.filter(type__in=["group_join", "group_leave"]).count() == 3


def test_group_member_with_unionid_joins_the_known_customer(wechat_sim, corp, way):
    person = sim_work.add_contact(wechat_sim, "g3", corp.appid, way.state)
    chat_id = sim_work.group_create(wechat_sim, corp.appid, "lisi", "新品体验群")
    sim_work.join_group(wechat_sim, "g3", corp.appid, chat_id)
    member = GroupMember.objects.get(member_id=person["external_userid"])
    assert member.customer == _customer(corp, person["external_userid"])


def test_group_callback_while_wecom_is_busy_is_synced_later(wechat_sim, corp, way, immediate_tasks):
    chat_id = sim_work.group_create(wechat_sim, corp.appid, "lisi", "限流群")
    wechat_sim.faults.add("errcode", host="qyapi.weixin.qq.com", path="/cgi-bin/externalcontact/groupchat/get",
                          code=45009, times=2)  # the callback's call, then the follow-up task's first try
    immediate_tasks.flush()
    status = sim_work.join_group(wechat_sim, "busy1", corp.appid, chat_id)
    assert status == 200  # the callback itself is accepted and recorded
    assert not GroupMember.objects.filter(group__chat_id=chat_id, is_staff=False).exists()
    scheduled = immediate_tasks.scheduled()
    assert [task.args for task in scheduled] == [(corp.pk, chat_id, 1)]  # second attempt, after back-off
    from siyu.wechat.work.tasks import group_sync_task

    group_sync_task.call_local(*scheduled[0].args)  # the retry, when it comes
    assert GroupMember.objects.filter(group__chat_id=chat_id, is_staff=False).count() == 1
