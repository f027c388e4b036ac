"""The 智能客服 console page, the conversation panel of the customer 360 page, and a staff reply from the
inbox reaching the customer through the simulator."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.models import AuditLog
from siyu.engagement.inbox.models import StaffTask, TaskStatus
from siyu.engagement.service.models import (
    Conversation,
    ConversationMessage,
    FaqEntry,
    KeywordRule,
    ServiceSettings,
)
from siyu.wechat.official import services as official_services
from siyu.wechat_sim import mp
from tests.engagement.inbox.factories import customer, staff
from tests.engagement.service.support import bot_enable, faq_load
from tests.wechat.official_support import official_account

pytestmark = pytest.mark.django_db


def test_page_for_each_role_and_edits_only_for_managers(workspace, clients):
    faq_load(workspace)
    for role in ("admin", "operator", "service", "analyst"):
        body = clients[role].get(reverse("console:service")).content.decode()
        assert "智能客服" in body and "怎么申请退货退款" in body
        assert ('id="faq-form"' in body) == (role in {"admin", "operator"})
    for role in ("service", "analyst"):
        refused = clients[role].post(reverse("console:service_faq_save"), {"question": "新问题", "answer": "答"})
        assert refused.status_code == 403
    assert FaqEntry.objects.count() == 5 and not AuditLog.objects.filter(action="service_faq_save",
                                                                        actor__username__endswith="client").exists()


def test_faq_rule_and_settings_edits_with_bad_input_refused(workspace, clients):
    admin = clients["admin"]
    saved = admin.post(reverse("console:service_faq_save"), {"question": "怎么开发票？", "answer": "在订单详情申请电子发票。",
                                                           "variants": "能开发票吗\n发票在哪开\n能开发票吗", "synonyms": "电子发票"})
    assert saved.status_code == 302
    entry = FaqEntry.objects.get(question="怎么开发票？")
    assert entry.variants == ["能开发票吗", "发票在哪开"] and entry.synonyms == ["电子发票"]
    edited = admin.post(reverse("console:service_faq_save"), {"faq_id": entry.pk, "question": "如何开发票？",
                                                            "answer": "订单详情 → 申请发票", "enabled": "on"})
    assert edited.status_code == 302 and FaqEntry.objects.get(pk=entry.pk).question == "如何开发票？"
    for data, code in [({"question": "", "answer": "x"}, "faq_invalid"), ({"question": "q", "answer": ""}, "faq_invalid"),
                       ({"question": "q", "answer": "a", "variants": "长" * 201}, "faq_invalid")]:
        response = admin.post(reverse("console:service_faq_save"), data)
        assert response.status_code == 400 and f"<code>{code}</code>" in response.content.decode(), data
    assert admin.post(reverse("console:service_faq_save"), {"faq_id": "99999", "question": "q", "answer": "a"}
                      ).status_code == 404
    assert FaqEntry.objects.count() == 1

    unsafe = admin.post(reverse("console:service_rule_save"), {"pattern": "(a+)+", "match": "regex", "reply": "x"})
    assert unsafe.status_code == 400 and "<code>service_rule_invalid</code>" in unsafe.content.decode()
    assert admin.post(reverse("console:service_rule_save"), {"pattern": "人工", "match": "contains", "reply": "x",
                                                            "priority": "abc"}).status_code == 400
    assert not KeywordRule.objects.exists()
    assert admin.post(reverse("console:service_rule_save"), {"pattern": r"订单\d{6}", "match": "regex",
                                                            "reply": "查询订单请点菜单", "priority": "3"}).status_code == 302
    assert KeywordRule.objects.get().priority == 3

    for threshold in ("0", "1.5", "abc"):
        response = admin.post(reverse("console:service_settings_save"), {
            "enabled": "on", "threshold": threshold, "handoff_reply": "", "handoff_sla_minutes": "30",
            "priority_sla_minutes": "10"})
        assert response.status_code == 400 and "<code>threshold_invalid</code>" in response.content.decode()
    assert not ServiceSettings.objects.filter(enabled=True).exists()
    assert admin.post(reverse("console:service_settings_save"), {
        "enabled": "on", "threshold": "0.6", "handoff_reply": "稍等", "handoff_sla_minutes": "20",
        "priority_sla_minutes": "5"}).status_code == 302
    row = ServiceSettings.objects.get(workspace=workspace)
    assert (row.enabled, row.threshold, row.handoff_sla_minutes) == (True, 0.6, 20)
    delete = admin.post(reverse("console:service_faq_delete"), {"faq_id": entry.pk})
    assert delete.status_code == 302 and not FaqEntry.objects.exists()


def test_try_it_shows_tokens_matches_and_the_decision(workspace, clients):
    faq_load(workspace)
    bot_enable(workspace)
    body = clients["operator"].get(reverse("console:service"), {"q": "积分会过期吗"}).content.decode()
    assert 'data-decision="faq"' in body and "积分在获得次年" in body
    assert body.count("data-token") == 2 and 'data-match="' in body
    handoff = clients["operator"].get(reverse("console:service"), {"q": "门店几点关门"}).content.decode()
    assert 'data-decision="handoff"' in handoff
    assert not ConversationMessage.objects.exists()  # trying stores nothing


def test_stats_and_customer_panel(workspace, clients, official_app):
    person = customer(workspace)
    now = timezone.now()
    conversation = Conversation.objects.create(workspace=workspace, channel="official", app=official_app, peer="o-1",
                                               customer=person, started_at=now, last_message_at=now)
    for index, resolution in enumerate(["faq", "faq", "handoff"]):
        ConversationMessage.objects.create(workspace=workspace, conversation=conversation, channel="official",
                                           external_id=f"m{index}", direction="in", sender="customer",
                                           text=f"问题{index}", resolution=resolution, created_at=now)
    ConversationMessage.objects.create(workspace=workspace, conversation=conversation, channel="official",
                                       direction="out", sender="bot", text="机器人的回答", resolution="faq", created_at=now)
    body = clients["admin"].get(reverse("console:service")).content.decode()
    charts = json.loads(body.split('id="chart-data" type="application/json">')[1].split("</script>")[0])
    assert sum(charts["service_daily"]["series"][0]["y"]) == 2 and sum(charts["service_daily"]["series"][1]["y"]) == 1
    assert '<div class="kpi-value" data-kpi="bot_rate">66.7%</div>' in body
    detail = clients["admin"].get(reverse("console:customer_detail", args=[person.pk])).content.decode()
    assert 'data-panel="service_conversation"' in detail and "机器人的回答" in detail
    analyst = clients["analyst"].get(reverse("console:customer_detail", args=[person.pk])).content.decode()
    assert "机器人的回答" not in analyst


def test_staff_reply_from_the_inbox_reaches_the_customer(wechat_sim, wechat_app_factory, workspace, immediate_tasks,
                                                         django_capture_on_commit_callbacks):
    app = official_account(wechat_app_factory, wechat_sim)
    official_services.settings_update(app=app, actor=None, account_type="service", unionid_access=False,
                                      welcome_reply="", default_reply="")
    faq_load(workspace)
    bot_enable(workspace)
    user = wechat_sim.state.user("kehu")
    with django_capture_on_commit_callbacks(execute=True):
        mp.subscribe(wechat_sim, user, app.appid)
        mp.send_text(wechat_sim, user, app.appid, "你们门店几点关门")
    job = StaffTask.objects.get(source="service")
    membership, client = staff(workspace, "kefu", "service")
    assert client.post(reverse("console:inbox_reply", args=[job.pk]), {"text": "晚上十点"}).status_code == 409
    assert client.post(reverse("console:inbox_claim", args=[job.pk])).status_code == 302
    page = client.get(reverse("console:inbox_task", args=[job.pk])).content.decode()
    assert "你们门店几点关门" in page and 'id="reply-form"' in page
    assert client.post(reverse("console:inbox_reply", args=[job.pk]), {"text": " "}).status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(reverse("console:inbox_reply", args=[job.pk]), {"text": "我们每天营业到晚上十点"})
    assert sent.status_code == 302
    openid = wechat_sim.state.openid(user, app.appid)
    texts = [item["payload"]["text"]["content"] for item in mp.sent_messages(wechat_sim, app.appid, "custom")
             if item["touser"] == openid]
    assert texts == ["已为您转接人工客服", "我们每天营业到晚上十点"]
    reply = ConversationMessage.objects.get(sender="staff")
    assert reply.staff_id == membership.user_id and reply.conversation_id == job.payload["conversation_id"]
    assert AuditLog.objects.filter(action="service_staff_reply", actor=membership.user).exists()
    assert client.post(reverse("console:inbox_complete", args=[job.pk]), {"outcome": "已告知营业时间"}).status_code == 302
    assert StaffTask.objects.get(pk=job.pk).status == TaskStatus.DONE
    # the person is done: the bot answers this customer again
    with django_capture_on_commit_callbacks(execute=True):
        mp.send_text(wechat_sim, user, app.appid, "积分会过期吗")
    assert Conversation.objects.get(pk=job.payload["conversation_id"]).messages.filter(sender="bot").count() == 2
