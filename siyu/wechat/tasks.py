"""Background upkeep of the WeChat core (thin wrappers over services)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from siyu.wechat.callbacks import nonces_prune


@db_periodic_task(crontab(minute="*/10"))
def callback_nonces_prune_task() -> int:
    """Nonces older than the ±300 s timestamp window protect nothing any more."""
    return nonces_prune()
