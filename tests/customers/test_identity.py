from datetime import timedelta

import pytest

from siyu.customers.identity import Observation, customer_merge, customer_unmerge, identities_resolve
from siyu.customers.models import (
    ConsentRecord,
    Customer,
    CustomerStatus,
    CustomerTag,
    Identity,
    Tag,
    TagGroup,
)

pytestmark = pytest.mark.django_db


def observe(workspace, *keys, at):
    return identities_resolve(workspace=workspace, observations=[Observation(list(keys), at)])[0]


def test_new_identity_creates_customer(workspace, recent):
    result = observe(workspace, ("openid", "wxapp", "o1"), at=recent)
    customer = Customer.objects.get(pk=result.customer_id)
    assert customer.workspace == workspace
    assert Identity.objects.get(pk=result.identity_id).value == "o1"


def test_unionid_links_openids_of_two_apps(workspace, recent):
    a = observe(workspace, ("openid", "mp", "oA"), at=recent)
    b = observe(workspace, ("openid", "mini", "oB"), at=recent + timedelta(minutes=1))
    assert a.customer_id != b.customer_id
    observe(workspace, ("openid", "mp", "oA"), ("unionid", "", "U1"), at=recent + timedelta(minutes=2))
    linked = observe(workspace, ("openid", "mini", "oB"), ("unionid", "", "U1"), at=recent + timedelta(minutes=3))
    assert linked.customer_id == a.customer_id  # the older profile wins
    loser = Customer.objects.get(pk=b.customer_id)
    assert loser.status == CustomerStatus.MERGED and loser.merged_into_id == a.customer_id
    assert set(Identity.objects.filter(customer_id=a.customer_id).values_list("value", flat=True)) == {"oA", "oB", "U1"}


def test_device_never_merges(workspace, recent):
    a = observe(workspace, ("openid", "mp", "oA"), ("device", "ios", "D1"), at=recent)
    b = observe(workspace, ("phone", "", "h1"), ("device", "ios", "D1"), at=recent)
    assert a.customer_id != b.customer_id
    assert Identity.objects.get(value="D1").customer_id == a.customer_id


def test_unmerge_restores_identities_tags_and_consent(workspace, recent):
    a = observe(workspace, ("openid", "mp", "oA"), at=recent)
    b = observe(workspace, ("openid", "mp", "oB"), at=recent + timedelta(minutes=1))
    group = TagGroup.objects.create(workspace=workspace, name="兴趣")
    tag = Tag.objects.create(workspace=workspace, group=group, name="护肤")
    CustomerTag.objects.create(workspace=workspace, customer_id=b.customer_id, tag=tag)
    ConsentRecord.objects.create(workspace=workspace, customer_id=b.customer_id, purpose="marketing", granted=True,
                                 recorded_at=recent)
    record = customer_merge(workspace=workspace, winner_id=a.customer_id, loser_id=b.customer_id, reason="explicit")
    assert CustomerTag.objects.filter(customer_id=a.customer_id, tag=tag).exists()
    assert ConsentRecord.objects.filter(customer_id=a.customer_id).count() == 1
    customer_unmerge(workspace=workspace, record_id=record.pk)
    assert not CustomerTag.objects.filter(customer_id=a.customer_id, tag=tag).exists()
    assert CustomerTag.objects.filter(customer_id=b.customer_id, tag=tag).exists()
    assert ConsentRecord.objects.filter(customer_id=b.customer_id).count() == 1
    assert Identity.objects.get(value="oB").customer_id == b.customer_id
    assert Customer.objects.get(pk=b.customer_id).status == CustomerStatus.ACTIVE


def test_observing_a_known_identity_again_moves_its_last_seen_forward(workspace, recent):
    first = observe(workspace, ("openid", "mp", "oS"), ("unionid", "", "US"), at=recent - timedelta(hours=2))
    observe(workspace, ("openid", "mp", "oS"), ("openid", "mini", "oM"), at=recent)
    observe(workspace, ("unionid", "", "US"), at=recent - timedelta(hours=3))  # older: nothing moves back
    rows = {row.value: row for row in Identity.objects.filter(customer_id=first.customer_id)}
    assert rows["oS"].last_seen_at == recent and rows["oS"].first_seen_at == recent - timedelta(hours=2)
    assert rows["US"].last_seen_at == recent - timedelta(hours=2)
    assert rows["oM"].first_seen_at == rows["oM"].last_seen_at == recent


def test_a_new_customer_takes_the_observations_profile(workspace, recent):
    from siyu.core.crypto import encrypt_text, name_hash

    profile = {"name_enc": encrypt_text("王小明"), "name_hash": name_hash("王小明"), "city": "上海"}
    first, second = identities_resolve(workspace=workspace, observations=[
        Observation([("openid", "mp", "oP1")], recent, "xiaohongshu", profile=profile),
        Observation([("openid", "mp", "oP2")], recent - timedelta(hours=1), last_seen_at=recent + timedelta(hours=1)),
    ])
    customer = Customer.objects.get(pk=first.customer_id)
    assert (customer.name, customer.name_hash, customer.city, customer.first_channel) == (
        "王小明", name_hash("王小明"), "上海", "xiaohongshu")
    assert customer.first_seen_at == customer.last_seen_at == recent
    other = Customer.objects.get(pk=second.customer_id)
    assert other.name is None and other.name_hash == "" and other.status == "active" and other.attributes == {}
    assert (other.first_seen_at, other.last_seen_at) == (recent - timedelta(hours=1), recent + timedelta(hours=1))
    identity = Identity.objects.get(pk=second.identity_id)
    assert (identity.first_seen_at, identity.last_seen_at) == (other.first_seen_at, other.last_seen_at)
