"""Background sending of 公众号 messages (thin wrappers over messaging.send_execute).

A rate-limited send is scheduled again at its ``next_attempt_at``; a periodic task re-queues any send
whose retry is due, in case a scheduled task was lost (worker restart, queue flushed).
"""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.wechat.official.messaging import send_execute, sends_due
from siyu.wechat.official.models import SendStatus


@db_task()
def official_send_task(send_id: int) -> str:
    send = send_execute(send_id=send_id)
    if send is None:
        return "skipped"
    if send.status == SendStatus.RETRYING and send.next_attempt_at is not None:
        official_send_task.schedule((send_id,), eta=send.next_attempt_at)
    return send.status


@db_periodic_task(crontab(minute="*/5"))
def official_sends_resume() -> int:
    due = sends_due()
    for send_id in due:
        official_send_task(send_id)
    return len(due)
