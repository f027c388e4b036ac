"""What a verified WeCom callback means for Siyu: one handler per event and change type.

Handlers record first (events, relations, members) and return follow-ups that need WeCom again — the
welcome message (its WelcomeCode is usable for 20 seconds), tags to mark, a rotation to update — which
the view runs after its transaction, and background tasks retry when WeCom is busy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from siyu.wechat.callbacks import CallbackMessage
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.work import contacts, groups, wecom
from siyu.wechat.work.models import ContactRelation, ContactWay

logger = logging.getLogger(__name__)


@dataclass
class Handled:
    kind: str  # what the callback was, e.g. "change_external_contact/add_external_contact"
    app_id: int
    relation: ContactRelation | None = None
    welcome: bool = False  # send the welcome message for ``relation``
    push_tags: bool = False  # mark ``relation``'s customer's tags in WeCom
    tags_changed: bool = False  # the corp tag library changed
    contact_way_id: int | None = None  # check this code's caps and rotation
    group_chat_id: str = ""  # WeCom could not be asked about this group now: sync it later
    relation_tags_id: int | None = None  # WeCom could not be asked about these marks now: pull them later
    rotation_way_ids: tuple[int, ...] = ()  # codes whose rotation lost a member who left


def callback_handle(*, message: CallbackMessage) -> Handled:
    app, data = message.app, message.data
    event = message.event
    change = str(message.get("ChangeType"))
    handled = Handled(kind=f"{event}/{change}", app_id=app.pk)
    if message.msg_type != "event":
        return handled
    if event == "change_external_contact":
        external_userid = str(message.get("ExternalUserID"))
        if change in {"add_external_contact", "add_half_external_contact"}:
            details = contacts.contact_details(app, external_userid) if external_userid else None
            relation = contacts.contact_added(app, data, details=details)
            if relation is not None:
                handled.relation, handled.welcome, handled.push_tags = relation, True, True
                handled.contact_way_id = relation.contact_way_id
        elif change == "edit_external_contact":
            details = contacts.contact_details(app, external_userid) if external_userid else None
            relation = contacts.contact_edited(app, data, details=details)
            if relation is not None:
                try:
                    contacts.relation_tags_refresh(relation, details)
                except (WeChatApiError, wecom.RateLimited) as error:
                    logger.info("marks of %s not pulled now: %s", external_userid, error)
                    handled.relation_tags_id = relation.pk
        elif change in {"del_external_contact", "del_follow_user"}:
            contacts.contact_removed(app, data)
        elif change == "transfer_fail":
            contacts.transfer_failed(app, data)
    elif event == "change_external_chat":
        try:
            groups.chat_changed(app, data)
        except (WeChatApiError, wecom.RateLimited) as error:
            logger.info("group %s not synced now: %s", message.get("ChatId"), error)
            handled.group_chat_id = str(message.get("ChatId"))
    elif event == "change_external_tag":
        handled.tags_changed = True
    elif event == "change_contact":
        staff = contacts.staff_changed(app, data)
        if staff is not None and change == "delete_user":
            handled.rotation_way_ids = tuple(ContactWay.objects.filter(app=app, active=True, members__staff=staff)
                                             .values_list("pk", flat=True))
    else:
        logger.info("WeCom callback %s not handled", handled.kind)
    return handled
