"""Console pages per role: managers edit, service staff read the groups they own, analysts read numbers
without personal data; refusals change nothing; the customer 360 panel."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from siyu.engagement.communities.messages import messages_record
from siyu.engagement.communities.models import Community, CommunityMember, CommunityRule, RhythmSlot
from siyu.engagement.communities.services import community_create


@pytest.fixture
def community(workspace, wecom_group):
    community = community_create(workspace=workspace, name="护肤交流群", type="exchange", chat_id="wrChat1")
    import time

    messages_record(workspace=workspace, messages=[
        {"msg_id": "p1", "chat_id": "wrChat1", "sender": {"id": "wm1"}, "content": "加我 vx beauty_2024",
         "sent_at": int(time.time()) - 60}])
    return community


def test_every_role_reads_the_list_and_managers_create(clients, workspace, community):
    for role in ("admin", "operator", "analyst"):
        answer = clients[role].get(reverse("console:communities"))
        assert answer.status_code == 200 and "护肤交流群" in answer.content.decode()
    service = clients["service"].get(reverse("console:communities")).content.decode()
    assert "护肤交流群" not in service  # not their group
    created = clients["operator"].post(reverse("console:community_create"), {"name": "新人福利群", "type": "newcomer"})
    assert created.status_code == 302
    assert Community.objects.filter(name="新人福利群").exists()
    for role in ("analyst", "service"):
        refused = clients[role].post(reverse("console:community_create"), {"name": "越权群", "type": "vip"})
        assert refused.status_code == 403
    assert not Community.objects.filter(name="越权群").exists()


def test_bad_input_is_refused_with_a_message_and_changes_nothing(clients, community):
    answer = clients["admin"].post(reverse("console:community_create"), {"name": "", "type": "vip"}, follow=True)
    assert "请填写必填项" in answer.content.decode()
    answer = clients["admin"].post(reverse("console:community_rule", args=[community.pk]),
                                   {"kind": "flood", "threshold": "1", "window_seconds": "5", "active": "on"},
                                   follow=True)
    assert "刷屏规则需要次数" in answer.content.decode()
    assert CommunityRule.objects.get(community=community, kind="flood").threshold == 10
    answer = clients["admin"].post(reverse("console:community_update", args=[community.pk]),
                                   {"name": "x", "type": "vip", "expected_min": "90", "expected_max": "10"},
                                   follow=True)
    assert "下限不能大于上限" in answer.content.decode()
    assert Community.objects.get(pk=community.pk).name == "护肤交流群"
    assert clients["admin"].get(reverse("console:community_koc") + "?period=2026-99").status_code == 400
    assert clients["admin"].get(reverse("console:community_rhythm") + "?type=nope").status_code == 400


def test_detail_shows_people_to_managers_and_numbers_to_analysts(clients, community):
    url = reverse("console:community_detail", args=[community.pk])
    admin_page = clients["admin"].get(url).content.decode()
    assert 'id="members"' in admin_page and "wm1" in admin_page and "chart-messages-daily" in admin_page
    assert "不允许应用移除" in admin_page
    analyst_page = clients["analyst"].get(url).content.decode()
    assert 'id="members"' not in analyst_page and "wm1" not in analyst_page and "beauty_2024" not in analyst_page
    assert clients["service"].get(url).status_code == 404
    moderation = clients["analyst"].get(reverse("console:community_moderation")).content.decode()
    assert "手机号/微信号" in moderation and "beauty_2024" not in moderation


def test_service_staff_see_the_groups_they_own_read_only(clients, workspace, community):
    service_user = get_user_model().objects.get(username="service-client")
    Community.objects.filter(pk=community.pk).update(owner=service_user)
    url = reverse("console:community_detail", args=[community.pk])
    page = clients["service"].get(url).content.decode()
    assert "护肤交流群" in page and "wm1" in page and "从企业微信同步成员" not in page
    refused = clients["service"].post(reverse("console:community_update", args=[community.pk]),
                                      {"name": "改名", "type": "vip"})
    assert refused.status_code == 403 and Community.objects.get(pk=community.pk).name == "护肤交流群"


def test_rhythm_koc_pages_and_edits(clients, workspace, community):
    page = clients["operator"].get(reverse("console:community_rhythm") + "?type=exchange").content.decode()
    assert "话题讨论" in page and "经验交流" in page
    slot = RhythmSlot.objects.filter(workspace=workspace, community_type="exchange").first()
    saved = clients["operator"].post(reverse("console:community_rhythm_save"), {
        "type": "exchange", "slot_id": slot.pk, "weekday": "7", "at": "08:15", "theme": "早安", "content": "c",
        "action": "task", "active": "on"})
    assert saved.status_code == 302 and RhythmSlot.objects.get(pk=slot.pk).theme == "早安"
    assert clients["analyst"].post(reverse("console:community_rhythm_save"), {
        "type": "exchange", "slot_id": slot.pk, "weekday": "1", "at": "10:00", "theme": "越权"}).status_code == 403
    assert RhythmSlot.objects.get(pk=slot.pk).theme == "早安"
    koc = clients["admin"].get(reverse("console:community_koc")).content.decode()
    assert "贡献分" in koc and "会话存档" in koc
    assert "会话存档桥接" not in clients["operator"].get(reverse("console:community_koc")).content.decode()
    key = clients["admin"].post(reverse("console:community_bridge_key"))
    assert key.status_code == 200 and "cb_" in key.content.decode()
    assert clients["operator"].post(reverse("console:community_bridge_key")).status_code == 403


def test_customer_panel_shows_communities_to_staff_not_analysts(clients, workspace, community):
    member = CommunityMember.objects.filter(community=community).first()
    url = reverse("console:customer_detail", args=[member.customer_id])
    admin_page = clients["admin"].get(url).content.decode()
    assert 'data-panel="communities"' in admin_page and "护肤交流群" in admin_page
    analyst = clients["analyst"].get(url)
    assert 'data-panel="communities"' not in analyst.content.decode()


def test_members_by_hand_only_for_hand_tracked_groups(clients, workspace, community):
    hand = community_create(workspace=workspace, name="门店VIP群", type="vip")
    customer = CommunityMember.objects.filter(community=community).first().customer
    url = reverse("console:community_member", args=[hand.pk])
    assert clients["operator"].post(url, {"customer_id": customer.pk, "present": "1"}).status_code == 302
    assert CommunityMember.objects.filter(community=hand, customer=customer, left_at=None).exists()
    assert clients["analyst"].post(url, {"customer_id": customer.pk, "present": "0"}).status_code == 403
    answer = clients["operator"].post(url, {"customer_id": "abc", "present": "1"}, follow=True)
    assert "客户不存在" in answer.content.decode()
    linked = clients["operator"].post(reverse("console:community_member", args=[community.pk]),
                                      {"customer_id": customer.pk, "present": "0"}, follow=True)
    assert "随企业微信同步" in linked.content.decode()
    assert CommunityMember.objects.get(community=community, customer=customer).left_at is None
    clients["operator"].post(url, {"customer_id": customer.pk, "present": "0"})
    assert CommunityMember.objects.get(community=hand, customer=customer).left_at is not None


def test_koc_page_shows_names_by_role(clients, workspace, community):
    from django.utils import timezone

    from siyu.engagement.communities.models import KocAward

    member = CommunityMember.objects.filter(community=community).first()
    for scope in (community, None):
        KocAward.objects.create(workspace=workspace, community=scope, customer=member.customer, period="2026-10",
                                score=42, rank=1, created_at=timezone.now())
    url = reverse("console:community_koc") + "?period=2026-10"
    admin_page = clients["admin"].get(url).content.decode()
    assert admin_page.count(f'data-award="{member.customer_id}"') == 2
    analyst_page = clients["analyst"].get(url).content.decode()
    assert "data-award=" not in analyst_page and "分析角色只能查看人数" in analyst_page
    assert "data-award=" not in clients["service"].get(url).content.decode()  # owns no group
    service_user = get_user_model().objects.get(username="service-client")
    Community.objects.filter(pk=community.pk).update(owner=service_user)
    assert clients["service"].get(url).content.decode().count("data-award=") == 1  # their group only
