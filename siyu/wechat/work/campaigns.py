"""企业群发 and 客户朋友圈 tasks (SPEC W3), within WeCom's rules (SPEC W6).

WeCom's 群发 only creates a task; each staff member confirms it in their client before anything is sent.
Each customer receives at most as many mass messages a month as the month has days: Siyu counts what
it has asked for this month (pending and delivered) and refuses — saying why — a send that would go
beyond it, unless the operator chooses to leave those customers out. Bulk-evading the limit is exactly
what gets a corp banned, so there is no option to go around it.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.core.timeutil import SHANGHAI
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import wecom
from siyu.wechat.work.models import (
    ContactRelation,
    MassSend,
    MassSendRecipient,
    MassSendStaff,
    MassSendStatus,
    MomentTask,
    RecipientStatus,
    RelationStatus,
    Staff,
    StaffStatus,
)

MAX_PER_TASK = 10_000  # external_userid per add_msg_template
MAX_TEXT = 4000
COUNTED = (RecipientStatus.PENDING, RecipientStatus.SENT)


def month_key(now=None) -> str:
    return (now or timezone.now()).astimezone(SHANGHAI).strftime("%Y-%m")


def monthly_limit(now=None) -> int:
    moment = (now or timezone.now()).astimezone(SHANGHAI)
    return calendar.monthrange(moment.year, moment.month)[1]


def received_this_month(*, workspace, customer_ids, now=None) -> dict[int, int]:
    rows = (MassSendRecipient.objects.filter(workspace=workspace, customer_id__in=customer_ids, month=month_key(now),
                                             status__in=COUNTED)
            .values("customer_id").annotate(n=Count("id")))
    return {row["customer_id"]: row["n"] for row in rows}


def _text(value: Any) -> str:
    text = str(value or "").strip()
    if not text:
        raise SiyuError("mass_send_text_required", "请填写群发内容", "Enter the message text", details={"field": "text"})
    if len(text.encode()) > MAX_TEXT:
        raise SiyuError("mass_send_text_too_long", "群发内容过长（最多 4000 字节）", "Message too long (4000 bytes at most)",
                        details={"field": "text"})
    return text


def mass_send_create(*, workspace, app: WeChatApp, text: Any, customer_ids: Any, skip_over_limit: bool = False,
                     actor: Any = None, now=None) -> MassSend:
    """Ask WeCom for a mass-send task to these customers (through their staff members)."""
    text = _text(text)
    ids = sorted({int(pk) for pk in customer_ids or [] if str(pk).isdigit()})
    if not ids:
        raise SiyuError("mass_send_no_customers", "没有选择客户", "No customers chosen", details={"field": "customers"})
    relations: dict[int, ContactRelation] = {}
    for relation in (ContactRelation.objects.filter(app=app, status=RelationStatus.ACTIVE, customer_id__in=ids,
                                                    staff__status=StaffStatus.ACTIVE)
                     .select_related("staff").order_by("added_at")):
        relations.setdefault(relation.customer_id, relation)
    if not relations:
        raise SiyuError("mass_send_no_contacts", "所选客户都不是企业微信好友，无法群发",
                        "None of these customers is a WeCom contact", details={"field": "customers"})
    if len(relations) > MAX_PER_TASK:
        raise SiyuError("mass_send_too_many", f"企业微信每个群发任务最多 {MAX_PER_TASK} 位客户，请缩小范围或分批",
                        f"WeCom allows at most {MAX_PER_TASK} customers per mass-send task; narrow the selection",
                        details={"requested": len(relations), "max": MAX_PER_TASK})
    limit = monthly_limit(now)
    counts = received_this_month(workspace=workspace, customer_ids=list(relations), now=now)
    over = [customer_id for customer_id in relations if counts.get(customer_id, 0) >= limit]
    if over and not skip_over_limit:
        raise SiyuError(
            "mass_send_monthly_limit",
            f"有 {len(over)} 位客户本月已收到 {limit} 条群发，达到企业微信的上限（每位客户每月最多收到与当月天数相同的群发条数）。"
            "超限发送会导致成员或企业被封禁，思域不会这样做；可以选择跳过这些客户后再发送。",
            f"{len(over)} customers already received {limit} mass messages this month, WeCom's limit (as many per "
            "month as the month has days). Sending more gets staff or the corp banned, so Siyu will not; you may "
            "leave those customers out.", status=409,
            details={"over_limit": len(over), "limit": limit, "requested": len(relations)})
    targets = {customer_id: relation for customer_id, relation in relations.items() if customer_id not in over}
    if not targets:
        raise SiyuError("mass_send_monthly_limit", f"所选客户本月都已收到 {limit} 条群发，达到企业微信的上限",
                        f"Every chosen customer already received {limit} mass messages this month (WeCom's limit)",
                        status=409, details={"over_limit": len(over), "limit": limit})
    month = month_key(now)
    with transaction.atomic():
        mass = MassSend.objects.create(workspace=workspace, app=app, text=text, skipped_over_limit=len(over),
                                       created_by=actor if getattr(actor, "is_authenticated", False) else None)
        MassSendRecipient.objects.bulk_create([
            MassSendRecipient(workspace=workspace, mass_send=mass, customer_id=customer_id, month=month,
                              external_userid=relation.external_userid, userid=relation.staff.userid)
            for customer_id, relation in targets.items()])
        audit_record(workspace=workspace, actor=actor, action="wecom_mass_send.create", target_type="wecom_mass_send",
                     target_id=mass.pk, customers=len(targets), skipped_over_limit=len(over))
    mass_send_submit(mass)
    return mass


def mass_send_submit(mass: MassSend) -> MassSend:
    """Create the task in WeCom (``add_msg_template``). A rate limit leaves it queued (RateLimited is
    raised for the caller's retry); any other refusal marks it failed, releasing the monthly count."""
    if mass.status != MassSendStatus.QUEUED:
        return mass
    # Claim this attempt: a back-off retry and the periodic sweep never submit the same send twice.
    now = timezone.now()
    if not MassSend.objects.filter(pk=mass.pk, status=MassSendStatus.QUEUED, checked_at=mass.checked_at).update(
            checked_at=now):
        return mass
    mass.checked_at = now
    recipients = list(mass.recipients.values_list("external_userid", flat=True))
    body = {"chat_type": "single", "external_userid": recipients, "text": {"content": mass.text}}
    try:
        answer = wecom.call(mass.app, "externalcontact/add_msg_template",
                            wecom.client(mass.app).external_contact.add_msg_template, body)
    except wecom.RateLimited:
        mass.error = "接口限流，排队重试"
        mass.save(update_fields=["error"])
        raise
    except WeChatApiError as error:
        with transaction.atomic():
            mass.status, mass.error = MassSendStatus.FAILED, f"{error.errcode}: {error.errmsg}"[:255]
            mass.save(update_fields=["status", "error"])
            mass.recipients.update(status=RecipientStatus.NOT_FRIEND)
        return mass
    with transaction.atomic():
        mass.msgid, mass.status, mass.error = str(answer.get("msgid") or ""), MassSendStatus.CREATED, ""
        mass.save(update_fields=["msgid", "status", "error"])
        failed = [str(item) for item in answer.get("fail_list") or []]
        if failed:
            mass.recipients.filter(external_userid__in=failed).update(status=RecipientStatus.NOT_FRIEND)
        MassSendStaff.objects.bulk_create([MassSendStaff(mass_send=mass, userid=userid) for userid in sorted(
            set(mass.recipients.exclude(status=RecipientStatus.NOT_FRIEND).values_list("userid", flat=True)))],
            ignore_conflicts=True)
    return mass


def mass_send_refresh(mass: MassSend) -> dict[str, int]:
    """Staff confirmations (``get_groupmsg_task``) and delivery per customer (``get_groupmsg_send_result``)."""
    if mass.status not in (MassSendStatus.CREATED,) or not mass.msgid:
        return {}
    tasks = wecom.post(mass.app, "externalcontact/get_groupmsg_task", {"msgid": mass.msgid, "limit": 1000})
    statuses: dict[str, dict[str, Any]] = {}
    for task in tasks.get("task_list") or []:
        if task.get("status") == 2:
            statuses[str(task["userid"])] = task
    results: dict[str, dict[str, Any]] = {}
    known = set(mass.staff_tasks.filter(sent=True).values_list("userid", flat=True))
    for userid in statuses:
        answer = wecom.post(mass.app, "externalcontact/get_groupmsg_send_result",
                            {"msgid": mass.msgid, "userid": userid, "limit": 1000})
        for row in answer.get("send_list") or []:
            results[str(row.get("external_userid"))] = row
    now = timezone.now()
    summary: dict[str, int] = defaultdict(int)
    with transaction.atomic():
        for userid, task in statuses.items():
            if userid not in known:
                MassSendStaff.objects.filter(mass_send=mass, userid=userid).update(
                    sent=True, sent_at=datetime.fromtimestamp(int(task.get("send_time") or 0), UTC)
                    if task.get("send_time") else now)
        for recipient in mass.recipients.filter(external_userid__in=list(results), status=RecipientStatus.PENDING):
            status = int(results[recipient.external_userid].get("status") or 0)
            if status in RecipientStatus.values and status != recipient.status:
                recipient.status = status
                recipient.sent_at = now if status == RecipientStatus.SENT else None
                recipient.save(update_fields=["status", "sent_at"])
                summary[RecipientStatus(status).name.lower()] += 1
        mass.checked_at = now
        if not mass.staff_tasks.filter(sent=False).exists():
            mass.status = MassSendStatus.FINISHED
        mass.save(update_fields=["checked_at", "status"])
    return dict(summary)


def mass_send_customers(*, app: WeChatApp, tag_id: Any = None) -> list[int]:
    """The live customers the console's "send to" choice names: every WeCom contact, or one tag's."""
    queryset = ContactRelation.objects.filter(app=app, status=RelationStatus.ACTIVE)
    ids = set(queryset.values_list("customer_id", flat=True))  # kept live by customers_realign
    if tag_id not in (None, ""):
        from siyu.customers.models import CustomerTag

        tagged = set(CustomerTag.objects.filter(tag_id=int(tag_id) if str(tag_id).isdigit() else 0,
                                                customer_id__in=ids).values_list("customer_id", flat=True))
        ids &= tagged
    return sorted(ids)


# --- moments ------------------------------------------------------------------------------------------

def moment_create(*, workspace, app: WeChatApp, text: Any, staff_ids: Any = (), actor: Any = None) -> MomentTask:
    text = _text(text)
    ids = [int(pk) for pk in staff_ids or [] if str(pk).isdigit()]
    senders = list(Staff.objects.filter(app=app, pk__in=ids, status=StaffStatus.ACTIVE).values_list("userid", flat=True))
    if ids and len(senders) != len(set(ids)):
        raise SiyuError("moment_staff_invalid", "成员不存在或已离职", "A staff member does not exist or has left",
                        details={"field": "staff"})
    with transaction.atomic():
        task = MomentTask.objects.create(workspace=workspace, app=app, text=text, senders=senders,
                                         created_by=actor if getattr(actor, "is_authenticated", False) else None)
        audit_record(workspace=workspace, actor=actor, action="wecom_moment.create", target_type="wecom_moment",
                     target_id=task.pk, senders=senders)
    moment_submit(task)
    return task


def moment_submit(task: MomentTask) -> MomentTask:
    if task.status != "queued":
        return task
    body: dict[str, Any] = {"text": {"content": task.text}}
    if task.senders:
        body["visible_range"] = {"sender_list": {"user_list": list(task.senders)}}
    try:
        answer = wecom.post(task.app, "externalcontact/add_moment_task", body)
    except WeChatApiError as error:
        task.status, task.error = "failed", f"{error.errcode}: {error.errmsg}"[:255]
        task.save(update_fields=["status", "error"])
        return task
    task.jobid, task.status = str(answer.get("jobid") or ""), "running"
    task.save(update_fields=["jobid", "status"])
    return task


def moment_refresh(task: MomentTask) -> MomentTask:
    if task.status != "running" or not task.jobid:
        return task
    client = wecom.client(task.app)
    answer = wecom.call(task.app, "externalcontact/get_moment_task_result", client.get,
                        "externalcontact/get_moment_task_result", params={"jobid": task.jobid})
    if answer.get("status") == 3:
        result = answer.get("result") or {}
        if result.get("errcode", 0) == 0:
            task.status, task.moment_id = "done", str(result.get("moment_id") or "")
            task.invalid_senders = list((result.get("invalid_sender_list") or {}).get("user_list") or [])
        else:
            task.status, task.error = "failed", f"{result.get('errcode')}: {result.get('errmsg')}"[:255]
        task.save(update_fields=["status", "moment_id", "invalid_senders", "error"])
    return task
