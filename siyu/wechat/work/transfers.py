"""Handing a leaving member's customers to a colleague (离职继承: ``resigned/transfer_customer``), and
following each customer's transfer until WeCom reports it done or refused (``resigned/transfer_result``).
Every customer's transfer is a row; a finished one moves the relation and is a ``wecom_transfer`` event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import wecom
from siyu.wechat.work.contacts import event_id, external_identity, ingest, live_customer
from siyu.wechat.work.models import (
    ContactRelation,
    RelationStatus,
    Staff,
    StaffStatus,
    Transfer,
    TransferStatus,
)

BATCH = 100  # external_userid per transfer_customer call


def transfer_request(*, workspace, app: WeChatApp, handover_id: Any, takeover_id: Any, actor: Any = None) -> int:
    """Ask WeCom to transfer every active customer of a member who left to an active member."""
    handover = Staff.objects.filter(app=app, workspace=workspace, pk=handover_id if str(handover_id).isdigit() else 0).first()
    takeover = Staff.objects.filter(app=app, workspace=workspace, pk=takeover_id if str(takeover_id).isdigit() else 0,
                                    status=StaffStatus.ACTIVE).first()
    if handover is None or takeover is None:
        raise SiyuError("transfer_staff_invalid", "请选择离职成员和在职的接替成员", "Choose the member who left and an "
                        "active member to take over", details={"field": "takeover"})
    if handover.status != StaffStatus.LEFT:
        raise SiyuError("transfer_not_resigned", "该成员仍在职：企业微信只允许转接已离职成员的客户",
                        "This member has not left: WeCom only transfers the customers of members who left",
                        status=409)
    if handover.pk == takeover.pk:
        raise SiyuError("transfer_same_staff", "接替成员不能是离职成员本人", "The takeover member must be someone else")
    waiting = set(Transfer.objects.filter(app=app, handover=handover, status=TransferStatus.WAITING)
                  .values_list("external_userid", flat=True))
    relations = [relation for relation in ContactRelation.objects.filter(app=app, staff=handover,
                                                                         status=RelationStatus.ACTIVE)
                 if relation.external_userid not in waiting]
    if not relations:
        raise SiyuError("transfer_nothing", "该成员没有待转接的客户", "This member has no customers left to transfer",
                        status=409)
    requested = 0
    for start in range(0, len(relations), BATCH):
        chunk = relations[start:start + BATCH]
        answer = wecom.post(app, "externalcontact/resigned/transfer_customer", {
            "handover_userid": handover.userid, "takeover_userid": takeover.userid,
            "external_userid": [relation.external_userid for relation in chunk]})
        codes = {str(row.get("external_userid")): int(row.get("errcode") or 0) for row in answer.get("customer") or []}
        with transaction.atomic():
            for relation in chunk:
                errcode = codes.get(relation.external_userid, 0)
                Transfer.objects.create(
                    workspace=workspace, app=app, handover=handover, takeover=takeover,
                    external_userid=relation.external_userid, customer_id=relation.customer_id, errcode=errcode,
                    status=TransferStatus.WAITING if errcode == 0 else TransferStatus.REQUEST_FAILED,
                    requested_by=actor if getattr(actor, "is_authenticated", False) else None,
                    finished_at=None if errcode == 0 else timezone.now())
                requested += errcode == 0
    audit_record(workspace=workspace, actor=actor, action="wecom_transfer.request", target_type="wecom_staff",
                 target_id=handover.pk, takeover=takeover.userid, customers=len(relations), accepted=requested)
    return requested


def transfers_refresh(app: WeChatApp) -> dict[str, int]:
    """Ask WeCom how the waiting transfers went; finished ones move the relation to the takeover member."""
    pairs = set(Transfer.objects.filter(app=app, status=TransferStatus.WAITING)
                .values_list("handover_id", "takeover_id"))
    summary = {"done": 0, "refused": 0}
    for handover_id, takeover_id in pairs:
        handover, takeover = Staff.objects.get(pk=handover_id), Staff.objects.get(pk=takeover_id)
        answer = wecom.post(app, "externalcontact/resigned/transfer_result",
                            {"handover_userid": handover.userid, "takeover_userid": takeover.userid})
        for row in answer.get("customer") or []:
            status = int(row.get("status") or 0)
            if status == TransferStatus.WAITING or status not in TransferStatus.values:
                continue
            transfer = Transfer.objects.filter(app=app, handover=handover, takeover=takeover,
                                               external_userid=str(row.get("external_userid")),
                                               status=TransferStatus.WAITING).first()
            if transfer is None:
                continue
            moment = datetime.fromtimestamp(int(row["takeover_time"]), UTC) if row.get("takeover_time") else timezone.now()
            if status == TransferStatus.DONE:
                _transfer_done(app, transfer, moment)
                summary["done"] += 1
            else:
                Transfer.objects.filter(pk=transfer.pk).update(status=status, finished_at=timezone.now())
                summary["refused"] += 1
    return summary


def _transfer_done(app: WeChatApp, transfer: Transfer, moment: datetime) -> None:
    customer = ingest(app, event_id=event_id(app, "transfer", transfer.handover.userid, transfer.takeover.userid,
                                             transfer.external_userid, int(moment.timestamp())),
                      type="wecom_transfer", at=min(moment, timezone.now()),
                      identities=[external_identity(app, transfer.external_userid)],
                      properties={"from_staff_id": transfer.handover.userid, "staff_id": transfer.takeover.userid})
    with transaction.atomic():
        old = ContactRelation.objects.select_for_update().filter(
            app=app, staff=transfer.handover, external_userid=transfer.external_userid).first()
        if old is not None and old.status == RelationStatus.ACTIVE:
            old.status, old.removed_at, old.removed_by = RelationStatus.TRANSFERRED, moment, "transfer"
            old.save(update_fields=["status", "removed_at", "removed_by"])
        customer = customer or (live_customer(old.customer_id) if old else None)
        if customer is not None:
            ContactRelation.objects.update_or_create(
                app=app, staff=transfer.takeover, external_userid=transfer.external_userid, defaults={
                    "workspace_id": app.workspace_id, "customer": customer, "status": RelationStatus.ACTIVE,
                    "state": old.state if old else "", "contact_way": None, "added_at": moment,
                    "removed_at": None, "removed_by": ""})
        Transfer.objects.filter(pk=transfer.pk).update(status=TransferStatus.DONE, finished_at=moment)
