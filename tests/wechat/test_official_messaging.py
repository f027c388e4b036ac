"""Template, mass and customer-service messages through the real wechatpy client against the simulator,
with WeChat's limits refused and explained, and rate limits retried later (SPEC W6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from huey.contrib.djhuey import HUEY

from siyu.core.errors import SiyuError
from siyu.customers.models import Customer
from siyu.customers.tagging import customer_tag_add, tag_create, tag_group_create
from siyu.wechat.models import ApiIssue
from siyu.wechat.official import messaging, services
from siyu.wechat.official.models import Follower, MessageSend, RecipientStatus, SendStatus
from siyu.wechat.official.tasks import official_send_task
from siyu.wechat_sim import mp
from tests.wechat.official_support import official_account

pytestmark = pytest.mark.django_db
API = "api.weixin.qq.com"


@pytest.fixture
def account(wechat_sim, wechat_app_factory):
    HUEY.flush()
    app = official_account(wechat_app_factory, wechat_sim)
    services.settings_update(app=app, actor=None, account_type="service", unionid_access=False, welcome_reply="",
                             default_reply="")
    return app


def followers(sim, app, count: int, prefix: str = "f") -> list[str]:
    openids = []
    for index in range(count):
        user = sim.state.user(f"{prefix}{index}")
        assert mp.subscribe(sim, user, app.appid).status == 200
        openids.append(sim.state.openid(user, app.appid))
    return openids


def recipients(send: MessageSend) -> dict[str, tuple[str, int | None]]:
    return {row.openid: (row.status, row.errcode) for row in send.recipients.all()}


def test_template_send_to_followers_and_refusal_for_strangers(wechat_sim, account):
    openids = followers(wechat_sim, account, 2)
    stranger = wechat_sim.state.openid(wechat_sim.state.user("stranger"), account.appid)
    send = messaging.template_send_request(app=account, actor=None, template_id="TPL_order_shipped",
                                           data={"first": "您的订单已发货", "keyword1": {"value": "SF123"}},
                                           url="https://shop.example/o/1", openids=[*openids, stranger])
    assert recipients(send)[stranger] == (RecipientStatus.FAILED, 43004)
    done = messaging.send_execute(send_id=send.pk)
    assert done.status == SendStatus.PARTIAL
    assert {openid: state for openid, (state, _) in recipients(done).items() if openid != stranger} == \
        dict.fromkeys(openids, RecipientStatus.SENT)
    sent = mp.sent_messages(wechat_sim, account.appid, "template")
    assert sorted(item["touser"] for item in sent) == sorted(openids)
    assert sent[0]["payload"]["data"]["first"] == {"value": "您的订单已发货"}
    assert sent[0]["payload"]["url"] == "https://shop.example/o/1"
    assert messaging.send_execute(send_id=send.pk) is None  # finished: nothing sent twice
    assert len(mp.sent_messages(wechat_sim, account.appid, "template")) == 2


@pytest.mark.parametrize("kwargs, code", [
    ({"template_id": "bad id!", "data": {"a": "b"}}, "template_id_invalid"),
    ({"template_id": "T1", "data": {}}, "template_data_invalid"),
    ({"template_id": "T1", "data": {"a": "b"}, "url": "javascript:alert(1)"}, "template_url_invalid"),
    ({"template_id": "T1", "data": {"a": "b"}, "openids": []}, "no_recipients"),
    ({"template_id": "T1", "data": {"a": "b"}, "openids": ["o-nobody-follows"]}, "template_no_followers"),
])
def test_template_bad_requests_change_nothing(account, kwargs, code):
    with pytest.raises(SiyuError) as refused:
        messaging.template_send_request(app=account, actor=None, **kwargs)
    assert refused.value.code == code and refused.value.message_zh and refused.value.message_en
    assert not MessageSend.objects.exists()


def test_rate_limit_45009_is_surfaced_and_retried_later(wechat_sim, account):
    openids = followers(wechat_sim, account, 2)
    send = messaging.template_send_request(app=account, actor=None, template_id="T1", data={"a": "b"},
                                           openids=openids)
    wechat_sim.faults.add("errcode", host=API, path="/cgi-bin/message/template/send", code=45009)
    assert official_send_task.call_local(send.pk) == SendStatus.RETRYING
    send.refresh_from_db()
    assert send.status == SendStatus.RETRYING and send.next_attempt_at > timezone.now()
    assert "45009" in send.last_error
    again = [task for task in HUEY.pending() if task.name.endswith("official_send_task")]
    assert [(task.args, task.eta is not None) for task in again] == [((send.pk,), True)]  # back on the schedule
    issue = ApiIssue.objects.get(app=account, errcode=45009)
    assert issue.api == "message.template.send" and issue.resolved_at is None
    assert set(recipients(send).values()) == {(RecipientStatus.PENDING, None)}  # nothing dropped
    assert messaging.send_execute(send_id=send.pk) is None  # not due yet
    MessageSend.objects.filter(pk=send.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert messaging.sends_due() == [send.pk]
    assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT
    assert len(mp.sent_messages(wechat_sim, account.appid, "template")) == 2


def test_mass_send_quota_of_a_service_account_refused_and_explained(wechat_sim, account):
    followers(wechat_sim, account, 2)
    for _ in range(4):
        send = messaging.mass_send_request(app=account, actor=None, text="新品上市", to_all=True)
        assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT
    with pytest.raises(SiyuError) as refused:
        messaging.mass_send_request(app=account, actor=None, text="第五次", to_all=True)
    assert refused.value.code == "mass_quota_exhausted" and "每月只能群发 4 次" in refused.value.message_zh
    assert MessageSend.objects.count() == 4
    assert len({item["msgid"] for item in mp.sent_messages(wechat_sim, account.appid, "mass")}) == 4


def test_subscription_account_mass_sends_once_a_day(wechat_sim, account):
    services.settings_update(app=account, actor=None, account_type="subscription", unionid_access=False,
                             welcome_reply="", default_reply="")
    followers(wechat_sim, account, 2)
    messaging.mass_send_request(app=account, actor=None, text="早安", to_all=True)
    with pytest.raises(SiyuError) as refused:
        messaging.mass_send_request(app=account, actor=None, text="午安", to_all=True)
    assert refused.value.code == "mass_quota_exhausted" and refused.value.status == 429
    assert "订阅号每天只能群发 1 次" in refused.value.message_zh


def test_mass_send_to_a_siyu_tag_and_retry_never_sends_twice(wechat_sim, account, workspace):
    openids = followers(wechat_sim, account, 3)
    group = tag_group_create(workspace=workspace, name="会员")
    vip = tag_create(workspace=workspace, group_id=group.pk, name="VIP")
    for openid in openids[:2]:
        follower = Follower.objects.get(app=account, openid=openid)
        customer_tag_add(workspace=workspace, customer_id=follower.customer_id, tag_id=vip.pk)
    send = messaging.mass_send_request(app=account, actor=None, text="VIP 专享", tag_id=vip.pk)
    assert sorted(recipients(send)) == sorted(openids[:2])
    assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT
    # The answer was lost and the task runs again: WeChat says the clientmsgid was used; nothing re-sent.
    MessageSend.objects.filter(pk=send.pk).update(status=SendStatus.QUEUED)
    send.recipients.update(status=RecipientStatus.PENDING, sent_at=None)
    assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT
    assert len(mp.sent_messages(wechat_sim, account.appid, "mass")) == 2
    assert Customer.objects.filter(workspace=workspace).count() == 3


def test_mass_send_needs_two_followers(wechat_sim, account):
    openids = followers(wechat_sim, account, 1)
    with pytest.raises(SiyuError) as refused:
        messaging.mass_send_request(app=account, actor=None, text="hi", openids=[*openids, "o-not-following"])
    assert refused.value.code == "mass_too_few"
    with pytest.raises(SiyuError) as empty:
        messaging.mass_send_request(app=account, actor=None, text="  ", to_all=True)
    assert empty.value.code == "text_required"
    assert not MessageSend.objects.exists()


def test_mass_rate_limited_then_sent(wechat_sim, account):
    followers(wechat_sim, account, 2)
    send = messaging.mass_send_request(app=account, actor=None, text="hello", to_all=True)
    wechat_sim.faults.add("errcode", host=API, path="/cgi-bin/message/mass/sendall", code=45011,
                          message="api minute-quota reach limit")
    assert messaging.send_execute(send_id=send.pk).status == SendStatus.RETRYING
    assert ApiIssue.objects.filter(app=account, errcode=45011).exists()
    MessageSend.objects.filter(pk=send.pk).update(next_attempt_at=timezone.now())
    assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT


def test_custom_message_window_of_48_hours_and_five_per_interaction(wechat_sim, account):
    user = wechat_sim.state.user("chatty")
    mp.subscribe(wechat_sim, user, account.appid)
    openid = wechat_sim.state.openid(user, account.appid)
    mp.send_text(wechat_sim, user, account.appid, "在吗")
    for index in range(5):
        send = messaging.custom_send_request(app=account, actor=None, openid=openid, text=f"回复 {index}")
        assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT
    with pytest.raises(SiyuError) as refused:
        messaging.custom_send_request(app=account, actor=None, openid=openid, text="第六条")
    assert refused.value.code == "custom_count_exhausted"
    assert len(mp.sent_messages(wechat_sim, account.appid, "custom")) == 5
    Follower.objects.filter(app=account, openid=openid).update(
        last_interaction_at=timezone.now() - timedelta(hours=49))
    with pytest.raises(SiyuError) as closed:
        messaging.custom_send_request(app=account, actor=None, openid=openid, text="还在吗")
    assert closed.value.code == "custom_window_closed" and "48 小时" in closed.value.message_zh


def test_simulator_refusal_of_a_custom_message_is_final_for_that_customer(wechat_sim, account):
    user = wechat_sim.state.user("quiet")
    mp.subscribe(wechat_sim, user, account.appid)
    openid = wechat_sim.state.openid(user, account.appid)
    send = messaging.custom_send_request(app=account, actor=None, openid=openid, text="hi")
    mp.mp(wechat_sim).followers[(account.appid, openid)].last_interaction -= 49 * 3600  # WeChat's view differs
    done = messaging.send_execute(send_id=send.pk)
    assert done.status == SendStatus.FAILED
    assert recipients(done)[openid] == (RecipientStatus.FAILED, 45015)


def test_a_claimed_send_is_not_worked_twice_and_unreachable_wechat_is_retried(wechat_sim, account, settings):
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.01,)
    openids = followers(wechat_sim, account, 2)
    send = messaging.template_send_request(app=account, actor=None, template_id="T1", data={"a": "b"},
                                           openids=openids)
    assert messaging._claim(send.pk) is not None  # another worker holds it
    assert messaging.send_execute(send_id=send.pk) is None
    assert messaging.sends_due() == []  # the lease has not run out
    MessageSend.objects.filter(pk=send.pk).update(next_attempt_at=timezone.now())  # that worker died
    assert messaging.sends_due() == [send.pk]
    wechat_sim.faults.add("http_503", host=API, path="/cgi-bin/message/template/send", times=-1)
    retried = messaging.send_execute(send_id=send.pk)
    assert retried.status == SendStatus.RETRYING and retried.attempts == 2
    assert set(recipients(retried).values()) == {(RecipientStatus.PENDING, None)}
    wechat_sim.faults.clear()
    MessageSend.objects.filter(pk=send.pk).update(next_attempt_at=timezone.now())
    assert messaging.send_execute(send_id=send.pk).status == SendStatus.SENT
    assert len(mp.sent_messages(wechat_sim, account.appid, "template")) == 2


def test_a_template_send_whose_answer_never_came_is_not_sent_twice(wechat_sim, account, settings):
    """WeChat did the work but the answer timed out: the outcome is unknown, so Siyu records that and never
    repeats the message (a duplicate template message to a customer is worse than an unknown)."""
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.01,)
    openids = followers(wechat_sim, account, 2)
    settings.SIYU_WECHAT_TIMEOUT = 0.3
    wechat_sim.faults.add("latency", host=API, path="/cgi-bin/message/template/send", seconds=1.0)
    send = messaging.template_send_request(app=account, actor=None, template_id="T1", data={"a": "b"},
                                           openids=openids)
    done = messaging.send_execute(send_id=send.pk)
    states = recipients(done)
    assert sorted(state for state, _ in states.values()) == [RecipientStatus.SENT, RecipientStatus.UNKNOWN]
    assert done.status == SendStatus.PARTIAL
    import time

    time.sleep(1.0)  # let the slow request finish on the simulator's side
    assert len(mp.sent_messages(wechat_sim, account.appid, "template")) == 2  # WeChat did deliver both
    MessageSend.objects.filter(pk=send.pk).update(next_attempt_at=timezone.now())
    assert messaging.send_execute(send_id=send.pk) is None  # nothing pending: never retried
    assert len(mp.sent_messages(wechat_sim, account.appid, "template")) == 2
