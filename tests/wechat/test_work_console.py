"""The 企业微信 console pages: who may see and edit, forms that call WeCom, bad input refused with
nothing changed."""

from __future__ import annotations

import pytest

from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.models import ContactWay, MassSend, MassSendRecipient, MassSendStatus, RecipientStatus
from siyu.wechat_sim import work as sim_work
from tests.wechat import work_fixtures
from tests.wechat.work_fixtures import sim_corp

corp, staff, immediate_tasks = work_fixtures.corp, work_fixtures.staff, work_fixtures.immediate_tasks
pytestmark = pytest.mark.django_db


@pytest.fixture
def way(workspace, corp, staff):
    return contact_way_save(workspace=workspace, app=corp, name="小红书笔记", channel="xiaohongshu",
                            members=[(staff["zhangsan"].pk, 5)], welcome_text="你好")


def test_pages_by_role(clients, wechat_sim, corp, way):
    sim_work.add_contact(wechat_sim, "p1", corp.appid, way.state)
    for role in ("admin", "operator", "analyst"):
        overview = clients[role].get("/wechat/work/")
        assert overview.status_code == 200
        html = overview.content.decode()
        assert 'data-staff="zhangsan"' in html and "1 / 5" in html
        assert ("创建群发任务" in html) == (role != "analyst")
        codes = clients[role].get("/wechat/work/contact-ways/")
        assert codes.status_code == 200
        assert "小红书笔记" in codes.content.decode() and way.state in codes.content.decode()
    assert clients["service"].get("/wechat/work/").status_code == 403
    assert clients["service"].get("/wechat/work/contact-ways/").status_code == 403


def test_create_contact_way_from_the_console(clients, wechat_sim, corp, staff):
    answer = clients["operator"].post("/wechat/work/contact-ways/save", {
        "app": corp.appid, "name": "门店收银台", "channel": "store", "staff_id": [staff["lisi"].pk, staff["wangwu"].pk],
        f"cap_{staff['lisi'].pk}": "30", f"cap_{staff['wangwu'].pk}": "20", "welcome_text": "欢迎光临"})
    assert answer.status_code == 302
    way = ContactWay.objects.get(name="门店收银台")
    assert sorted(way.members.values_list("staff__userid", "daily_cap")) == [("lisi", 30), ("wangwu", 20)]
    assert sim_corp(wechat_sim, corp).contact_ways[way.config_id].users == ["lisi", "wangwu"]


@pytest.mark.parametrize("fields, code", [
    ({"name": "", "channel": "store"}, "名称必填"),
    ({"name": "好", "channel": "nowhere-at-all"}, "已登记的渠道"),
    ({"name": "好", "channel": "store", "cap": "0"}, "每日上限必须"),
    ({"name": "好", "channel": "store", "cap": "abc"}, "每日上限必须"),
    ({"name": "好", "channel": "store", "no_staff": True}, "至少选择一名"),
    ({"name": "好", "channel": "xiaohongshu"}, "该渠道已有"),
])
def test_contact_way_form_refuses_bad_input(clients, wechat_sim, corp, staff, way, fields, code):
    before = set(sim_corp(wechat_sim, corp).contact_ways)
    data = {"app": corp.appid, "name": fields["name"], "channel": fields["channel"]}
    if not fields.get("no_staff"):
        data.update({"staff_id": [staff["lisi"].pk], f"cap_{staff['lisi'].pk}": fields.get("cap", "10")})
    answer = clients["admin"].post("/wechat/work/contact-ways/save", data)
    assert answer.status_code in (400, 409)
    assert code in answer.content.decode()
    assert ContactWay.objects.count() == 1 and set(sim_corp(wechat_sim, corp).contact_ways) == before


def test_analyst_and_service_cannot_edit(clients, wechat_sim, corp, staff, way):
    for role in ("analyst", "service"):
        answer = clients[role].post("/wechat/work/contact-ways/save", {
            "app": corp.appid, "name": "偷偷改", "channel": "douyin", "staff_id": [staff["lisi"].pk],
            f"cap_{staff['lisi'].pk}": "10"})
        assert answer.status_code == 403
        assert clients[role].post("/wechat/work/mass-send", {"app": corp.appid, "text": "hi"}).status_code == 403
    assert ContactWay.objects.count() == 1 and not MassSend.objects.exists()


def test_mass_send_over_the_monthly_limit_is_explained(clients, wechat_sim, workspace, corp, way):
    from siyu.wechat.work import campaigns
    from siyu.wechat.work.models import ContactRelation

    sim_work.add_contact(wechat_sim, "m1", corp.appid, way.state)
    customer_id = ContactRelation.objects.get().customer_id
    for _ in range(campaigns.monthly_limit()):
        previous = MassSend.objects.create(workspace=workspace, app=corp, text="x", status=MassSendStatus.FINISHED)
        MassSendRecipient.objects.create(workspace=workspace, mass_send=previous, customer_id=customer_id,
                                         external_userid="wmOld", month=campaigns.month_key(),
                                         status=RecipientStatus.SENT)
    before = MassSend.objects.count()
    answer = clients["operator"].post("/wechat/work/mass-send", {"app": corp.appid, "text": "再发一条"})
    assert answer.status_code == 409
    assert "达到企业微信的上限" in answer.content.decode()
    assert MassSend.objects.count() == before


def test_mass_send_and_transfer_forms(clients, wechat_sim, corp, staff, way):
    person = sim_work.add_contact(wechat_sim, "m2", corp.appid, way.state)
    answer = clients["operator"].post("/wechat/work/mass-send", {"app": corp.appid, "text": "新品到店"})
    assert answer.status_code == 302
    mass = MassSend.objects.get()
    assert mass.status == MassSendStatus.CREATED
    sim_work.staff_confirm_mass_send(wechat_sim, corp.appid, mass.msgid, "zhangsan")
    assert clients["operator"].post("/wechat/work/refresh", {"app": corp.appid}).status_code == 302
    assert MassSendRecipient.objects.get().status == RecipientStatus.SENT
    page = clients["analyst"].get("/wechat/work/").content.decode()
    assert f'data-mass-send="{mass.pk}"' in page and "已送达 1" in page and "1 / 1" in page

    refused = clients["admin"].post("/wechat/work/transfer", {"app": corp.appid, "handover_id": staff["zhangsan"].pk,
                                                              "takeover_id": staff["lisi"].pk})
    assert refused.status_code == 409  # zhangsan has not left
    sim_work.staff_resign(wechat_sim, corp.appid, "zhangsan")
    moved = clients["admin"].post("/wechat/work/transfer", {"app": corp.appid, "handover_id": staff["zhangsan"].pk,
                                                            "takeover_id": staff["lisi"].pk})
    assert moved.status_code == 302
    overview = clients["admin"].get("/wechat/work/").content.decode()
    assert "等待接替" in overview
    assert person["external_userid"] not in overview  # the customer is shown as a link to their profile


def test_unknown_corp_is_404(clients, corp):
    assert clients["admin"].get("/wechat/work/?app=nope").status_code == 404


def test_sync_button_brings_members_tags_and_groups(clients, wechat_sim, corp):
    from siyu.wechat.work.models import CustomerGroup, Staff, WorkTag

    sim_work.staff_add(wechat_sim, corp.appid, "zhaoliu", "赵六")
    sim_work.corp_tag_add(wechat_sim, corp.appid, group_name="会员", names=["金卡"])
    with wechat_sim.lock:  # a group created while Siyu was not listening (no callback)
        state = sim_work.work_state(wechat_sim).corp(corp.appid)
        state.groups["wrOffline1"] = sim_work.GroupChat("wrOffline1", "老客群", "lisi", 1_700_000_000, {})
    assert clients["analyst"].post("/wechat/work/sync", {"app": corp.appid}).status_code == 403
    assert clients["operator"].post("/wechat/work/sync", {"app": corp.appid}).status_code == 302
    assert Staff.objects.filter(app=corp, userid="zhaoliu", name="赵六").exists()
    assert WorkTag.objects.filter(app=corp, name="金卡").exists()
    assert CustomerGroup.objects.filter(app=corp, chat_id="wrOffline1", name="老客群").exists()


def test_pages_without_a_corp(clients):
    for url in ("/wechat/work/", "/wechat/work/contact-ways/"):
        answer = clients["admin"].get(url)
        assert answer.status_code == 200 and "还没有接入企业微信" in answer.content.decode()
    refused = clients["admin"].post("/wechat/work/mass-send", {"text": "hi"})
    assert refused.status_code == 400 and "请先接入企业微信" in refused.content.decode()
