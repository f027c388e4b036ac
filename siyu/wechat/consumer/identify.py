"""Turn what WeChat told us about a consumer (openid, unionid, phone) into a customer, through events_ingest.

Every login or authorisation is one event with a deterministic id derived from the single-use WeChat
code, so a retried request is a duplicate and changes nothing. ``is_new`` means none of the identities
was known before this event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Event, Identity, IdentityKind
from siyu.wechat.models import WeChatApp


@dataclass(frozen=True)
class Identified:
    customer_id: int
    identity: Identity  # the openid identity in this app: what sessions and subscriptions are filed under
    is_new: bool


def event_id_for(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]
    return f"{prefix}:{digest}"


def wechat_identities(*, app: WeChatApp, openid: str, unionid: str | None) -> list[dict]:
    identities = [{"kind": IdentityKind.OPENID.value, "namespace": app.appid, "value": openid}]
    if unionid:
        identities.append({"kind": IdentityKind.UNIONID.value, "namespace": "", "value": unionid})
    return identities


def consumer_identify(*, app: WeChatApp, event_type: str, event_id: str, openid: str, unionid: str | None = None,
                      extra_identities: list[dict] | None = None, properties: dict | None = None,
                      channel: str = "") -> Identified:
    """Record the event and return who it resolved to. Runs inside the caller's transaction."""
    identities = wechat_identities(app=app, openid=openid, unionid=unionid) + list(extra_identities or [])
    known = Identity.objects.filter(workspace_id=app.workspace_id, kind=IdentityKind.OPENID, namespace=app.appid,
                                    value=openid).exists() or bool(
        unionid and Identity.objects.filter(workspace_id=app.workspace_id, kind=IdentityKind.UNIONID,
                                            namespace="", value=unionid).exists())
    event = {"event_id": event_id, "type": event_type, "occurred_at": timezone.now().isoformat(),
             "identities": identities, "properties": properties or {}}
    if channel:
        event["channel"] = channel
    outcome = events_ingest(workspace=app.workspace, events=[event]).outcomes[0]
    if outcome.status == "rejected":
        raise SiyuError("wechat_identity_rejected", f"微信返回的身份无法识别:{outcome.message}",
                        f"WeChat's answer could not be used: {outcome.message_en}", status=502,
                        details={"reason": outcome.code})
    identity = Identity.objects.select_related("customer").get(
        workspace_id=app.workspace_id, kind=IdentityKind.OPENID, namespace=app.appid, value=openid)
    if not known:
        # Two first logins at once both found nothing above; the one resolved second waited for the first
        # to commit and sees its event now, so exactly one of them reports a new customer.
        identity_ids = Identity.objects.filter(customer_id=identity.customer_id).values_list("pk", flat=True)
        known = Event.objects.filter(workspace_id=app.workspace_id, identity_id__in=list(identity_ids)).exclude(
            event_id=event_id).exists()
    return Identified(customer_id=identity.customer_id, identity=identity, is_new=not known)
