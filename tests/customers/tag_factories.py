"""Small builders for tag tests: customers with identities and events, without going through ingestion."""

from __future__ import annotations

import itertools
from datetime import datetime

from siyu.customers.models import Customer, Event, Identity

_serial = itertools.count(1)


def make_customer(workspace, *, at: datetime, identities: int = 1, **fields) -> tuple[Customer, list[Identity]]:
    customer = Customer.objects.create(workspace=workspace, first_seen_at=at, last_seen_at=at, **fields)
    held = [
        Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace="wxapp",
                                value=f"o{next(_serial)}", first_seen_at=at, last_seen_at=at)
        for _ in range(identities)
    ]
    return customer, held


def make_event(workspace, identity: Identity, *, type: str, at: datetime, **properties) -> Event:
    return Event.objects.create(workspace=workspace, event_id=f"e{next(_serial)}", type=type, occurred_at=at,
                                received_at=at, identity=identity, properties=properties)
