from datetime import timedelta

import pytest

from siyu.core.errors import SiyuError
from siyu.core.services import membership_grant
from siyu.customers.selectors import (
    CustomerFilter,
    customer_channel_touches,
    customer_consents,
    customer_events,
    customer_get,
    customer_identities,
    customer_personal_data,
    customer_search,
    event_labels,
)
from tests.console.factories import consent, make_customer, make_tag, tag_customer

pytestmark = pytest.mark.django_db


def found(workspace, membership, **search):
    return [c.pk for c in customer_search(workspace=workspace, membership=membership, search=CustomerFilter(**search))]


@pytest.fixture
def admin_membership(workspace):
    # No password: hashing one costs a second and these tests never log in.
    return membership_grant(workspace=workspace, username="admin", password=None, role="admin")


@pytest.fixture
def people(workspace, recent):
    ann = make_customer(workspace, at=recent, name="王小明", phone="13800138000", channel="xiaohongshu",
                        identities=[("openid", "wxmp", "oANN"), ("unionid", "", "uANN")])
    bob = make_customer(workspace, at=recent - timedelta(days=1), name="李四", phone="13900139000", channel="store",
                        identities=[("external_userid", "corp1", "wmBOB"), ("device", "ios", "dev-1")])
    return ann, bob


def test_search_by_full_name_phone_and_identity(workspace, admin_membership, people):
    ann, bob = people
    assert found(workspace, admin_membership, q="王小明") == [ann.pk]
    assert found(workspace, admin_membership, q=" 王小明 ") == [ann.pk]  # name hashing ignores outer spaces
    assert found(workspace, admin_membership, q="王小") == []  # partial names never match
    assert found(workspace, admin_membership, q="138 0013 8000") == [ann.pk]
    assert found(workspace, admin_membership, q="+8613900139000") == [bob.pk]
    assert found(workspace, admin_membership, q="1380013") == []  # partial numbers never match
    assert found(workspace, admin_membership, q="wmBOB") == [bob.pk]
    assert found(workspace, admin_membership, q="uANN") == [ann.pk]
    assert found(workspace, admin_membership, q="dev-1") == [bob.pk]


def test_search_by_tag_and_channel(workspace, admin_membership, people):
    ann, bob = people
    tag = make_tag(workspace)
    tag_customer(bob, tag)
    assert found(workspace, admin_membership, tag_id=tag.pk) == [bob.pk]
    assert found(workspace, admin_membership, channel="xiaohongshu") == [ann.pk]
    assert found(workspace, admin_membership) == [ann.pk, bob.pk]  # newest first


def test_search_never_crosses_workspaces(workspace, other_workspace, admin_membership, recent):
    make_customer(other_workspace, at=recent, name="王小明", phone="13800138000", identities=[("unionid", "", "u1")])
    assert found(workspace, admin_membership, q="王小明") == []
    assert found(workspace, admin_membership, q="u1") == []


def test_service_staff_see_only_their_customers(workspace, people, recent):
    service = membership_grant(workspace=workspace, username="svc", password=None, role="service")
    mine = make_customer(workspace, at=recent, name="张三", owner=service.user)
    assert found(workspace, service) == [mine.pk]
    assert found(workspace, service, q="王小明") == []
    with pytest.raises(SiyuError) as refused:
        customer_get(workspace=workspace, membership=service, customer_id=people[0].pk)
    assert refused.value.status == 403


def test_customer_get_of_other_workspace_is_not_found(workspace, other_workspace, admin_membership, recent):
    theirs = make_customer(other_workspace, at=recent)
    with pytest.raises(SiyuError) as refused:
        customer_get(workspace=workspace, membership=admin_membership, customer_id=theirs.pk)
    assert refused.value.status == 404


def test_analyst_sees_masked_personal_data(workspace, admin_membership, people):
    analyst = membership_grant(workspace=workspace, username="ana", password=None, role="analyst")
    ann = people[0]
    masked = customer_personal_data(customer=ann, membership=analyst)
    assert (masked.name, masked.phone, masked.in_clear) == ("王**", "138****8000", False)
    clear = customer_personal_data(customer=ann, membership=admin_membership)
    assert (clear.name, clear.phone, clear.in_clear) == ("王小明", "13800138000", True)


def test_identities_show_masked_phone_not_hash(workspace, admin_membership, people):
    ann = people[0]
    rows = {row.kind: row for row in customer_identities(customer=ann, membership=admin_membership)}
    assert set(rows) == {"openid", "unionid", "phone"}
    assert rows["phone"].display_value == "138****8000"
    assert rows["openid"].namespace == "wxmp" and rows["openid"].display_value == "oANN"


def test_channel_touches_and_timeline(workspace, recent):
    customer = make_customer(workspace, at=recent, channel="douyin", identities=[("openid", "mp", "o1")],
                             events=[("qr_scan", "douyin", 0, "dy"), ("page_view", "official_account", 5),
                                     ("order_paid", "mini_program", 10), ("page_view", "official_account", 20)])
    touches = customer_channel_touches(customer=customer)
    assert [t.channel for t in touches] == ["douyin", "official_account", "mini_program"]
    assert touches[0].is_first_arrival and touches[0].label == "抖音/快手"
    assert touches[1].events == 2 and touches[1].last_at - touches[1].first_at == timedelta(minutes=15)
    timeline = list(customer_events(customer=customer))
    assert [e.type for e in timeline] == ["page_view", "order_paid", "page_view", "qr_scan"]
    assert event_labels(workspace=workspace, language="zh-hans")["order_paid"] == "支付订单"
    assert event_labels(workspace=workspace, language="en")["order_paid"] == "Order paid"


def test_consent_latest_per_purpose(workspace, recent):
    customer = make_customer(workspace, at=recent)
    consent(customer, "marketing", True, recent)
    withdrawn = consent(customer, "marketing", False, recent + timedelta(hours=1))
    analytics = consent(customer, "analytics", True, recent)
    latest, history = customer_consents(customer=customer)
    assert {r.pk for r in latest} == {withdrawn.pk, analytics.pk}
    assert len(history) == 3 and history[0].pk == withdrawn.pk
