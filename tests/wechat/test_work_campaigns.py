"""Mass-send and moments tasks within WeCom's rules (SPEC W6), and the frequency limits: refusals say
why, rate-limited calls are recorded as issues and retried later, never dropped."""

from __future__ import annotations

import pytest
from django.test import override_settings

from siyu.core.errors import SiyuError
from siyu.wechat.models import ApiIssue
from siyu.wechat.work import campaigns, wecom
from siyu.wechat.work.contact_ways import contact_way_save
from siyu.wechat.work.models import (
    MassSend,
    MassSendRecipient,
    MassSendStatus,
    MomentTask,
    RecipientStatus,
)
from siyu.wechat.work.tasks import mass_send_submit_task
from siyu.wechat_sim import work as sim_work
from tests.wechat import work_fixtures
from tests.wechat.work_fixtures import sim_corp

corp, staff, immediate_tasks = work_fixtures.corp, work_fixtures.staff, work_fixtures.immediate_tasks
pytestmark = pytest.mark.django_db


@pytest.fixture
def contacts(wechat_sim, workspace, corp, staff):
    way = contact_way_save(workspace=workspace, app=corp, name="门店收银台", channel="store",
                           members=[(staff["zhangsan"].pk, 100), (staff["lisi"].pk, 100)])
    people = [sim_work.add_contact(wechat_sim, f"c{index}", corp.appid, way.state) for index in range(3)]
    from siyu.wechat.work.models import ContactRelation

    return {person["external_userid"]: ContactRelation.objects.get(external_userid=person["external_userid"])
            .customer_id for person in people}


def test_mass_send_is_a_task_each_member_confirms(wechat_sim, workspace, corp, contacts):
    mass = campaigns.mass_send_create(workspace=workspace, app=corp, text="周末会员日 8 折",
                                      customer_ids=list(contacts.values()))
    assert mass.status == MassSendStatus.CREATED and mass.msgid
    assert sorted(mass.staff_tasks.values_list("userid", flat=True)) == ["lisi", "zhangsan"]
    assert campaigns.mass_send_refresh(mass) == {}  # nobody confirmed yet: nothing is sent
    sim_work.staff_confirm_mass_send(wechat_sim, corp.appid, mass.msgid, "zhangsan")
    campaigns.mass_send_refresh(mass)
    mass.refresh_from_db()
    assert mass.status == MassSendStatus.CREATED
    zhang = MassSendRecipient.objects.filter(mass_send=mass, userid="zhangsan")
    assert set(zhang.values_list("status", flat=True)) == {RecipientStatus.SENT}
    assert set(MassSendRecipient.objects.filter(mass_send=mass, userid="lisi").values_list("status", flat=True)) == {
        RecipientStatus.PENDING}
    sim_work.staff_confirm_mass_send(wechat_sim, corp.appid, mass.msgid, "lisi")
    campaigns.mass_send_refresh(mass)
    mass.refresh_from_db()
    assert mass.status == MassSendStatus.FINISHED
    assert mass.recipients.filter(status=RecipientStatus.SENT).count() == 3


def test_monthly_limit_is_refused_with_the_reason(workspace, corp, contacts):
    first = next(iter(contacts.values()))
    limit = campaigns.monthly_limit()
    for _ in range(limit):  # this customer already has a month's worth
        previous = MassSend.objects.create(workspace=workspace, app=corp, text="x", status=MassSendStatus.FINISHED)
        MassSendRecipient.objects.create(workspace=workspace, mass_send=previous, customer_id=first,
                                         external_userid="wmOld", month=campaigns.month_key(),
                                         status=RecipientStatus.SENT)
    before = MassSend.objects.count()
    with pytest.raises(SiyuError) as refused:
        campaigns.mass_send_create(workspace=workspace, app=corp, text="再来一条", customer_ids=list(contacts.values()))
    assert refused.value.code == "mass_send_monthly_limit" and refused.value.status == 409
    assert f"本月已收到 {limit} 条群发" in refused.value.message_zh and "banned" in refused.value.message_en
    assert refused.value.details == {"over_limit": 1, "limit": limit, "requested": 3}
    assert MassSend.objects.count() == before  # nothing created
    mass = campaigns.mass_send_create(workspace=workspace, app=corp, text="再来一条",
                                      customer_ids=list(contacts.values()), skip_over_limit=True)
    assert mass.skipped_over_limit == 1 and mass.recipients.count() == 2


def test_bad_input_is_refused(workspace, corp, contacts):
    for text, ids, code in (("", list(contacts.values()), "mass_send_text_required"),
                            ("好", [], "mass_send_no_customers"),
                            ("好", [999999], "mass_send_no_contacts"),
                            ("长" * 2000, list(contacts.values()), "mass_send_text_too_long")):
        with pytest.raises(SiyuError) as refused:
            campaigns.mass_send_create(workspace=workspace, app=corp, text=text, customer_ids=ids)
        assert refused.value.code == code
    assert not MassSend.objects.exists()


def test_rate_limited_send_is_recorded_and_retried_with_backoff(wechat_sim, workspace, corp, contacts,
                                                                immediate_tasks):
    wechat_sim.faults.add("errcode", host="qyapi.weixin.qq.com", path="/cgi-bin/externalcontact/add_msg_template",
                          code=45033, message="api concurrent out of limit")
    with pytest.raises(wecom.RateLimited):
        campaigns.mass_send_create(workspace=workspace, app=corp, text="限流测试", customer_ids=list(contacts.values()))
    mass = MassSend.objects.get()
    assert mass.status == MassSendStatus.QUEUED
    issue = ApiIssue.objects.get(api="externalcontact/add_msg_template")
    assert issue.errcode == 45033 and issue.resolved_at is None
    immediate_tasks.flush()
    mass_send_submit_task.call_local(mass.pk, 0)  # WeCom still busy? no: the fault was used once
    mass.refresh_from_db()
    assert mass.status == MassSendStatus.CREATED


def test_task_retry_is_scheduled_not_dropped(wechat_sim, workspace, corp, contacts, immediate_tasks):
    wechat_sim.faults.add("errcode", host="qyapi.weixin.qq.com", path="/cgi-bin/externalcontact/add_msg_template",
                          code=45009, times=2)
    with pytest.raises(wecom.RateLimited):
        campaigns.mass_send_create(workspace=workspace, app=corp, text="限流", customer_ids=list(contacts.values()))
    mass = MassSend.objects.get()
    immediate_tasks.flush()
    mass_send_submit_task.call_local(mass.pk, 0)
    scheduled = immediate_tasks.scheduled()
    assert len(scheduled) == 1 and scheduled[0].args == (mass.pk, 1)
    mass.refresh_from_db()
    assert mass.status == MassSendStatus.QUEUED
    assert ApiIssue.objects.get(api="externalcontact/add_msg_template").count == 2


def test_local_limiter_refuses_before_wecom(wechat_sim, corp):
    limits = {"minute": (60, 2), "hour": (3600, 100)}
    with override_settings(SIYU_WECOM_LIMITS=limits):
        from django.core.cache import cache

        cache.clear()
        client = wecom.client(corp)
        calls_before = len(wechat_sim.state.calls)
        wecom.call(corp, "externalcontact/get_follow_user_list", client.external_contact.get_follow_user_list)
        wecom.call(corp, "externalcontact/get_follow_user_list", client.external_contact.get_follow_user_list)
        with pytest.raises(wecom.RateLimited) as limited:
            wecom.call(corp, "externalcontact/get_follow_user_list", client.external_contact.get_follow_user_list)
        assert 0 < limited.value.retry_after <= 61
        assert len(wechat_sim.state.calls) == calls_before + 2  # the third never left Siyu
    assert ApiIssue.objects.get(api="externalcontact/get_follow_user_list").errcode == 45009


def test_simulator_frequency_limit_surfaces_as_rate_limited(wechat_sim, corp):
    sim_corp(wechat_sim, corp).limits["minute"] = 1
    client = wecom.client(corp)
    wecom.call(corp, "externalcontact/get_follow_user_list", client.external_contact.get_follow_user_list)
    with pytest.raises(wecom.RateLimited) as limited:
        wecom.call(corp, "externalcontact/get_follow_user_list", client.external_contact.get_follow_user_list)
    assert limited.value.errcode == 45009


def test_moments_task(wechat_sim, workspace, corp, staff):
    task = campaigns.moment_create(workspace=workspace, app=corp, text="秋冬新品上市",
                                   staff_ids=[staff["zhangsan"].pk])
    assert task.status == "running" and task.jobid
    campaigns.moment_refresh(task)
    assert task.status == "running"  # WeCom is still working on it
    campaigns.moment_refresh(task)
    task.refresh_from_db()
    assert task.status == "done" and task.moment_id
    assert MomentTask.objects.count() == 1


def test_periodic_refresh_follows_confirmations_and_resubmits_queued_sends(wechat_sim, workspace, corp, contacts):
    from siyu.wechat.work.tasks import work_refresh_periodic

    sent = campaigns.mass_send_create(workspace=workspace, app=corp, text="已创建", customer_ids=list(contacts.values()))
    wechat_sim.faults.add("errcode", host="qyapi.weixin.qq.com", path="/cgi-bin/externalcontact/add_msg_template",
                          code=45009)
    with pytest.raises(wecom.RateLimited):
        campaigns.mass_send_create(workspace=workspace, app=corp, text="排队", customer_ids=list(contacts.values()))
    for userid in ("zhangsan", "lisi"):
        sim_work.staff_confirm_mass_send(wechat_sim, corp.appid, sent.msgid, userid)
    work_refresh_periodic.call_local()
    assert MassSend.objects.get(text="排队").status == MassSendStatus.QUEUED  # its own back-off retry is due
    from datetime import timedelta

    from django.utils import timezone

    MassSend.objects.filter(text="排队").update(checked_at=timezone.now() - timedelta(hours=2))  # retry was lost
    work_refresh_periodic.call_local()
    sent.refresh_from_db()
    assert sent.status == MassSendStatus.FINISHED
    assert MassSend.objects.get(text="排队").status == MassSendStatus.CREATED


@pytest.mark.redis
def test_limiter_counts_in_redis_shared_by_processes(settings, corp):
    import os
    import uuid

    settings.REDIS_URL = os.environ["SIYU_TEST_REDIS_URL"]
    settings.SIYU_WECOM_LIMITS = {"minute": (60, 2), "hour": (3600, 100)}
    api = f"test/{uuid.uuid4().hex}"  # a fresh key in a shared Redis
    wecom.permit(corp, api, now=1_000_000.0)
    wecom._redis_clients.clear()  # as another process would: a new connection, the same counters
    wecom.permit(corp, api, now=1_000_001.0)
    with pytest.raises(wecom.RateLimited) as limited:
        wecom.permit(corp, api, now=1_000_002.0)
    assert limited.value.retry_after == pytest.approx(1_000_020 - 1_000_002 + 1)
