"""Background work of 微信支付 (thin wrappers over services)."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from siyu.wechat.pay.services import pay_reconcile_due

logger = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="*/10"))
def pay_reconcile_task() -> dict[str, int]:
    counts = pay_reconcile_due()
    if any(counts.values()):
        logger.info("wechat pay reconciled: %s", counts)
    return counts
