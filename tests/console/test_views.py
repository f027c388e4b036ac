import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from siyu.analytics.services import analytics_refresh
from siyu.core.models import AuditLog
from siyu.core.services import membership_grant, workspace_create
from siyu.customers.identity import customer_merge
from siyu.customers.models import Customer, CustomerStatus, CustomerTag, MergeRecord, Tag, TagGroup
from tests.console.factories import consent, make_customer, make_tag, tag_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(workspace, recent):
    return make_customer(workspace, at=recent, name="王小明", phone="13800138000", channel="xiaohongshu",
                         identities=[("openid", "wxmp", "oANN"), ("unionid", "", "uANN")],
                         events=[("qr_scan", "xiaohongshu", 0, "xhs"), ("order_paid", "mini_program", 30)])


def detail_url(customer):
    return reverse("console:customer_detail", args=[customer.pk])


# --- shell ---------------------------------------------------------------------------------------

def test_anonymous_is_sent_to_login(db):
    response = Client().get(reverse("console:customer_list"))
    assert response.status_code == 302 and response.url.startswith(reverse("console:login"))


def test_login_page_is_chinese_and_login_works(members):
    client = Client()
    page = client.get(reverse("console:login"))
    assert "登录" in page.content.decode() and "English" in page.content.decode()
    response = client.post(reverse("console:login"), {"username": "admin-user", "password": "pass-12345"})
    assert response.status_code == 302 and response.url == reverse("console:dashboard")
    wrong = Client().post(reverse("console:login"), {"username": "admin-user", "password": "nope-nope"})
    assert wrong.status_code == 200 and "用户名或密码不正确" in wrong.content.decode()


def test_user_without_membership_is_refused(db):
    user = get_user_model().objects.create(username="drifter")
    client = Client()
    client.force_login(user)
    response = client.get(reverse("console:dashboard"))
    assert response.status_code == 403 and "不属于任何工作空间" in response.content.decode()


def test_dashboard_shows_real_rollups_as_chart_data(workspace, clients, ann):
    analytics_refresh(workspace=workspace)
    response = clients["admin"].get(reverse("console:dashboard"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "各渠道每月新增私域客户" in body and "vendor/plotly.min.js" in body and "cdn" not in body.lower()
    assert "流量入口" in body and "即将推出" in body  # the five layers, unbuilt ones said to be unbuilt
    charts = json.loads(body.split('id="chart-data" type="application/json">')[1].split("</script>")[0])
    assert sum(sum(series["y"]) for series in charts["channel_matrix"]["series"]) == 1
    assert [series["name"] for series in charts["channel_matrix"]["series"]] == ["小红书"]
    assert sum(charts["events_daily"]["y"]) == 2
    assert response.context["summary"]["customers_total"] == 1
    assert "channel-matrix-table" in body  # the same numbers as a table


def test_dashboard_without_data_draws_nothing_invented(workspace, clients):
    response = clients["admin"].get(reverse("console:dashboard"))
    charts = response.context["charts"]
    assert charts["channel_matrix"]["x"] == [] and charts["active_daily"]["x"] == [] and charts["events_daily"]["x"] == []
    assert "统计尚未生成" in response.content.decode()


def test_english_switch(clients, ann):
    client = clients["operator"]
    response = client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert response.status_code == 302
    body = client.get(reverse("console:dashboard")).content.decode()
    assert "New private-domain customers per channel per month" in body and "Coming soon" in body
    assert "各渠道每月新增私域客户" not in body
    listing = client.get(reverse("console:customer_list")).content.decode()
    assert "Customers" in listing and "Xiaohongshu" in listing and "小红书" not in listing
    detail = client.get(detail_url(ann)).content.decode()
    assert "Order paid" in detail and "Mini-program" in detail and "Event timeline" in detail


def test_not_built_page_is_honest(clients):
    response = clients["admin"].get(reverse("console:not_built", args=["referral"]))
    assert response.status_code == 200 and "即将推出" in response.content.decode()
    assert clients["admin"].get(reverse("console:not_built", args=["customers"])).status_code == 404
    assert clients["admin"].get(reverse("console:not_built", args=["orders"])).status_code == 404  # built now
    assert clients["admin"].get(reverse("console:not_built", args=["journeys"])).status_code == 404  # built now


def test_workspace_switcher(workspace, members, clients):
    other = workspace_create(slug="brand-c", name="品牌C")
    membership_grant(workspace=other, username="admin-user", password=None, role="analyst")
    client = clients["admin"]
    assert "品牌C" in client.get(reverse("console:dashboard")).content.decode()
    client.post(reverse("console:workspace_switch"), {"workspace_id": other.pk, "next": "/customers/"})
    assert client.get(reverse("console:dashboard")).context["request"].workspace == other
    stranger = workspace_create(slug="brand-d", name="品牌D")
    assert client.post(reverse("console:workspace_switch"), {"workspace_id": stranger.pk}).status_code == 404
    assert client.get(reverse("console:dashboard")).context["request"].workspace == other


# --- customer list and search ----------------------------------------------------------------------

def test_search_by_phone_name_identity_tag_channel(workspace, clients, ann, recent):
    bob = make_customer(workspace, at=recent - timedelta(days=2), name="李四", channel="store")
    tag = make_tag(workspace)
    tag_customer(bob, tag)
    client = clients["operator"]
    url = reverse("console:customer_list")

    def ids(**params):
        return [row["customer"].pk for row in client.get(url, params).context["rows"]]

    assert ids(q="13800138000") == [ann.pk]
    assert ids(q="王小明") == [ann.pk]
    assert ids(q="oANN") == [ann.pk]
    assert ids(tag=tag.pk) == [bob.pk]
    assert ids(channel="store") == [bob.pk]
    assert ids() == [ann.pk, bob.pk]
    assert ids(q="nobody") == []
    assert "13800138000" in client.get(url, {"q": "13800138000"}).content.decode()


def test_list_is_paginated(workspace, clients, recent):
    for k in range(30):
        make_customer(workspace, at=recent - timedelta(minutes=k))
    client = clients["admin"]
    first = client.get(reverse("console:customer_list"))
    second = client.get(reverse("console:customer_list"), {"page": 2})
    assert len(first.context["rows"]) == 25 and len(second.context["rows"]) == 5
    assert client.get(reverse("console:customer_list"), {"page": "abc"}).status_code == 200


def test_analyst_list_is_masked(clients, ann):
    body = clients["analyst"].get(reverse("console:customer_list")).content.decode()
    assert "138****8000" in body and "王**" in body
    assert "13800138000" not in body and "王小明" not in body


def test_service_staff_list_only_own(workspace, members, clients, ann, recent):
    mine = make_customer(workspace, at=recent, name="张三", owner=members["service"].user)
    rows = clients["service"].get(reverse("console:customer_list")).context["rows"]
    assert [row["customer"].pk for row in rows] == [mine.pk]


# --- customer 360 ------------------------------------------------------------------------------------

def test_360_page_shows_everything_and_audits_clear_view(workspace, members, clients, ann, recent):
    tag = make_tag(workspace, name="护肤")
    tag_customer(ann, tag)
    consent(ann, "marketing", True, recent)
    consent(ann, "marketing", False, recent + timedelta(hours=1))
    response = clients["admin"].get(detail_url(ann))
    body = response.content.decode()
    assert response.status_code == 200
    assert "王小明" in body and "13800138000" in body
    assert "oANN" in body and "uANN" in body and "wxmp" in body and "138****8000" in body
    assert ann.phone_hash not in body  # the phone identity never shows its hash
    assert "护肤" in body and "已拒绝/撤回" in body
    assert "小红书" in body and "小程序" in body  # first arrival and later touch
    assert "支付订单" in body and "扫描渠道码" in body and "utm: xhs" in body
    log = AuditLog.objects.get(action="customer.personal_data.view")
    assert log.actor == members["admin"].user and log.target_id == str(ann.pk) and log.workspace == workspace


def test_360_for_analyst_is_masked_and_not_audited_as_clear(clients, ann):
    body = clients["analyst"].get(detail_url(ann)).content.decode()
    assert "王**" in body and "138****8000" in body
    assert "王小明" not in body and "13800138000" not in body
    assert not AuditLog.objects.filter(action="customer.personal_data.view").exists()
    assert "添加标签" not in body and "撤销合并" not in body  # read-only role gets no write controls


def test_other_workspace_customer_is_404(other_workspace, clients, recent):
    theirs = make_customer(other_workspace, at=recent, name="外人")
    response = clients["admin"].get(detail_url(theirs))
    assert response.status_code == 404 and "外人" not in response.content.decode()


def test_service_staff_cannot_open_someone_elses_customer(clients, ann):
    response = clients["service"].get(detail_url(ann))
    assert response.status_code == 403
    assert "王小明" not in response.content.decode()
    assert not AuditLog.objects.filter(action="customer.personal_data.view").exists()


def test_timeline_is_paginated_newest_first(workspace, clients, recent):
    customer = make_customer(workspace, at=recent, identities=[("openid", "mp", "o9")],
                             events=[("page_view", "official_account", k) for k in range(35)])
    first = clients["admin"].get(detail_url(customer))
    events = [row["event"] for row in first.context["events"]]
    assert len(events) == 30 and events[0].occurred_at > events[-1].occurred_at
    second = clients["admin"].get(detail_url(customer), {"events_page": 2})
    assert len(second.context["events"]) == 5


# --- tagging from the 360 page --------------------------------------------------------------------------

def test_add_and_remove_manual_tag(workspace, clients, ann):
    tag = make_tag(workspace)
    client = clients["operator"]
    response = client.post(reverse("console:customer_tag_add", args=[ann.pk]), {"tag_id": tag.pk})
    assert response.status_code == 302
    assert CustomerTag.objects.filter(customer=ann, tag=tag).exists()
    assert "高意向" in client.get(detail_url(ann)).content.decode()
    client.post(reverse("console:customer_tag_remove", args=[ann.pk]), {"tag_id": tag.pk})
    assert not CustomerTag.objects.filter(customer=ann, tag=tag).exists()


def test_analyst_cannot_tag_and_nothing_changes(workspace, clients, ann):
    tag = make_tag(workspace)
    response = clients["analyst"].post(reverse("console:customer_tag_add", args=[ann.pk]), {"tag_id": tag.pk})
    assert response.status_code == 403
    assert not CustomerTag.objects.filter(customer=ann).exists()


def test_service_cannot_tag_someone_elses_customer(workspace, clients, ann):
    tag = make_tag(workspace)
    response = clients["service"].post(reverse("console:customer_tag_add", args=[ann.pk]), {"tag_id": tag.pk})
    assert response.status_code == 403
    assert not CustomerTag.objects.filter(customer=ann).exists()


def test_tag_of_another_workspace_is_refused(workspace, other_workspace, clients, ann):
    foreign = make_tag(other_workspace)
    response = clients["admin"].post(reverse("console:customer_tag_add", args=[ann.pk]), {"tag_id": foreign.pk})
    assert response.status_code == 404
    assert not CustomerTag.objects.filter(customer=ann).exists()


def test_rule_tag_cannot_be_added_by_hand(workspace, clients, ann):
    rule_tag = make_tag(workspace, name="复购", kind="rule", rule={"event": "order_paid", "min_count": 2})
    response = clients["admin"].post(reverse("console:customer_tag_add", args=[ann.pk]), {"tag_id": rule_tag.pk})
    assert response.status_code == 400 and "规则标签" in response.content.decode()
    assert not CustomerTag.objects.filter(customer=ann).exists()


# --- merge, un-merge, link ------------------------------------------------------------------------------

def test_link_then_unmerge(workspace, clients, ann, recent):
    twin = make_customer(workspace, at=recent + timedelta(hours=1), name="王小明", identities=[("openid", "app", "oT")])
    client = clients["operator"]
    response = client.post(reverse("console:customer_link", args=[ann.pk]), {"other_id": str(twin.pk)})
    assert response.status_code == 302
    twin.refresh_from_db()
    assert twin.status == CustomerStatus.MERGED and twin.merged_into_id == ann.pk
    record = MergeRecord.objects.get(winner=ann, loser=twin)
    assert "oT" in client.get(detail_url(ann)).content.decode()
    client.post(reverse("console:customer_unmerge", args=[ann.pk]), {"record_id": record.pk})
    twin.refresh_from_db()
    record.refresh_from_db()
    assert twin.status == CustomerStatus.ACTIVE and record.unmerged_at is not None
    assert AuditLog.objects.filter(action="customer.unmerge", target_id=str(ann.pk)).exists()


@pytest.mark.parametrize("role", ["service", "analyst"])
def test_merge_actions_need_admin_or_operator(workspace, members, clients, ann, recent, role):
    twin = make_customer(workspace, at=recent + timedelta(hours=1), owner=members["service"].user)
    Customer.objects.filter(pk=ann.pk).update(owner=members["service"].user)
    record = customer_merge(workspace=workspace, winner_id=ann.pk, loser_id=twin.pk, reason="explicit")
    response = clients[role].post(reverse("console:customer_unmerge", args=[ann.pk]), {"record_id": record.pk})
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.unmerged_at is None
    other = make_customer(workspace, at=recent, owner=members["service"].user)
    response = clients[role].post(reverse("console:customer_link", args=[ann.pk]), {"other_id": other.pk})
    assert response.status_code == 403
    assert Customer.objects.get(pk=other.pk).status == CustomerStatus.ACTIVE


def test_unmerge_of_a_record_not_about_this_customer_is_404(workspace, clients, ann, recent):
    a = make_customer(workspace, at=recent)
    b = make_customer(workspace, at=recent)
    record = customer_merge(workspace=workspace, winner_id=a.pk, loser_id=b.pk, reason="explicit")
    response = clients["admin"].post(reverse("console:customer_unmerge", args=[ann.pk]), {"record_id": record.pk})
    assert response.status_code == 404
    record.refresh_from_db()
    assert record.unmerged_at is None


# --- tags page and bulk tagging --------------------------------------------------------------------

def test_tags_page_create_group_manual_and_rule_tag(workspace, clients):
    client = clients["operator"]
    client.post(reverse("console:tag_group_create"), {"name": "生命周期"})
    group = TagGroup.objects.get(workspace=workspace, name="生命周期")
    client.post(reverse("console:tag_create"), {"group_id": group.pk, "name": "VIP"})
    rule = {"all": [{"event": "order_paid", "min_count": 2, "within_days": 90}]}
    client.post(reverse("console:tag_create"), {"group_id": group.pk, "name": "复购客", "rule": json.dumps(rule)})
    assert Tag.objects.get(name="VIP").kind == "manual"
    assert Tag.objects.get(name="复购客").rule == rule
    body = client.get(reverse("console:tags")).content.decode()
    assert "生命周期" in body and "VIP" in body and "复购客" in body


def test_bad_rule_is_refused_and_nothing_created(workspace, clients):
    group = TagGroup.objects.create(workspace=workspace, name="组")
    client = clients["admin"]
    not_json = client.post(reverse("console:tag_create"), {"group_id": group.pk, "name": "x", "rule": "{oops"})
    assert not_json.status_code == 400 and "JSON" in not_json.content.decode()
    bad_rule = client.post(reverse("console:tag_create"), {"group_id": group.pk, "name": "x",
                                                           "rule": json.dumps({"event": 5})})
    assert bad_rule.status_code == 400
    assert not Tag.objects.filter(workspace=workspace).exists()


@pytest.mark.parametrize("role", ["service", "analyst"])
def test_only_managers_create_tags(workspace, clients, role):
    response = clients[role].post(reverse("console:tag_group_create"), {"name": "组"})
    assert response.status_code == 403
    assert not TagGroup.objects.filter(workspace=workspace).exists()


def test_bulk_tag_filtered_list(workspace, clients, recent):
    stores = [make_customer(workspace, at=recent, channel="store") for _ in range(3)]
    others = [make_customer(workspace, at=recent, channel="douyin") for _ in range(2)]
    tag = make_tag(workspace)
    tag_customer(stores[0], tag)
    client = clients["operator"]
    response = client.post(reverse("console:tags_bulk_apply"), {"tag_id": tag.pk, "channel": "store"}, follow=True)
    assert "已为 2 位客户添加标签" in response.content.decode()
    assert set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True)) == {c.pk for c in stores}
    assert not CustomerTag.objects.filter(customer__in=others).exists()


def test_bulk_tag_without_filter_needs_confirmation(workspace, clients, recent):
    customer = make_customer(workspace, at=recent)
    tag = make_tag(workspace)
    refused = clients["admin"].post(reverse("console:tags_bulk_apply"), {"tag_id": tag.pk})
    assert refused.status_code == 400 and not CustomerTag.objects.exists()
    clients["admin"].post(reverse("console:tags_bulk_apply"), {"tag_id": tag.pk, "confirm_all": "on"})
    assert CustomerTag.objects.filter(customer=customer, tag=tag).exists()


def test_bulk_tag_by_service_staff_touches_only_their_customers(workspace, members, clients, recent):
    mine = make_customer(workspace, at=recent, channel="store", owner=members["service"].user)
    theirs = make_customer(workspace, at=recent, channel="store")
    tag = make_tag(workspace)
    clients["service"].post(reverse("console:tags_bulk_apply"), {"tag_id": tag.pk, "channel": "store"})
    assert list(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True)) == [mine.pk]
    assert not CustomerTag.objects.filter(customer=theirs).exists()


def test_bulk_tag_refused_for_analyst(workspace, clients, recent):
    make_customer(workspace, at=recent, channel="store")
    tag = make_tag(workspace)
    response = clients["analyst"].post(reverse("console:tags_bulk_apply"), {"tag_id": tag.pk, "channel": "store"})
    assert response.status_code == 403 and not CustomerTag.objects.exists()


def test_chinese_first_even_for_an_english_browser(members):
    client = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "用户名" in client.get(reverse("console:login")).content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": "/login/"})
    assert "Username" in client.get(reverse("console:login")).content.decode()


def test_merged_customer_page_points_to_the_survivor(workspace, clients, ann, recent):
    twin = make_customer(workspace, at=recent + timedelta(hours=1), identities=[("openid", "app", "oT")])
    make_tag(workspace)
    customer_merge(workspace=workspace, winner_id=ann.pk, loser_id=twin.pk, reason="explicit")
    body = clients["admin"].get(detail_url(twin)).content.decode()
    assert f'href="{detail_url(ann)}"' in body and "已合并到" in body
    assert 'id="tag-add-form"' not in body
    assert 'id="tag-add-form"' in clients["admin"].get(detail_url(ann)).content.decode()
