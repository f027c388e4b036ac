"""The bot's background work: incoming 公众号 messages and 微信客服 events are handled in Huey tasks after the
callback committed — never inside WeChat's five seconds — and each message answered at most once (by its id)."""

from __future__ import annotations

import logging

from huey.contrib.djhuey import db_task

from siyu.core.domain_events import subscribe
from siyu.engagement.service.models import Channel
from siyu.engagement.service.services import kf_messages_pull, message_answer
from siyu.wechat.official.inbound import MESSAGE_RECEIVED
from siyu.wechat.work.kf import KF_EVENT

logger = logging.getLogger(__name__)


@db_task(retries=3, retry_delay=10)
def service_answer_task(workspace_id: int, channel: str, app_id: int, peer: str, text: str, external_id: str,
                        customer_id: int | None = None, account: str = "", answered: bool = False) -> str:
    message = message_answer(workspace_id=workspace_id, channel=channel, app_id=app_id, peer=peer, text=text,
                             external_id=external_id, customer_id=customer_id, account=account, answered=answered)
    return "duplicate" if message is None else (message.resolution or "logged")


def on_official_message(*, workspace_id, app_id, appid, openid, text, msg_id, customer_id=None, answered=False,
                        **_):
    service_answer_task(workspace_id, Channel.OFFICIAL, app_id, openid, text, f"{appid}:{msg_id}",
                        customer_id, "", bool(answered))


subscribe(MESSAGE_RECEIVED, on_official_message)


@db_task(retries=3, retry_delay=10)
def kf_pull_task(app_id: int, token: str, open_kfid: str) -> int:
    return kf_messages_pull(app_id=app_id, token=token, open_kfid=open_kfid)


def on_kf_event(*, app_id, token="", open_kfid="", **_):
    kf_pull_task(app_id, token, open_kfid)


subscribe(KF_EVENT, on_kf_event)
