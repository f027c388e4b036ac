"""External contacts (SPEC W3): what Siyu does when WeCom reports a customer added, edited or deleted,
a member leaving, or a transfer failing. Each report becomes a customer event through ``events_ingest``
with an id derived from the callback itself, so WeCom's retries are duplicates and change nothing.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.customers import tagging
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import Customer, CustomerStatus, Identity, IdentityKind
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import wecom
from siyu.wechat.work.models import (
    ContactRelation,
    ContactWay,
    RelationStatus,
    Staff,
    StaffStatus,
    Transfer,
    TransferStatus,
)

logger = logging.getLogger(__name__)


def event_id(app: WeChatApp, *parts: Any) -> str:
    """A stable event id for one WeCom report (same report, same id)."""
    digest = hashlib.sha256("|".join(str(part) for part in (app.appid, *parts)).encode()).hexdigest()
    return "wecom_" + digest[:40]


def reported_at(data: dict[str, Any]) -> datetime:
    raw = str(data.get("CreateTime") or "")
    if raw.isdigit():
        moment = datetime.fromtimestamp(int(raw), UTC)
        return min(moment, timezone.now())
    return timezone.now()


def live_customer(customer_id: int) -> Customer:
    customer = Customer.objects.get(pk=customer_id)
    seen = set()
    while customer.status == CustomerStatus.MERGED and customer.merged_into_id and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def external_identity(app: WeChatApp, external_userid: str) -> dict[str, str]:
    return {"kind": IdentityKind.EXTERNAL_USERID, "namespace": app.appid, "value": external_userid}


def customer_of(app: WeChatApp, external_userid: str) -> Customer | None:
    identity = Identity.objects.filter(workspace_id=app.workspace_id, kind=IdentityKind.EXTERNAL_USERID,
                                       namespace=app.appid, value=external_userid).first()
    return live_customer(identity.customer_id) if identity else None


def ingest(app: WeChatApp, *, event_id: str, type: str, at: datetime, identities: list[dict[str, str]],
           channel: str = "", properties: dict[str, Any] | None = None) -> Customer | None:
    """Record one customer event; returns the customer its first identity now belongs to."""
    result = events_ingest(workspace=app.workspace, events=[{
        "event_id": event_id, "type": type, "occurred_at": at.isoformat(), "identities": identities,
        "channel": channel, "properties": properties or {}}])
    outcome = result.outcomes[0]
    if outcome.status == "rejected":
        logger.warning("WeCom event %s rejected: %s %s", type, outcome.code, outcome.message_en)
    first = identities[0]
    identity = Identity.objects.filter(workspace_id=app.workspace_id, kind=first["kind"],
                                       namespace=first.get("namespace", ""), value=first["value"]).first()
    return live_customer(identity.customer_id) if identity else None


def staff_ensure(app: WeChatApp, userid: str, name: str = "") -> Staff:
    staff = Staff.objects.filter(app=app, userid=userid).first()
    if staff is None:
        try:
            with transaction.atomic():
                staff = Staff.objects.create(workspace_id=app.workspace_id, app=app, userid=userid, name=name)
        except IntegrityError:
            staff = Staff.objects.get(app=app, userid=userid)
    elif name and staff.name != name:
        staff.name = name
        staff.save(update_fields=["name"])
    return staff


def contact_details(app: WeChatApp, external_userid: str) -> dict[str, Any] | None:
    """``externalcontact/get`` (name, unionid, each member's tags); None when WeCom cannot answer now."""
    try:
        return wecom.call(app, "externalcontact/get", wecom.client(app).external_contact.get, external_userid)
    except (WeChatApiError, wecom.RateLimited) as error:
        logger.info("externalcontact/get failed for %s: %s", external_userid, error)
        return None


def _identities(app: WeChatApp, external_userid: str, details: dict[str, Any] | None) -> list[dict[str, str]]:
    identities = [external_identity(app, external_userid)]
    unionid = ((details or {}).get("external_contact") or {}).get("unionid")
    if unionid:
        identities.append({"kind": IdentityKind.UNIONID, "namespace": "", "value": str(unionid)})
    return identities


def contact_added(app: WeChatApp, data: dict[str, Any], *, details: dict[str, Any] | None) -> ContactRelation | None:
    """add_external_contact / add_half_external_contact: customer, identities, relation, channel, tags."""
    userid, external_userid = str(data.get("UserID") or ""), str(data.get("ExternalUserID") or "")
    if not userid or not external_userid:
        return None
    state = str(data.get("State") or "")[:30]
    welcome_code = str(data.get("WelcomeCode") or "")[:128]
    at = reported_at(data)
    way = ContactWay.objects.filter(app=app, state=state).first() if state else None
    customer = ingest(app, event_id=event_id(app, data.get("ChangeType"), userid, external_userid,
                                             data.get("CreateTime")),
                      type="wecom_add", at=at, identities=_identities(app, external_userid, details),
                      channel=way.channel if way else "",
                      properties={"staff_id": userid, "state": state})
    if customer is None:
        return None
    staff = staff_ensure(app, userid)
    follow = next((row for row in (details or {}).get("follow_user") or [] if row.get("userid") == userid), {})
    remark = str(follow.get("remark") or "")[:64]  # the member's own note on the customer
    with transaction.atomic():
        relation = ContactRelation.objects.select_for_update().filter(
            app=app, staff=staff, external_userid=external_userid).first()
        if relation is None:
            relation = ContactRelation.objects.create(
                workspace_id=app.workspace_id, app=app, staff=staff, customer=customer,
                external_userid=external_userid, state=state, contact_way=way, added_at=at,
                welcome_code=welcome_code, remark=remark)
            newly = True
        else:
            newly = relation.status != RelationStatus.ACTIVE
            if newly:
                relation.status, relation.removed_at, relation.removed_by = RelationStatus.ACTIVE, None, ""
                relation.added_at, relation.state, relation.contact_way = at, state, way
            if welcome_code and relation.welcome_code != welcome_code:
                relation.welcome_code, relation.welcomed_at = welcome_code, None
            relation.customer, relation.remark = customer, remark or relation.remark
            relation.save()
        if way is not None and newly:
            for tag in way.tags.all():
                tagging.customer_tag_add(workspace=app.workspace, customer_id=customer.pk, tag_id=tag.pk,
                                         source="auto")
    return relation


def welcome_send(relation: ContactRelation) -> bool:
    """Send the contact way's welcome message with the callback's WelcomeCode (usable once, for 20 s)."""
    way = relation.contact_way
    if way is None or not way.welcome_text or not relation.welcome_code or relation.welcomed_at is not None:
        return False
    app = relation.app
    payload = {"welcome_code": relation.welcome_code, "text": {"content": way.welcome_text}}
    try:
        wecom.call(app, "externalcontact/send_welcome_msg", wecom.client(app).external_contact.send_welcome_msg,
                   payload)
    except (WeChatApiError, wecom.RateLimited) as error:
        logger.info("welcome message not sent to %s: %s", relation.external_userid, error)
        return False
    ContactRelation.objects.filter(pk=relation.pk, welcomed_at=None).update(welcomed_at=timezone.now())
    return True


def contact_removed(app: WeChatApp, data: dict[str, Any]) -> ContactRelation | None:
    """del_external_contact (the member deleted the customer) / del_follow_user (the customer deleted
    the member). A deletion caused by a transfer (Source=DELETE_BY_TRANSFER) is recorded as a transfer."""
    userid, external_userid = str(data.get("UserID") or ""), str(data.get("ExternalUserID") or "")
    change = str(data.get("ChangeType") or "")
    relation = ContactRelation.objects.filter(app=app, staff__userid=userid, external_userid=external_userid).first()
    by_transfer = data.get("Source") == "DELETE_BY_TRANSFER"
    by = "transfer" if by_transfer else ("staff" if change == "del_external_contact" else "customer")
    at = reported_at(data)
    if not by_transfer:
        ingest(app, event_id=event_id(app, change, userid, external_userid, data.get("CreateTime")),
               type="wecom_delete", at=at, identities=[external_identity(app, external_userid)],
               properties={"staff_id": userid})
    if relation is not None and relation.status == RelationStatus.ACTIVE:
        relation.status = RelationStatus.TRANSFERRED if by_transfer else RelationStatus.REMOVED
        relation.removed_at, relation.removed_by = at, by
        relation.save(update_fields=["status", "removed_at", "removed_by"])
    return relation


def contact_edited(app: WeChatApp, data: dict[str, Any], *, details: dict[str, Any] | None
                   ) -> ContactRelation | None:
    """edit_external_contact: recorded as an event; returns the relation whose marks may have changed."""
    userid, external_userid = str(data.get("UserID") or ""), str(data.get("ExternalUserID") or "")
    ingest(app, event_id=event_id(app, "edit", userid, external_userid, data.get("CreateTime")), type="wecom_edit",
           at=reported_at(data), identities=_identities(app, external_userid, details),
           properties={"staff_id": userid})
    return ContactRelation.objects.filter(app=app, staff__userid=userid, external_userid=external_userid,
                                          status=RelationStatus.ACTIVE).select_related("app", "staff").first()


def relation_tags_refresh(relation: ContactRelation, details: dict[str, Any] | None = None) -> dict[str, int]:
    """The member's marks on the customer, read from WeCom, come over to Siyu's tags."""
    from siyu.wechat.work.tag_sync import relation_tags_pull

    if details is None:
        details = wecom.call(relation.app, "externalcontact/get", wecom.client(relation.app).external_contact.get,
                             relation.external_userid)
    follow = next((row for row in details.get("follow_user") or [] if row.get("userid") == relation.staff.userid),
                  None)
    if follow is None:
        return {"added": 0, "removed": 0}
    return relation_tags_pull(relation, [str(tag.get("tag_id")) for tag in follow.get("tags") or []])


def transfer_failed(app: WeChatApp, data: dict[str, Any]) -> int:
    reason = str(data.get("FailReason") or "")
    status = TransferStatus.TAKEOVER_FULL if reason == "customer_limit_exceed" else TransferStatus.REFUSED
    return Transfer.objects.filter(app=app, takeover__userid=str(data.get("UserID") or ""),
                                   external_userid=str(data.get("ExternalUserID") or ""),
                                   status=TransferStatus.WAITING).update(status=status, finished_at=timezone.now())


def staff_changed(app: WeChatApp, data: dict[str, Any]) -> Staff | None:
    """change_contact (通讯录): a member created, renamed or deleted (left the corp)."""
    userid = str(data.get("UserID") or "")
    if not userid:
        return None
    change = str(data.get("ChangeType") or "")
    staff = staff_ensure(app, userid, str(data.get("Name") or ""))
    if change == "delete_user" and staff.status != StaffStatus.LEFT:
        staff.status, staff.left_at = StaffStatus.LEFT, reported_at(data)
        staff.save(update_fields=["status", "left_at"])
    return staff


def customers_realign(*, workspace_id: int, customer_ids: list[int]) -> int:
    """After a merge or un-merge: rows naming one of these customers follow their external_userid's
    identity to the customer it belongs to now (relations, group members, mass-send recipients, whose
    monthly count must follow the person)."""
    from siyu.wechat.work.models import GroupMember, MassSendRecipient

    owners = {(row.namespace, row.value): row.customer_id for row in Identity.objects.filter(
        workspace_id=workspace_id, kind=IdentityKind.EXTERNAL_USERID, customer_id__in=customer_ids)}
    merged = Customer.objects.filter(pk__in=customer_ids, status=CustomerStatus.MERGED).values_list("pk", flat=True)
    moved = 0
    rows = [(ContactRelation, "app__appid", "external_userid"), (GroupMember, "group__app__appid", "member_id"),
            (MassSendRecipient, "mass_send__app__appid", "external_userid")]
    for model, appid_path, value_field in rows:
        candidates = model.objects.filter(customer_id__in=customer_ids).values_list("pk", appid_path, value_field,
                                                                                   "customer_id")
        for pk, appid, value, current in candidates:
            target = owners.get((appid, value))
            if target is None and current in merged:
                target = live_customer(current).pk
            if target is not None and target != current:
                moved += model.objects.filter(pk=pk).update(customer_id=target)
    return moved


def staff_sync(app: WeChatApp) -> int:
    """Bring the member list over from WeCom (``user/list``); members gone from it are marked left."""
    rows = wecom.call(app, "user/list", wecom.client(app).user.list, 1, fetch_child=True)
    seen = set()
    for row in rows or []:
        userid = str(row.get("userid") or "")
        if not userid:
            continue
        seen.add(userid)
        staff = staff_ensure(app, userid, str(row.get("name") or ""))
        if staff.status != StaffStatus.ACTIVE and row.get("status", 1) == 1:
            Staff.objects.filter(pk=staff.pk).update(status=StaffStatus.ACTIVE, left_at=None)
    Staff.objects.filter(app=app, status=StaffStatus.ACTIVE).exclude(userid__in=seen).update(
        status=StaffStatus.LEFT, left_at=timezone.now())
    return len(seen)
