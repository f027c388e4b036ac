"""The bot end to end: a 公众号 user writes in the WeChat simulator → callback → domain event → Huey task →
answer as a customer-service message in the simulator; handoffs to the staff inbox; answered once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.engagement.inbox.models import StaffTask, TaskLevel
from siyu.engagement.service.models import Conversation, ConversationMessage, FaqEntry
from siyu.engagement.service.services import message_answer
from siyu.engagement.service.tasks import on_official_message
from siyu.loyalty.models import CustomerTier
from siyu.wechat.official import services as official_services
from siyu.wechat.official.models import AutoReplyRule, Follower
from siyu.wechat_sim import mp
from tests.engagement.service.support import bot_enable, faq_load
from tests.wechat.official_support import customer_of, official_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(wechat_sim, wechat_app_factory, workspace, immediate_tasks):
    app = official_account(wechat_app_factory, wechat_sim)
    official_services.settings_update(app=app, actor=None, account_type="service", unionid_access=False,
                                      welcome_reply="", default_reply="默认回复：请稍候")
    faq_load(workspace)
    bot_enable(workspace)
    return app


def say(sim, app, name: str, text: str, capture):
    user = sim.state.user(name)
    with capture(execute=True):
        if not Follower.objects.filter(app=app, openid=sim.state.openid(user, app.appid), subscribed=True).exists():
            assert mp.subscribe(sim, user, app.appid).status == 200
        delivery = mp.send_text(sim, user, app.appid, text)
    assert delivery.status == 200
    return sim.state.openid(user, app.appid), delivery


def custom_texts(sim, app, openid):
    return [item["payload"]["text"]["content"] for item in mp.sent_messages(sim, app.appid, "custom")
            if item["touser"] == openid]


def test_faq_answer_arrives_as_customer_service_message(wechat_sim, account, workspace,
                                                        django_capture_on_commit_callbacks):
    openid, delivery = say(wechat_sim, account, "xiaomei", "我想退货，怎么弄", django_capture_on_commit_callbacks)
    assert delivery.reply == ""  # the bot answers asynchronously: the passive default reply gave way
    assert custom_texts(wechat_sim, account, openid) == ["签收后 7 天内可在「我的订单」申请退货退款。"]
    conversation = Conversation.objects.get(app=account, peer=openid)
    assert conversation.customer == customer_of(workspace, kind="openid", namespace=account.appid, value=openid)
    incoming, outgoing = conversation.messages.order_by("pk")
    assert (incoming.sender, incoming.resolution, outgoing.sender, outgoing.resolution) == \
        ("customer", "faq", "bot", "faq")
    assert incoming.faq.question == "怎么申请退货退款？" and incoming.score >= 0.45
    assert outgoing.delivery.startswith("mp-send:") and not outgoing.delivery_error
    assert FaqEntry.objects.get(pk=incoming.faq_id).hits == 1


def test_unknown_question_is_handed_off_with_the_conversation(wechat_sim, account, workspace,
                                                               django_capture_on_commit_callbacks):
    openid, _ = say(wechat_sim, account, "laowang", "你们门店几点关门，发票怎么开", django_capture_on_commit_callbacks)
    assert custom_texts(wechat_sim, account, openid) == ["已为您转接人工客服"]
    task = StaffTask.objects.get(workspace=workspace, source="service")
    conversation = Conversation.objects.get(app=account, peer=openid)
    assert task.payload["conversation_id"] == conversation.pk and conversation.handoff_task_id == task.pk
    assert task.level == TaskLevel.JUNIOR and task.priority == 0
    assert timedelta(minutes=29) < task.due_at - task.created_at <= timedelta(minutes=30)
    # while a person is on it, the bot stays quiet and the customer's next words join the conversation
    say(wechat_sim, account, "laowang", "我想退货", django_capture_on_commit_callbacks)
    assert custom_texts(wechat_sim, account, openid) == ["已为您转接人工客服"]
    assert conversation.messages.filter(direction="in").count() == 2
    assert StaffTask.objects.filter(source="service").count() == 1


def test_priority_tier_customers_get_an_expert_sooner(wechat_sim, account, workspace,
                                                       django_capture_on_commit_callbacks):
    user = wechat_sim.state.user("vip")
    with django_capture_on_commit_callbacks(execute=True):
        mp.subscribe(wechat_sim, user, account.appid)
    openid = wechat_sim.state.openid(user, account.appid)
    customer = customer_of(workspace, kind="openid", namespace=account.appid, value=openid)
    now = timezone.now()
    CustomerTier.objects.create(workspace=workspace, customer=customer, code="diamond", since=now, evaluated_at=now)
    say(wechat_sim, account, "vip", "能帮我改一下收货地址吗", django_capture_on_commit_callbacks)
    task = StaffTask.objects.get(source="service", customer=customer)
    assert task.priority == 1 and task.level == TaskLevel.EXPERT and task.title.startswith("【优先】")
    assert task.due_at - task.created_at <= timedelta(minutes=10)


def test_duplicate_callbacks_and_task_reruns_answer_once(wechat_sim, account, workspace,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        mp.subscribe(wechat_sim, wechat_sim.state.user("dup"), account.appid)
    wechat_sim.faults.add("duplicate_notify", host="api.weixin.qq.com", path="/callback")
    openid, delivery = say(wechat_sim, account, "dup", "积分会过期吗", django_capture_on_commit_callbacks)
    assert delivery.attempts == 2
    assert custom_texts(wechat_sim, account, openid) == ["积分在获得次年 12 月 31 日过期。"]
    message = ConversationMessage.objects.get(direction="in", conversation__peer=openid)
    # the event delivered again (a re-run task): the stored message id stops it
    with django_capture_on_commit_callbacks(execute=True):
        on_official_message(workspace_id=workspace.pk, app_id=account.pk, appid=account.appid, openid=openid,
                            text="积分会过期吗", msg_id=message.external_id.split(":", 1)[1])
    assert message_answer(workspace_id=workspace.pk, channel="official", app_id=account.pk, peer=openid,
                          text="积分会过期吗", external_id=message.external_id) is None
    assert custom_texts(wechat_sim, account, openid) == ["积分在获得次年 12 月 31 日过期。"]
    assert ConversationMessage.objects.filter(conversation__peer=openid).count() == 2


def test_the_accounts_own_keyword_rule_answers_and_the_bot_only_logs(wechat_sim, account, workspace,
                                                                       django_capture_on_commit_callbacks):
    AutoReplyRule.objects.create(workspace=workspace, app=account, keyword="退货", match="contains", reply_text="退货请联系客服 400-000",
                                 priority=1)
    openid, delivery = say(wechat_sim, account, "rule", "我想退货", django_capture_on_commit_callbacks)
    assert "退货请联系客服" in delivery.reply
    assert custom_texts(wechat_sim, account, openid) == []
    incoming = ConversationMessage.objects.get(conversation__peer=openid)
    assert incoming.resolution == "deferred"


def test_bot_off_keeps_the_default_reply_and_stays_silent(wechat_sim, account, workspace,
                                                          django_capture_on_commit_callbacks):
    from siyu.engagement.service.services import settings_update

    settings_update(workspace=workspace, actor=None, enabled=False, threshold="0.45", handoff_reply="",
                    handoff_sla_minutes="30", priority_sla_minutes="10")
    openid, delivery = say(wechat_sim, account, "off", "我想退货", django_capture_on_commit_callbacks)
    assert "默认回复" in delivery.reply
    assert custom_texts(wechat_sim, account, openid) == []
    assert not StaffTask.objects.exists()
