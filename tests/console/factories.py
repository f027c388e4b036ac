"""Build customers with identities, events, tags and consent directly, for console and selector tests."""

from __future__ import annotations

import itertools
from datetime import timedelta

from siyu.core.crypto import encrypt_text, name_hash, phone_hash
from siyu.customers.models import ConsentRecord, Customer, CustomerTag, Event, Identity, Tag, TagGroup

_sequence = itertools.count(1)


def make_customer(workspace, *, at, name="", phone="", channel="official_account", owner=None, identities=(),
                  events=()):
    """identities: (kind, namespace, value); a phone identity is added for ``phone`` automatically.
    events: (type, channel, minutes_after_at[, utm_source])."""
    customer = Customer.objects.create(
        workspace=workspace, first_channel=channel, first_seen_at=at, last_seen_at=at, owner=owner,
        name_enc=encrypt_text(name) if name else None, name_hash=name_hash(name) if name else "",
        phone_enc=encrypt_text(phone) if phone else None, phone_hash=phone_hash(phone) if phone else "",
    )
    keys = list(identities) + ([("phone", "", phone_hash(phone))] if phone else [])
    made = [Identity.objects.create(workspace=workspace, customer=customer, kind=kind, namespace=namespace,
                                    value=value, first_seen_at=at, last_seen_at=at)
            for kind, namespace, value in keys]
    for event in events:
        event_type, event_channel, minutes = event[:3]
        Event.objects.create(workspace=workspace, event_id=f"e{next(_sequence)}", type=event_type,
                             occurred_at=at + timedelta(minutes=minutes), received_at=at + timedelta(minutes=minutes),
                             identity=made[0], channel=event_channel,
                             utm_source=event[3] if len(event) > 3 else "")
    return customer


def make_tag(workspace, name="高意向", group="意向", kind="manual", rule=None):
    tag_group, _ = TagGroup.objects.get_or_create(workspace=workspace, name=group)
    return Tag.objects.create(workspace=workspace, group=tag_group, name=name, kind=kind, rule=rule)


def tag_customer(customer, tag):
    return CustomerTag.objects.create(workspace=customer.workspace, customer=customer, tag=tag)


def consent(customer, purpose, granted, at):
    return ConsentRecord.objects.create(workspace=customer.workspace, customer=customer, purpose=purpose,
                                        granted=granted, recorded_at=at, source="form")
