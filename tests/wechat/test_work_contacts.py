"""External contacts end to end: the simulator delivers encrypted WeCom callbacks, Siyu answers through
wechatpy.enterprise against the simulator (联系我, welcome, externalcontact/get, mark_tag)."""

from __future__ import annotations

import pytest

from siyu.customers.models import Customer, CustomerTag, Event, Identity
from siyu.customers.tagging import tag_create, tag_group_create
from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.models import ContactRelation, ContactWayStaff, RelationStatus, Staff, StaffStatus
from siyu.wechat_sim import work as sim_work
from tests.wechat import work_fixtures
from tests.wechat.work_fixtures import sim_corp

corp, staff, immediate_tasks = work_fixtures.corp, work_fixtures.staff, work_fixtures.immediate_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def vip_tag(workspace):
    group = tag_group_create(workspace=workspace, name="来源")
    return tag_create(workspace=workspace, group_id=group.pk, name="小红书引流")


@pytest.fixture
def way(workspace, corp, staff, vip_tag):
    return contact_way_save(workspace=workspace, app=corp, name="小红书笔记", channel="xiaohongshu",
                            members=[(staff["zhangsan"].pk, 2), (staff["lisi"].pk, 1)], tag_ids=[vip_tag.pk],
                            welcome_text="欢迎添加，回复 1 领取新人券")


def test_add_via_contact_way_makes_an_attributed_tagged_welcomed_customer(wechat_sim, corp, way, vip_tag):
    added = sim_work.add_contact(wechat_sim, "u100", corp.appid, way.state)
    assert added["status"] == 200
    external = Identity.objects.get(kind="external_userid", namespace=corp.appid, value=added["external_userid"])
    customer = external.customer
    assert set(Identity.objects.filter(customer=customer).values_list("kind", flat=True)) == {"external_userid",
                                                                                               "unionid"}
    assert customer.first_channel == "xiaohongshu"
    event = Event.objects.get(identity__customer=customer, type="wecom_add")
    assert event.channel == "xiaohongshu" and event.properties["state"] == way.state
    assert CustomerTag.objects.filter(customer=customer, tag=vip_tag).exists()
    relation = ContactRelation.objects.get(external_userid=added["external_userid"])
    assert relation.staff.userid == added["userid"] and relation.contact_way == way
    assert relation.welcomed_at is not None
    welcomes = sim_corp(wechat_sim, corp).welcomes
    assert welcomes == [{"userid": added["userid"], "external_userid": added["external_userid"],
                         "text": "欢迎添加，回复 1 领取新人券", "sent_at": welcomes[0]["sent_at"]}]


def test_duplicated_callback_is_harmless(wechat_sim, corp, way):
    wechat_sim.faults.add("duplicate_notify", host="qyapi.weixin.qq.com", path="/callback")
    added = sim_work.add_contact(wechat_sim, "u101", corp.appid, way.state)
    statuses = [status for _url, status in wechat_sim.delivered]
    assert statuses[-2] == 200 and statuses[-1] == 403  # the exact retry is a replayed nonce
    assert Event.objects.filter(type="wecom_add").count() == 1
    assert ContactRelation.objects.filter(external_userid=added["external_userid"]).count() == 1
    assert len(sim_corp(wechat_sim, corp).welcomes) == 1


def test_same_report_under_a_new_nonce_changes_nothing(wechat_sim, corp, way):
    from siyu.wechat_sim import crypto

    added = sim_work.add_contact(wechat_sim, "u102", corp.appid, way.state)
    sim_app = wechat_sim.state.apps[corp.appid]
    xml = sim_work.event_xml(corp.appid, "change_external_contact", {
        "ChangeType": "add_external_contact", "UserID": added["userid"], "ExternalUserID": added["external_userid"],
        "State": way.state, "WelcomeCode": added["welcome_code"]}, at=int(Event.objects.get().occurred_at.timestamp()))
    body, query = crypto.safe_envelope(sim_app.token, sim_app.encoding_aes_key, corp.appid, xml)
    params = "&".join(f"{name}={query[name]}" for name in ("msg_signature", "timestamp", "nonce"))
    status, answer = wechat_sim.deliver(f"/wx/work/{corp.appid}/callback?{params}", body.encode(),
                                        {"Content-Type": "text/xml"})
    assert (status, answer) == (200, b"success")
    assert Event.objects.count() == 1 and Customer.objects.count() == 1
    assert ContactRelation.objects.count() == 1


def test_daily_cap_takes_a_member_out_of_rotation_until_tomorrow(wechat_sim, corp, way, staff):
    seen = [sim_work.add_contact(wechat_sim, f"cap{index}", corp.appid, way.state)["userid"] for index in range(3)]
    assert sorted(seen) == ["lisi", "zhangsan", "zhangsan"]
    # lisi reached 1 and zhangsan 2: both paused; no fallback, so the code keeps its last member
    paused = dict(ContactWayStaff.objects.filter(contact_way=way).values_list("staff__userid", "paused_on"))
    assert all(paused.values())
    sim_way = sim_corp(wechat_sim, corp).contact_ways[way.config_id]
    assert sim_way.users == ["lisi"]
    from datetime import timedelta

    from django.utils import timezone

    from siyu.core.timeutil import local_day
    from siyu.wechat.work.tasks import contact_way_rotations_daily

    yesterday = local_day(timezone.now()) - timedelta(days=1)  # as if those adds happened yesterday
    ContactWayStaff.objects.filter(contact_way=way).update(paused_on=yesterday)
    for relation in ContactRelation.objects.all():
        ContactRelation.objects.filter(pk=relation.pk).update(added_at=relation.added_at - timedelta(days=1))
    contact_way_rotations_daily.call_local()
    assert sim_way.users == ["zhangsan", "lisi"]


def test_cap_with_fallback_routes_to_fallback(wechat_sim, workspace, corp, staff):
    way = contact_way_save(workspace=workspace, app=corp, name="门店", channel="store",
                           members=[(staff["zhangsan"].pk, 1)], fallback_id=staff["wangwu"].pk)
    first = sim_work.add_contact(wechat_sim, "f1", corp.appid, way.state)
    second = sim_work.add_contact(wechat_sim, "f2", corp.appid, way.state)
    assert (first["userid"], second["userid"]) == ("zhangsan", "wangwu")


def test_customer_deletes_staff_then_staff_leaves_and_customers_transfer(wechat_sim, workspace, corp, way, staff):
    from siyu.wechat.work.models import Transfer, TransferStatus
    from siyu.wechat.work.transfers import transfer_request, transfers_refresh

    gone = sim_work.add_contact(wechat_sim, "d1", corp.appid, way.state)
    kept = sim_work.add_contact(wechat_sim, "d2", corp.appid, way.state)
    sim_work.delete_contact(wechat_sim, "d1", corp.appid, gone["userid"])
    relation = ContactRelation.objects.get(external_userid=gone["external_userid"])
    assert (relation.status, relation.removed_by) == (RelationStatus.REMOVED, "customer")
    assert Event.objects.filter(type="wecom_delete").count() == 1

    leaver = Staff.objects.get(app=corp, userid=kept["userid"])
    sim_work.staff_resign(wechat_sim, corp.appid, leaver.userid)
    leaver.refresh_from_db()
    assert leaver.status == StaffStatus.LEFT
    others = [userid for userid in ("zhangsan", "lisi") if userid != leaver.userid]
    assert sim_corp(wechat_sim, corp).contact_ways[way.config_id].users == others  # out of the rotation
    assert transfer_request(workspace=workspace, app=corp, handover_id=leaver.pk,
                            takeover_id=staff["wangwu"].pk) == 1
    assert transfers_refresh(corp) == {"done": 0, "refused": 0}
    sim_work.transfers_complete(wechat_sim, corp.appid)
    assert transfers_refresh(corp) == {"done": 1, "refused": 0}
    transfer = Transfer.objects.get()
    assert transfer.status == TransferStatus.DONE
    moved = ContactRelation.objects.get(external_userid=kept["external_userid"], staff=staff["wangwu"])
    assert moved.status == RelationStatus.ACTIVE
    assert ContactRelation.objects.get(external_userid=kept["external_userid"], staff=leaver).status == "transferred"
    assert Event.objects.filter(type="wecom_transfer").count() == 1


def test_transfer_refused_by_customer_is_recorded(wechat_sim, workspace, corp, way, staff):
    from siyu.wechat.work.models import Transfer, TransferStatus
    from siyu.wechat.work.transfers import transfer_request

    kept = sim_work.add_contact(wechat_sim, "r1", corp.appid, way.state)
    leaver = Staff.objects.get(app=corp, userid=kept["userid"])
    sim_work.staff_resign(wechat_sim, corp.appid, leaver.userid)
    transfer_request(workspace=workspace, app=corp, handover_id=leaver.pk, takeover_id=staff["wangwu"].pk)
    sim_work.transfers_complete(wechat_sim, corp.appid, refuse={kept["external_userid"]})
    assert Transfer.objects.get().status == TransferStatus.REFUSED


def test_transfer_of_an_active_member_is_refused(workspace, corp, staff):
    from siyu.core.errors import SiyuError
    from siyu.wechat.work.transfers import transfer_request

    with pytest.raises(SiyuError) as refused:
        transfer_request(workspace=workspace, app=corp, handover_id=staff["lisi"].pk, takeover_id=staff["wangwu"].pk)
    assert refused.value.code == "transfer_not_resigned"


def test_url_verification_and_hostile_callbacks(client, wechat_sim, corp):
    from siyu.wechat_sim import crypto

    sim_app = wechat_sim.state.apps[corp.appid]
    query = crypto.verify_url_query(sim_app.token, sim_app.encoding_aes_key, corp.appid, "echo-123")
    answer = client.get(f"/wx/work/{corp.appid}/callback", query)
    assert (answer.status_code, answer.content) == (200, b"echo-123")
    xml = sim_work.event_xml(corp.appid, "change_external_contact", {"ChangeType": "add_external_contact",
                                                                     "UserID": "lisi", "ExternalUserID": "wmX"})
    body, query = crypto.safe_envelope(sim_app.token, sim_app.encoding_aes_key, corp.appid, xml)
    query["msg_signature"] = "0" * 40
    params = "&".join(f"{name}={query[name]}" for name in ("msg_signature", "timestamp", "nonce"))
    refused = client.post(f"/wx/work/{corp.appid}/callback?{params}", body, content_type="text/xml")
    assert refused.status_code == 403
    assert client.post(f"/wx/work/nosuchcorp/callback?{params}", body, content_type="text/xml").status_code == 404
    assert not ContactRelation.objects.exists() and not Event.objects.exists()


def test_relation_follows_a_merge_of_its_customer(wechat_sim, workspace, corp, way,
                                                  django_capture_on_commit_callbacks):
    from django.utils import timezone

    from siyu.customers.ingestion import events_ingest

    user = wechat_sim.state.user("merge1")
    user.extra["has_unionid"] = False  # WeCom does not tell the unionid yet
    unionid = wechat_sim.state.unionid(user, corp.appid)
    from datetime import timedelta

    now = timezone.now().isoformat()
    earlier = (timezone.now() - timedelta(hours=1)).isoformat()
    events_ingest(workspace=workspace, events=[{"event_id": "mp-sub-1", "type": "subscribe", "occurred_at": earlier,
                                                "identities": [{"kind": "unionid", "value": unionid},
                                                               {"kind": "openid", "namespace": "wxmp", "value": "o1"}]}])
    added = sim_work.add_contact(wechat_sim, user, corp.appid, way.state)
    relation = ContactRelation.objects.get(external_userid=added["external_userid"])
    official = Identity.objects.get(kind="unionid").customer
    assert relation.customer != official
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(workspace=workspace, events=[{
            "event_id": "link-1", "type": "wecom_edit", "occurred_at": now,
            "identities": [{"kind": "external_userid", "namespace": corp.appid, "value": added["external_userid"]},
                           {"kind": "unionid", "value": unionid}]}])
    live = Identity.objects.get(kind="external_userid").customer
    assert live == Identity.objects.get(kind="unionid").customer == official  # the earlier profile wins
    relation.refresh_from_db()
    assert relation.customer == live


def test_staff_deleting_a_half_added_customer(wechat_sim, corp, way):
    added = sim_work.add_contact(wechat_sim, "h1", corp.appid, way.state, half=True)
    relation = ContactRelation.objects.get(external_userid=added["external_userid"])
    assert relation.status == RelationStatus.ACTIVE
    sim_work.delete_contact(wechat_sim, "h1", corp.appid, added["userid"], by="staff")
    relation.refresh_from_db()
    assert (relation.status, relation.removed_by) == (RelationStatus.REMOVED, "staff")
    # the customer adds again through the same code: the relation is active again, a new event
    again = sim_work.add_contact(wechat_sim, "h1", corp.appid, way.state)
    relation = ContactRelation.objects.get(external_userid=again["external_userid"], staff__userid=again["userid"])
    assert relation.status == RelationStatus.ACTIVE
    assert Event.objects.filter(type="wecom_add").count() == 2
