"""Customer-data HTTP endpoints: batch event ingestion for clients (API key)."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.http import HttpRequest
from ninja import Router

from siyu.core.errors import SiyuError
from siyu.customers.ingestion import events_ingest

router = Router(tags=["events"])


def _auth():
    from siyu.api import ApiKeyAuth

    return ApiKeyAuth()


@router.post(
    "/events/batch",
    auth=_auth(),
    summary="批量上报事件 / Ingest a batch of events",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["events"],
                "properties": {"events": {"type": "array", "maxItems": 1000, "items": {
                    "type": "object",
                    "required": ["event_id", "type", "occurred_at", "identities"],
                    "properties": {
                        "event_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$"},
                        "type": {"type": "string", "description": "事件类型,见 GET /api/v1/event-types"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "identities": {"type": "array", "minItems": 1, "maxItems": 10, "items": {
                            "type": "object", "required": ["kind", "value"],
                            "properties": {
                                "kind": {"enum": ["unionid", "openid", "external_userid", "phone", "device", "lead"]},
                                "namespace": {"type": "string"}, "value": {"type": "string"}}}},
                        "channel": {"type": "string"},
                        "page_url": {"type": "string"},
                        "utm": {"type": "object"},
                        "properties": {"type": "object"},
                    }}}},
            }}},
        }
    },
)
def ingest_batch(request: HttpRequest):
    if len(request.body) > settings.SIYU_INGEST_MAX_BYTES:
        raise SiyuError("batch_too_large", "请求体过大", "request body is too large", status=413)
    try:
        payload = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise SiyuError("malformed_json", "请求体不是合法的 JSON", "request body is not valid JSON") from None
    if not isinstance(payload, dict) or "events" not in payload:
        raise SiyuError("invalid_batch", "请求体应为 {\"events\": [...]}", 'body must be {"events": [...]}')
    result = events_ingest(workspace=request.auth, events=payload["events"])
    return {
        "accepted": result.count("accepted"),
        "duplicate": result.count("duplicate"),
        "rejected": result.count("rejected"),
        "results": [outcome.as_dict() for outcome in result.outcomes],
    }


@router.get("/event-types", auth=_auth(), summary="事件目录 / Event catalogue")
def event_types(request: HttpRequest):
    from siyu.customers.ingestion import event_catalogue_for

    return [
        {"name": item.name, "label": item.label_zh, "label_en": item.label_en,
         "properties": {name: {"type": kind, "required": required} for name, (kind, required) in
                        item.properties.items()}}
        for item in event_catalogue_for(request.auth).values()
    ]
