"""Customer-data HTTP endpoints: batch event ingestion for clients (API key)."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema

from siyu.core.errors import SiyuError
from siyu.customers.ingestion import events_ingest

router = Router(tags=["events"])


class EventResult(Schema):
    index: int
    event_id: str | None
    status: str
    code: str | None = None
    message: str | None = None
    message_en: str | None = None
    field: str | None = None
    customer_id: int | None = None


class BatchResponse(Schema):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class ErrorResponse(Schema):
    code: str
    message: str
    message_en: str
    details: dict | None = None


def _too_large() -> SiyuError:
    limit = settings.SIYU_INGEST_MAX_BYTES
    return SiyuError("batch_too_large", f"请求体过大(最多 {limit} 字节)", f"request body is too large ({limit} bytes at most)",
                     status=413, details={"max_bytes": limit})


def _auth():
    from siyu.api import ApiKeyAuth

    return ApiKeyAuth()


@router.post(
    "/events/batch",
    auth=_auth(),
    summary="批量上报事件 / Ingest a batch of events",
    description=(
        "每个事件按事件目录校验,按 event_id 去重(同一工作区内),解析身份到客户,逐条返回 accepted / duplicate / "
        "rejected(附 code 与原因)。重放同一批次是幂等的。\n\n"
        "Each event is validated against the catalogue, deduplicated by event_id within the workspace, resolved to "
        "one customer, and answered per event. Replaying a batch is idempotent."
    ),
    response={200: BatchResponse, 400: ErrorResponse, 401: ErrorResponse, 413: ErrorResponse},
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
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.SIYU_INGEST_MAX_BYTES:
        raise _too_large()
    try:
        body = request.body
    except RequestDataTooBig:
        raise _too_large() from None
    if len(body) > settings.SIYU_INGEST_MAX_BYTES:
        raise _too_large()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SiyuError("malformed_json", "请求体不是合法的 JSON", "request body is not valid JSON") from None
    if not isinstance(payload, dict) or "events" not in payload:
        raise SiyuError("invalid_batch", "请求体应为 {\"events\": [...]}", 'body must be {"events": [...]}')
    result = events_ingest(workspace=request.auth, events=payload["events"])
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for outcome in result.outcomes:
        counts[outcome.status] += 1
    # Serialised with orjson straight away: a 1000-event answer is the hot path, not worth a schema pass.
    return HttpResponse(orjson.dumps({**counts, "results": [outcome.as_dict() for outcome in result.outcomes]}),
                        content_type="application/json")


@router.get("/event-types", auth=_auth(), summary="事件目录 / Event catalogue")
def event_types(request: HttpRequest):
    from siyu.customers.ingestion import event_catalogue_for

    return [
        {"name": item.name, "label": item.label_zh, "label_en": item.label_en,
         "properties": {name: {"type": kind, "required": required} for name, (kind, required) in
                        item.properties.items()}}
        for item in event_catalogue_for(request.auth).values()
    ]
