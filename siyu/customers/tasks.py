"""Background tasks of the customers layer (thin wrappers over services) and its domain-event subscriptions.

The same task code runs on the embedded SQLite-backed Huey queue and on the Redis-backed one.
"""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from siyu.core.domain_events import CUSTOMERS_CHANGED, EVENTS_INGESTED, RULE_TAG_CHANGED, subscribe
from siyu.core.models import Workspace
from siyu.customers.last_seen import last_seen_apply
from siyu.customers.models import Tag, TagKind
from siyu.customers.tagging import rule_tags_refresh

logger = logging.getLogger(__name__)


@db_task()
def rule_tags_refresh_task(workspace_id: int, customer_ids: list[int] | None = None,
                           tag_ids: list[int] | None = None) -> dict[str, int]:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:  # deleted since the task was queued
        return {"tags": 0, "added": 0, "removed": 0}
    return rule_tags_refresh(workspace=workspace, customer_ids=customer_ids, tag_ids=tag_ids)


# 19:30 UTC is 03:30 in Asia/Shanghai: time-window rules ("not paid in 7 days") change with time alone.
@db_periodic_task(crontab(hour="19", minute="30"))
def rule_tags_refresh_daily() -> int:
    workspace_ids = sorted(set(Tag.objects.filter(kind=TagKind.RULE).values_list("workspace_id", flat=True)))
    for workspace_id in workspace_ids:
        workspace = Workspace.objects.filter(pk=workspace_id).first()
        if workspace is not None:
            summary = rule_tags_refresh(workspace=workspace)
            logger.info("rule tags refreshed for workspace %s: %s", workspace_id, summary)
    return len(workspace_ids)



@db_periodic_task(crontab(minute="*"))
def last_seen_apply_task() -> int:
    """Fold the last-seen times ingestion batches recorded (PostgreSQL) into identities and customers."""
    return last_seen_apply()


def _on_customers_changed(*, workspace_id: int, customer_ids: list[int]) -> None:
    # Most ingestion batches land in workspaces without rule tags: don't queue work for nothing.
    if Tag.objects.filter(workspace_id=workspace_id, kind=TagKind.RULE).exists():
        rule_tags_refresh_task(workspace_id, customer_ids)


def _on_rule_tag_changed(*, workspace_id: int, tag_id: int) -> None:
    rule_tags_refresh_task(workspace_id, None, [tag_id])


subscribe(EVENTS_INGESTED, _on_customers_changed, background=True)
subscribe(CUSTOMERS_CHANGED, _on_customers_changed)
subscribe(RULE_TAG_CHANGED, _on_rule_tag_changed)
