"""Background work of the communities area (thin wrappers over its services) and its subscriptions.

- Group events sent to the event API (and the WeCom area's group_join / group_leave) are applied right
  after their ingestion commits; a failure is queued as a retried task.
- Every 10 minutes: membership reconciled with the WeCom groups, due rhythm slots produced.
- On the 1st of each month (Shanghai): the previous month's KOC and their incentives.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.domain_events import EVENTS_INGESTED, subscribe
from siyu.core.models import Workspace
from siyu.engagement.communities.koc import koc_evaluate, period_of
from siyu.engagement.communities.messages import group_events_apply
from siyu.engagement.communities.models import Community
from siyu.engagement.communities.rhythm import rhythm_run_due
from siyu.engagement.communities.services import communities_sync

logger = logging.getLogger(__name__)


@db_task(retries=3, retry_delay=30)
def group_events_task(workspace_id: int, customer_ids: list[int]) -> dict:
    return group_events_apply(workspace_id=workspace_id, customer_ids=customer_ids)


def _on_events_ingested(*, workspace_id: int, customer_ids: list[int], **_) -> None:
    try:
        group_events_apply(workspace_id=workspace_id, customer_ids=customer_ids)
    except Exception:
        logger.exception("communities: group events of %s customers failed, queued for retry", len(customer_ids))
        group_events_task(workspace_id, customer_ids)


subscribe(EVENTS_INGESTED, _on_events_ingested, background=True)


@db_periodic_task(crontab(minute="*/10"))
def communities_periodic() -> dict:
    return {"synced": communities_sync(), "rhythm": rhythm_run_due()}


# 16:30 UTC is 00:30 in Asia/Shanghai: the month that just ended is evaluated.
@db_periodic_task(crontab(day="1", hour="16", minute="30"))
def koc_monthly() -> int:
    period = period_of(timezone.now() - timedelta(days=1))
    workspaces = Workspace.objects.filter(pk__in=Community.objects.filter(active=True).values("workspace_id"))
    for workspace in workspaces:
        koc_evaluate(workspace=workspace, period=period)
    return workspaces.count()
