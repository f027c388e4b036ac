"""Build database rows from ``CustomerFacts`` so that SQL and the Python evaluator see the same customer."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.utils import timezone

from siyu.customers.models import Customer, CustomerTag, Event, Identity, Tag, TagGroup
from siyu.engagement.communities.models import Community, CommunityMember
from siyu.engagement.rfm.models import CustomerScore
from siyu.engagement.segments.conditions import CustomerFacts
from siyu.loyalty.models import CustomerTier, PointsAccount

_serial = itertools.count(1)


def tags_make(workspace, count: int) -> list[Tag]:
    group, _ = TagGroup.objects.get_or_create(workspace=workspace, name="分群测试")
    return [Tag.objects.get_or_create(workspace=workspace, group=group, name=f"标签{index}")[0]
            for index in range(count)]


def communities_make(workspace, count: int) -> list[Community]:
    return [Community.objects.get_or_create(workspace=workspace, name=f"社群{index}", type="vip")[0]
            for index in range(count)]


def customer_make(workspace, facts: CustomerFacts, *, now: datetime | None = None, left_community_ids=(),
                  identities: int = 2, name: str = "", phone: str = "") -> Customer:
    """A live customer with exactly these facts (events spread over ``identities`` identities)."""
    from siyu.core.crypto import encrypt_text

    now = now or timezone.now()
    customer = Customer.objects.create(
        workspace=workspace, gender=facts.gender, city=facts.city, first_channel=facts.first_channel,
        first_seen_at=facts.first_seen_at or now, last_seen_at=facts.last_seen_at or now,
        attributes=dict(facts.attributes), name_enc=encrypt_text(name) if name else None,
        phone_enc=encrypt_text(phone) if phone else None)
    idents = [Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace="wx",
                                      value=f"o-{next(_serial)}", first_seen_at=now, last_seen_at=now)
              for _ in range(max(1, identities))]
    Event.objects.bulk_create([
        Event(workspace=workspace, event_id=f"e-{next(_serial)}", type=event.type, occurred_at=event.occurred_at,
              received_at=now, identity=idents[index % len(idents)], properties=dict(event.properties))
        for index, event in enumerate(facts.events)])
    CustomerTag.objects.bulk_create([CustomerTag(workspace=workspace, customer=customer, tag_id=tag_id)
                                     for tag_id in facts.tag_ids])
    if facts.score is not None:
        score = facts.score
        CustomerScore.objects.create(workspace=workspace, customer=customer, rfm5=score.rfm5, rfm6=score.rfm6,
                                     lifecycle=score.lifecycle, recency_days=score.recency_days,
                                     frequency=score.frequency, monetary_fen=score.monetary_fen, computed_at=now)
    if facts.tier is not None:
        CustomerTier.objects.create(workspace=workspace, customer=customer, code=facts.tier, since=now,
                                    evaluated_at=now)
    if facts.points is not None:
        PointsAccount.objects.create(workspace=workspace, kind="customer", customer=customer, balance=facts.points)
    for community_id in facts.community_ids:
        CommunityMember.objects.create(workspace=workspace, community_id=community_id, customer=customer, joined_at=now)
    for community_id in left_community_ids:
        CommunityMember.objects.create(workspace=workspace, community_id=community_id, customer=customer,
                                       joined_at=now, left_at=now)
    return customer
