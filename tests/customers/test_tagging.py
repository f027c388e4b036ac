"""Tag services: groups, manual and bulk tagging, single-choice groups, rule tags refreshed from events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from siyu.core.errors import SiyuError
from siyu.core.models import AuditLog
from siyu.customers.models import CustomerStatus, CustomerTag, Tag, TagGroup
from siyu.customers.tagging import (
    customer_tag_add,
    customer_tag_remove,
    rule_tags_refresh,
    tag_create,
    tag_delete,
    tag_group_create,
    tag_group_delete,
    tag_group_rename,
    tag_update_rule,
    tags_bulk_add,
    tags_bulk_remove,
)
from tests.customers.tag_factories import make_customer, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(workspace):
    return tag_group_create(workspace=workspace, name="兴趣")


@pytest.fixture
def tag(workspace, group):
    return tag_create(workspace=workspace, group_id=group.pk, name="护肤")


def tagged(tag):
    return set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))


def test_group_create_rename_delete(workspace, group, tag, now):
    customer, _ = make_customer(workspace, at=now)
    customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=tag.pk)
    with pytest.raises(SiyuError) as refused:
        tag_group_create(workspace=workspace, name=" 兴趣 ")
    assert refused.value.code == "tag_name_taken" and refused.value.status == 409
    with pytest.raises(SiyuError) as refused:
        tag_group_create(workspace=workspace, name="   ")
    assert refused.value.code == "tag_name_required"
    with pytest.raises(SiyuError) as refused:
        tag_group_create(workspace=workspace, name="长" * 33)
    assert refused.value.code == "tag_name_too_long"
    renamed = tag_group_rename(workspace=workspace, group_id=group.pk, name="偏好")
    assert TagGroup.objects.get(pk=group.pk).name == "偏好" == renamed.name
    tag_group_delete(workspace=workspace, group_id=group.pk)
    assert not Tag.objects.filter(pk=tag.pk).exists() and not CustomerTag.objects.exists()
    entry = AuditLog.objects.get(action="tag_group.delete")
    assert entry.detail["customer_tags_removed"] == 1 and entry.detail["tags"] == ["护肤"]


def test_other_workspace_cannot_touch_tags(workspace, other_workspace, group, tag, now):
    customer, _ = make_customer(workspace, at=now)
    foreign, _ = make_customer(other_workspace, at=now)
    for call in (
        lambda: tag_group_rename(workspace=other_workspace, group_id=group.pk, name="x"),
        lambda: tag_group_delete(workspace=other_workspace, group_id=group.pk),
        lambda: tag_create(workspace=other_workspace, group_id=group.pk, name="x"),
        lambda: tag_delete(workspace=other_workspace, tag_id=tag.pk),
        lambda: customer_tag_add(workspace=other_workspace, customer_id=customer.pk, tag_id=tag.pk),
        lambda: customer_tag_add(workspace=workspace, customer_id=foreign.pk, tag_id=tag.pk),
        lambda: tags_bulk_add(workspace=other_workspace, tag=tag, customer_ids=[foreign.pk]),
    ):
        with pytest.raises(SiyuError) as refused:
            call()
        assert refused.value.status == 404
    assert TagGroup.objects.get(pk=group.pk).name == "兴趣"
    assert not CustomerTag.objects.exists()


def test_add_and_remove_one_customer(workspace, tag, admin_membership, now):
    customer, _ = make_customer(workspace, at=now)
    assert customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=tag.pk, actor=admin_membership.user)
    assert not customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=tag.pk)
    row = CustomerTag.objects.get(customer=customer, tag=tag)
    assert row.source == "manual" and row.added_by == admin_membership.user
    assert customer_tag_remove(workspace=workspace, customer_id=customer.pk, tag_id=tag.pk)
    assert not customer_tag_remove(workspace=workspace, customer_id=customer.pk, tag_id=tag.pk)


def test_exclusive_group_keeps_one_tag(workspace, now):
    stage = tag_group_create(workspace=workspace, name="生命周期", exclusive=True)
    new = tag_create(workspace=workspace, group_id=stage.pk, name="新客")
    loyal = tag_create(workspace=workspace, group_id=stage.pk, name="老客")
    other_group = tag_group_create(workspace=workspace, name="兴趣")
    hobby = tag_create(workspace=workspace, group_id=other_group.pk, name="咖啡")
    customers = [make_customer(workspace, at=now)[0] for _ in range(3)]
    customer_tag_add(workspace=workspace, customer_id=customers[0].pk, tag_id=new.pk)
    customer_tag_add(workspace=workspace, customer_id=customers[0].pk, tag_id=hobby.pk)
    customer_tag_add(workspace=workspace, customer_id=customers[0].pk, tag_id=loyal.pk)
    assert set(CustomerTag.objects.filter(customer=customers[0]).values_list("tag_id", flat=True)) == {loyal.pk,
                                                                                                       hobby.pk}
    tags_bulk_add(workspace=workspace, tag=new, customer_ids=[c.pk for c in customers])
    assert tagged(new) == {c.pk for c in customers} and tagged(loyal) == set()
    assert AuditLog.objects.get(action="tag.bulk_add").detail["displaced_in_group"] == 1
    with pytest.raises(SiyuError) as refused:
        tag_create(workspace=workspace, group_id=stage.pk, name="活跃", kind="rule", rule={"event": "page_view"})
    assert refused.value.code == "rule_tag_in_exclusive_group"


def test_merged_customer_cannot_be_tagged(workspace, tag, now):
    winner, _ = make_customer(workspace, at=now)
    loser, _ = make_customer(workspace, at=now, status=CustomerStatus.MERGED, merged_into=winner)
    with pytest.raises(SiyuError) as refused:
        customer_tag_add(workspace=workspace, customer_id=loser.pk, tag_id=tag.pk)
    assert refused.value.code == "customer_merged" and refused.value.details["merged_into"] == winner.pk
    with pytest.raises(SiyuError) as refused:
        tags_bulk_add(workspace=workspace, tag=tag, customer_ids=[winner.pk, loser.pk, 10**9])
    assert refused.value.code == "customers_not_taggable"
    assert refused.value.details == {"count": 2, "customer_ids": [loser.pk, 10**9]}
    assert not CustomerTag.objects.exists() and not AuditLog.objects.filter(action="tag.bulk_add").exists()


def test_bulk_add_and_remove_count_and_audit(workspace, tag, admin_membership, now):
    customers = [make_customer(workspace, at=now)[0] for _ in range(7)]
    ids = [c.pk for c in customers]
    customer_tag_add(workspace=workspace, customer_id=ids[0], tag_id=tag.pk)
    assert tags_bulk_add(workspace=workspace, tag=tag, customer_ids=ids + ids[:2], actor=admin_membership.user) == 6
    assert tagged(tag) == set(ids)
    assert tags_bulk_add(workspace=workspace, tag=tag, customer_ids=ids) == 0
    assert tags_bulk_remove(workspace=workspace, tag=tag, customer_ids=ids[:3], actor=admin_membership.user) == 3
    assert tagged(tag) == set(ids[3:])
    added = AuditLog.objects.filter(action="tag.bulk_add").order_by("pk").first()
    assert added.detail == {"requested": 7, "added": 6, "displaced_in_group": 0}
    assert added.actor == admin_membership.user and added.target_id == str(tag.pk)
    assert AuditLog.objects.get(action="tag.bulk_remove").detail == {"requested": 3, "removed": 3}
    for bad in ("1,2", [1, "2"], None, [True]):
        with pytest.raises(SiyuError) as refused:
            tags_bulk_add(workspace=workspace, tag=tag, customer_ids=bad)
        assert refused.value.code == "customer_ids_invalid"


def test_bulk_add_many_customers(workspace, tag, now):
    from siyu.customers.models import Customer

    Customer.objects.bulk_create([Customer(workspace=workspace, first_seen_at=now, last_seen_at=now)
                                  for _ in range(6_000)], batch_size=2000)
    ids = list(Customer.objects.filter(workspace=workspace).values_list("pk", flat=True))
    assert tags_bulk_add(workspace=workspace, tag=tag, customer_ids=ids) == 6_000
    assert CustomerTag.objects.filter(tag=tag).count() == 6_000
    assert tags_bulk_remove(workspace=workspace, tag=tag, customer_ids=ids[:5500]) == 5500


def test_rule_tags_cannot_be_set_by_hand_and_rules_are_validated(workspace, group, tag, now):
    customer, _ = make_customer(workspace, at=now)
    with pytest.raises(SiyuError) as refused:
        tag_create(workspace=workspace, group_id=group.pk, name="活跃", kind="rule", rule={"event": ""})
    assert refused.value.code == "rule_bad_event"
    with pytest.raises(SiyuError) as refused:
        tag_create(workspace=workspace, group_id=group.pk, name="活跃", kind="rule")
    assert refused.value.code == "tag_rule_required"
    with pytest.raises(SiyuError) as refused:
        tag_create(workspace=workspace, group_id=group.pk, name="活跃", rule={"event": "a"})
    assert refused.value.code == "tag_rule_unexpected"
    active = tag_create(workspace=workspace, group_id=group.pk, name="活跃", kind="rule", rule={"event": "a"})
    with pytest.raises(SiyuError) as refused:
        customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=active.pk)
    assert refused.value.code == "tag_is_rule"
    with pytest.raises(SiyuError) as refused:
        tag_update_rule(workspace=workspace, tag_id=tag.pk, rule={"event": "a"})
    assert refused.value.code == "tag_not_rule"
    with pytest.raises(SiyuError) as refused:
        tag_update_rule(workspace=workspace, tag_id=active.pk, rule={"event": "a", "min_count": -1})
    assert refused.value.code == "rule_bad_min_count"
    assert Tag.objects.get(pk=active.pk).rule == {"event": "a"}


def test_rule_tags_refresh_adds_and_removes(workspace, group, now):
    rule = {"all": [{"event": "product_view", "min_count": 2, "within_days": 7},
                    {"not": {"event": "order_paid", "within_days": 7}}]}
    hesitant = tag_create(workspace=workspace, group_id=group.pk, name="犹豫", kind="rule", rule=rule)
    shanghai = tag_create(workspace=workspace, group_id=group.pk, name="上海", kind="rule",
                          rule={"attribute": "city", "equals": "上海"})
    a, (ida,) = make_customer(workspace, at=now, city="上海")
    b, (idb,) = make_customer(workspace, at=now)
    for identity in (ida, idb):
        make_event(workspace, identity, type="product_view", at=now - timedelta(days=1))
        make_event(workspace, identity, type="product_view", at=now - timedelta(days=2))
    summary = rule_tags_refresh(workspace=workspace, customer_ids=[a.pk], now=now)
    assert summary == {"tags": 2, "added": 2, "removed": 0}
    assert tagged(hesitant) == {a.pk} and tagged(shanghai) == {a.pk}
    rule_tags_refresh(workspace=workspace, now=now)
    assert tagged(hesitant) == {a.pk, b.pk}
    assert CustomerTag.objects.get(customer=b, tag=hesitant).source == "rule"
    make_event(workspace, ida, type="order_paid", at=now)
    assert rule_tags_refresh(workspace=workspace, customer_ids=[a.pk], now=now)["removed"] == 1
    assert tagged(hesitant) == {b.pk}
    # Time alone moves b out of the window.
    rule_tags_refresh(workspace=workspace, now=now + timedelta(days=7))
    assert tagged(hesitant) == set() and tagged(shanghai) == {a.pk}
