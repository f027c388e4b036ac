"""The callback URL of a WeCom corp (/wx/work/<corpid>/callback): GET verifies the URL, POST carries
external-contact, group, tag and member events. Answers ``success`` once handled; a callback failing a
check is refused with nothing stored. Handling that needs WeCom again runs after the transaction."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from siyu.core.errors import SiyuError
from siyu.wechat.callbacks import rejection_response, work_callback, work_reply, work_verify_url
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.credentials import app_for
from siyu.wechat.models import AppKind
from siyu.wechat.work import contacts, tasks, wecom
from siyu.wechat.work.inbound import callback_handle

logger = logging.getLogger(__name__)


@csrf_exempt
def callback(request, corpid: str):
    if request.method not in {"GET", "POST"}:
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        app = app_for(kind=AppKind.WORK, appid=corpid)
        if request.method == "GET":
            return HttpResponse(work_verify_url(app, request.GET), content_type="text/plain; charset=utf-8")
        with transaction.atomic():
            message = work_callback(app, request)
            handled = callback_handle(message=message)
    except SiyuError as error:
        return rejection_response(error)
    _follow_up(handled)
    return work_reply(app, message)


def _follow_up(handled) -> None:
    """WeCom calls a callback leads to. Each failure is logged (and, for API errors, an ApiIssue);
    tags, rotation and the tag library are tasks that retry with back-off."""
    relation = handled.relation
    try:
        if handled.welcome and relation is not None:
            contacts.welcome_send(relation)
    except (WeChatApiError, wecom.RateLimited) as error:
        logger.info("welcome follow-up failed: %s", error)
    if handled.push_tags and relation is not None:
        tasks.relation_tags_push_task(relation.pk)
    if handled.contact_way_id:
        tasks.contact_way_caps_task(handled.contact_way_id)
    if handled.tags_changed:
        tasks.corp_tags_pull_task(handled.app_id)
    if handled.group_chat_id:
        tasks.group_sync_task(handled.app_id, handled.group_chat_id)
    for way_id in handled.rotation_way_ids:
        tasks.contact_way_rotation_task(way_id)
    if handled.relation_tags_id:
        tasks.relation_tags_pull_task(handled.relation_tags_id)
