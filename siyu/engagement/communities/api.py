"""The group-message bridge: ``POST /api/v1/communities/messages``.

WeCom's group message content is only available through 会话内容存档, a native SDK that decrypts the
archive; a small program the brand runs next to that SDK posts the messages here as JSON. It signs
with the bridge key made in the console (HMAC-SHA256) or sends a workspace API key:

    X-Siyu-Bridge-Key: cb_…            X-Siyu-Timestamp: <unix seconds, within 5 minutes>
    X-Siyu-Signature: hex(HMAC-SHA256(secret, "<timestamp>.<raw body>"))
or  Authorization: Bearer sk_…

Body: {"messages": [{"msg_id", "chat_id" | "community_id", "sender": {"id", "type": "external"|"staff"},
"msg_type", "content", "sent_at" (unix seconds or ISO 8601 with zone), "reply_to"?, "qr"?}]} — at most
500. Each message is stored once by msg_id (a retry answers "duplicate" and acts on nothing again);
the answer lists accepted / duplicate / rejected (with a code) per message.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
from django.http import HttpRequest
from ninja import Router

from siyu.core.errors import SiyuError
from siyu.core.services import api_key_authenticate
from siyu.engagement.communities.messages import messages_record
from siyu.engagement.communities.services import bridge_secret

router = Router(tags=["communities"])
MAX_SKEW_SECONDS = 300
MAX_BODY = 4 * 1024 * 1024


def _unauthorized(zh: str, en: str) -> SiyuError:
    return SiyuError("unauthorized", zh, en, status=401)


def bridge_workspace(request: HttpRequest):
    """The workspace the request is signed for, or a 401."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        workspace = api_key_authenticate(authorization[7:].strip())
        if workspace is None:
            raise _unauthorized("API 密钥无效", "Invalid API key")
        return workspace
    key_id = request.headers.get("X-Siyu-Bridge-Key", "")
    stamp = request.headers.get("X-Siyu-Timestamp", "")
    signature = request.headers.get("X-Siyu-Signature", "")
    if not key_id or not stamp or not signature:
        raise _unauthorized("缺少签名或 API 密钥", "Missing signature or API key")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_SKEW_SECONDS:
        raise _unauthorized("时间戳无效或已过期", "Timestamp invalid or expired")
    found = bridge_secret(key_id=key_id)
    if found is None:
        raise _unauthorized("桥接密钥无效", "Unknown bridge key")
    workspace, secret = found
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise _unauthorized("签名不正确", "Signature mismatch")
    return workspace


@router.post("/communities/messages", auth=None, summary="Group messages from the 会话内容存档 bridge")
def bridge_messages(request: HttpRequest):
    if len(request.body) > MAX_BODY:
        raise SiyuError("body_too_large", "请求体过大", "Request body too large", status=413)
    workspace = bridge_workspace(request)
    try:
        body = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError as error:
        raise SiyuError("invalid_json", "请求体不是合法的 JSON", "The body is not valid JSON", status=400) from error
    if not isinstance(body, dict):
        raise SiyuError("invalid_batch", "请求体必须是对象 {\"messages\": [...]}", "The body must be {\"messages\": [...]}",
                        status=400)
    outcomes = messages_record(workspace=workspace, messages=body.get("messages"))
    return {"accepted": sum(1 for o in outcomes if o.status == "accepted"),
            "duplicate": sum(1 for o in outcomes if o.status == "duplicate"),
            "rejected": sum(1 for o in outcomes if o.status == "rejected"),
            "results": [outcome.as_dict() for outcome in outcomes]}
