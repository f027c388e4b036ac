"""Helpers shared by the ingestion tests: posting a batch and fingerprinting every table a batch may touch."""

from __future__ import annotations

import hashlib

import orjson

from siyu.customers.models import (
    ConsentRecord,
    Customer,
    CustomerTag,
    Event,
    Identity,
    LastSeenTouch,
    MergeRecord,
)

URL = "/api/v1/events/batch"


def post(client, secret, body, *, raw: bytes | None = None, **headers):
    data = raw if raw is not None else orjson.dumps(body)
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client.post(URL, data=data, content_type="application/json", **headers)


def event(event_id, at, **extra):
    body = {"event_id": event_id, "type": "page_view", "occurred_at": at.isoformat(),
            "identities": [{"kind": "openid", "namespace": "mp", "value": "o-1"}]}
    body.update(extra)
    return body


def snapshot() -> dict[str, tuple[int, str]]:
    """Row count and a checksum of every row of each table ingestion may write."""
    state = {}
    for model in (Event, Customer, Identity, MergeRecord, CustomerTag, ConsentRecord, LastSeenTouch):
        rows = list(model.objects.order_by("pk").values_list())
        state[model.__name__] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return state


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"]), body  # Chinese message
    assert body["message_en"] and body["message_en"].isascii(), body
    return body
