"""Background work of the catalog: releasing stock reservations whose time is up (a backstop — orders
normally cancel unpaid orders and release their stock themselves)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from siyu.commerce.catalog.inventory import reservations_expire


@db_periodic_task(crontab(minute="*"))
def catalog_reservations_expire() -> int:
    total = 0
    while True:
        released = reservations_expire()
        total += released
        if released < 500:
            return total
