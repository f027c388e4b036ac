"""Background work of 微信支付 (thin wrappers over services)."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from siyu.core.domain_events import subscribe
from siyu.wechat.pay.events import PAYMENT_SUCCEEDED
from siyu.wechat.pay.services import pay_reconcile_due, payment_customer_event

logger = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="*/10"))
def pay_reconcile_task() -> dict[str, int]:
    counts = pay_reconcile_due()
    if any(counts.values()):
        logger.info("wechat pay reconciled: %s", counts)
    return counts


# The payment on the customer's timeline: delivered by the event's one background task, off the notification.
subscribe(PAYMENT_SUCCEEDED, payment_customer_event, background=True)
