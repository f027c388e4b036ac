"""Background work of the 企业微信 area: thin wrappers over its services.

A task WeCom turns away for frequency (45009/45011/45033, or Siyu's own limiter) or that finds WeCom
unavailable schedules itself again with back-off (1, 2, 4 … minutes, at most an hour, 8 attempts);
the ApiIssue the adapter recorded shows it in the console meanwhile. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.domain_events import CUSTOMERS_CHANGED, subscribe
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.work import campaigns, contact_ways, groups, tag_sync, transfers, wecom
from siyu.wechat.work.contacts import customers_realign, relation_tags_refresh, staff_sync
from siyu.wechat.work.models import ContactRelation, ContactWay, MassSend, MassSendStatus, MomentTask

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


def _again(task, args: tuple, attempt: int, error: Exception) -> None:
    if isinstance(error, WeChatApiError) and not isinstance(error, wecom.RateLimited) and error.errcode is not None:
        logger.warning("%s%r refused by WeCom: %s", task.name, args, error)  # not transient: the issue shows it
        return
    if attempt + 1 >= MAX_ATTEMPTS:
        logger.error("%s%r gave up after %s attempts: %s", task.name, args, attempt + 1, error)
        return
    delay = wecom.backoff_seconds(attempt, getattr(error, "retry_after", None))
    logger.info("%s%r will retry in %.0fs: %s", task.name, args, delay, error)
    task.schedule(args=(*args, attempt + 1), delay=delay)


def _work_apps():
    return WeChatApp.objects.filter(kind=AppKind.WORK, is_active=True).select_related("workspace")


@db_task()
def relation_tags_push_task(relation_id: int, attempt: int = 0) -> int:
    relation = ContactRelation.objects.select_related("app", "staff").filter(pk=relation_id).first()
    if relation is None:
        return 0
    try:
        return tag_sync.relations_tags_push(relation.app, [relation])
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(relation_tags_push_task, (relation_id,), attempt, error)
        return 0


@db_task()
def contact_way_caps_task(contact_way_id: int, attempt: int = 0) -> list[str]:
    way = ContactWay.objects.select_related("app", "fallback").filter(pk=contact_way_id).first()
    if way is None:
        return []
    try:
        contact_ways.caps_check(way)
        return contact_ways.rotation_sync(way)
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(contact_way_caps_task, (contact_way_id,), attempt, error)
        return []


@db_task()
def contact_way_rotation_task(contact_way_id: int, attempt: int = 0) -> list[str]:
    way = ContactWay.objects.select_related("app", "fallback").filter(pk=contact_way_id).first()
    if way is None:
        return []
    try:
        return contact_ways.rotation_sync(way)
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(contact_way_rotation_task, (contact_way_id,), attempt, error)
        return []


@db_task()
def corp_tags_pull_task(app_id: int, attempt: int = 0) -> dict:
    app = _work_apps().filter(pk=app_id).first()
    if app is None:
        return {}
    try:
        return tag_sync.corp_tags_pull(app)
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(corp_tags_pull_task, (app_id,), attempt, error)
        return {}


@db_task()
def group_sync_task(app_id: int, chat_id: str, attempt: int = 0) -> bool:
    app = _work_apps().filter(pk=app_id).first()
    if app is None:
        return False
    try:
        return groups.group_sync(app, chat_id) is not None
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(group_sync_task, (app_id, chat_id), attempt, error)
        return False


@db_task()
def relation_tags_pull_task(relation_id: int, attempt: int = 0) -> dict:
    relation = ContactRelation.objects.select_related("app", "staff").filter(pk=relation_id).first()
    if relation is None:
        return {}
    try:
        return relation_tags_refresh(relation)
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(relation_tags_pull_task, (relation_id,), attempt, error)
        return {}


@db_task()
def mass_send_submit_task(mass_send_id: int, attempt: int = 0) -> str:
    mass = MassSend.objects.select_related("app").filter(pk=mass_send_id).first()
    if mass is None:
        return ""
    try:
        return campaigns.mass_send_submit(mass).status
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(mass_send_submit_task, (mass_send_id,), attempt, error)
        return mass.status


@db_task()
def app_sync_task(app_id: int, attempt: int = 0) -> dict:
    """Members, tag library and customer groups of one corp (the console's 同步 button)."""
    app = _work_apps().filter(pk=app_id).first()
    if app is None:
        return {}
    try:
        return {"staff": staff_sync(app), "tags": tag_sync.corp_tags_pull(app), "groups": groups.groups_sync(app)}
    except (wecom.RateLimited, WeChatApiError) as error:
        _again(app_sync_task, (app_id,), attempt, error)
        return {}


@db_periodic_task(crontab(minute="*/5"))
def work_refresh_periodic() -> None:
    """Mass-send confirmations and delivery, moments results, transfers, and Siyu's tag changes."""
    for app in _work_apps():
        try:
            for mass in MassSend.objects.filter(app=app, status=MassSendStatus.CREATED).order_by("pk")[:50]:
                campaigns.mass_send_refresh(mass)
            # Queued sends whose back-off retry was lost (a worker restart): tried again after an hour.
            stale = timezone.now() - timedelta(minutes=65)
            for mass in MassSend.objects.filter(app=app, status=MassSendStatus.QUEUED, checked_at__lt=stale) \
                    .order_by("pk")[:20]:
                mass_send_submit_task(mass.pk)
            for moment in MomentTask.objects.filter(app=app, status="running").order_by("pk")[:50]:
                campaigns.moment_refresh(moment)
            transfers.transfers_refresh(app)
            tag_sync.app_tags_push(app)
        except (wecom.RateLimited, WeChatApiError) as error:
            logger.info("WeCom refresh of %s postponed: %s", app.appid, error)


# 16:01 UTC is 00:01 in Asia/Shanghai: members paused at yesterday's cap rotate again.
@db_periodic_task(crontab(hour="16", minute="1"))
def contact_way_rotations_daily() -> int:
    changed = contact_ways.rotations_restore()
    for way_id in changed:
        contact_way_rotation_task(way_id)
    return len(changed)


def _on_customers_changed(*, workspace_id: int, customer_ids: list[int]) -> None:
    # Cheap and in-request: only rows that name the merged or un-merged customers are touched.
    customers_realign(workspace_id=workspace_id, customer_ids=customer_ids)


subscribe(CUSTOMERS_CHANGED, _on_customers_changed)


# 18:40 UTC is 02:40 in Asia/Shanghai: a nightly reconciliation catches whatever a lost callback or an
# abandoned retry missed (members, the tag library, groups and their members).
@db_periodic_task(crontab(hour="18", minute="40"))
def work_sync_daily() -> int:
    apps = list(_work_apps())
    for app in apps:
        app_sync_task(app.pk)
    return len(apps)
