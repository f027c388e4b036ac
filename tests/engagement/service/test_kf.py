"""WeCom 微信客服 end to end: a customer writes to a 客服账号 in the simulator → kf_msg_or_event callback →
kf/sync_msg from the stored cursor → the bot's answer through kf/send_msg; retries answered once; WeCom's
48-hour rule refused with a clear code."""

from __future__ import annotations

import pytest

from siyu.core.errors import SiyuError
from siyu.engagement.inbox.models import StaffTask
from siyu.engagement.service.models import Conversation, ConversationMessage, KfCursor
from siyu.engagement.service.services import kf_messages_pull, staff_reply
from siyu.wechat.work.kf import kf_text_send
from siyu.wechat_sim import kf as sim_kf
from tests.engagement.service.support import bot_enable, faq_load

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(wechat_sim, work_app, workspace, immediate_tasks):
    faq_load(workspace)
    bot_enable(workspace)
    return work_app, sim_kf.account_add(wechat_sim, work_app.appid, "官方客服")


def says(sim, app, open_kfid, user, text, capture):
    with capture(execute=True):
        status, _body = sim_kf.customer_says(sim, app.appid, open_kfid, user, text)
    assert status == 200


def test_customer_message_is_pulled_and_answered(wechat_sim, desk, workspace, django_capture_on_commit_callbacks):
    app, open_kfid = desk
    says(wechat_sim, app, open_kfid, "wmUser1", "下单后多久发货", django_capture_on_commit_callbacks)
    sent = sim_kf.sent_messages(wechat_sim, app.appid)
    assert [(item["external_userid"], item["text"]["content"]) for item in sent] == \
        [("wmUser1", "付款后 48 小时内发货，节假日顺延。")]
    conversation = Conversation.objects.get(channel="wecom_kf", peer="wmUser1", account=open_kfid)
    assert [(row.sender, row.resolution) for row in conversation.messages.order_by("pk")] == \
        [("customer", "faq"), ("bot", "faq")]
    cursor = KfCursor.objects.get(app=app, open_kfid=open_kfid)
    assert cursor.cursor and cursor.synced_at
    # a second message: only it is read (the cursor moved past the first and past our own send)
    says(wechat_sim, app, open_kfid, "wmUser1", "门店几点关门", django_capture_on_commit_callbacks)
    assert conversation.messages.filter(direction="in").count() == 2
    assert StaffTask.objects.filter(source="service", payload__conversation_id=conversation.pk).count() == 1
    assert [item["text"]["content"] for item in sim_kf.sent_messages(wechat_sim, app.appid)][-1] == "已为您转接人工客服"


def test_duplicate_events_and_rereads_answer_once(wechat_sim, desk, django_capture_on_commit_callbacks):
    app, open_kfid = desk
    wechat_sim.faults.add("duplicate_notify", host="qyapi.weixin.qq.com", path="/kf/callback")
    says(wechat_sim, app, open_kfid, "wmUser2", "积分会过期吗", django_capture_on_commit_callbacks)
    KfCursor.objects.filter(app=app).update(cursor="")  # as if the cursor was lost after a crash
    assert kf_messages_pull(app_id=app.pk, open_kfid=open_kfid) == 0
    assert len(sim_kf.sent_messages(wechat_sim, app.appid)) == 1
    assert ConversationMessage.objects.filter(direction="in").count() == 1


def test_wecom_rules_refuse_with_a_code_and_staff_replies_go_out(wechat_sim, desk, workspace,
                                                                  django_capture_on_commit_callbacks):
    app, open_kfid = desk
    with pytest.raises(SiyuError) as refused:
        kf_text_send(app, open_kfid=open_kfid, external_userid="wmNeverWrote", text="你好")
    assert refused.value.code == "kf_send_refused" and refused.value.details["errcode"] == 95018
    with pytest.raises(SiyuError):
        kf_text_send(app, open_kfid="wk-unknown", external_userid="wmNeverWrote", text="你好")
    says(wechat_sim, app, open_kfid, "wmUser3", "能帮我改收货地址吗", django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get(peer="wmUser3")
    staff_reply(conversation=conversation, user=None, text="已为您修改，请查看订单")
    assert sim_kf.sent_messages(wechat_sim, app.appid)[-1]["text"]["content"] == "已为您修改，请查看订单"
    for _ in range(3):  # handoff notice + staff reply + 3 more = WeCom's five per customer message
        staff_reply(conversation=conversation, user=None, text="补充说明")
    with pytest.raises(SiyuError) as sixth:
        staff_reply(conversation=conversation, user=None, text="第六条")
    assert sixth.value.code == "kf_send_refused"
    assert not conversation.messages.filter(text="第六条").exists()


def test_a_known_external_user_is_linked_to_their_customer(wechat_sim, desk, workspace,
                                                            django_capture_on_commit_callbacks):
    from django.utils import timezone

    from siyu.customers.models import Customer, Identity, IdentityKind

    app, open_kfid = desk
    now = timezone.now()
    known = Customer.objects.create(workspace=workspace, first_seen_at=now, last_seen_at=now)
    Identity.objects.create(workspace=workspace, customer=known, kind=IdentityKind.EXTERNAL_USERID,
                            namespace=app.appid, value="wmKnown", first_seen_at=now, last_seen_at=now)
    with django_capture_on_commit_callbacks(execute=True):
        sim_kf.customer_says(wechat_sim, app.appid, open_kfid, "wmKnown", "下单后多久发货")
        sim_kf.customer_says(wechat_sim, app.appid, open_kfid, "wmStranger", "下单后多久发货")
    assert Conversation.objects.get(channel="wecom_kf", peer="wmKnown").customer_id == known.pk
    assert Conversation.objects.get(channel="wecom_kf", peer="wmStranger").customer_id is None
