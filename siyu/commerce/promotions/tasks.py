"""Background work of promotions: coupons past their expiry are marked expired (locked ones wait for their
order, which consumes or releases them)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from siyu.commerce.promotions.services import coupons_expire


@db_periodic_task(crontab(minute="*/5"))
def promotions_coupons_expire() -> int:
    return coupons_expire()
