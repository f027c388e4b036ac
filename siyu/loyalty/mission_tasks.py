"""Domain-event subscriptions of the membership activities (imported from ``LoyaltyConfig.ready``).

Growth tasks advance on ``orders.order_paid`` (首单), ``engagement.community_joined`` (加入社群; engagement sits
above loyalty, so the event is named by string, never imported) and ``customers.events_ingested`` (product
views, shares, group joins, a completed profile). Tier changes are notified to the customer. Each reaction
is small and idempotent; a failure is queued as a retried Huey task so nothing is lost.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from huey.contrib.djhuey import db_task

from siyu.core.domain_events import EVENTS_INGESTED, subscribe
from siyu.customers.models import Customer, Event
from siyu.loyalty.missions import mission_progress
from siyu.loyalty.models import GrowthTask
from siyu.loyalty.points import customer_live
from siyu.loyalty.tiers import TIER_CHANGED

logger = logging.getLogger(__name__)

ORDER_PAID = "orders.order_paid"
COMMUNITY_JOINED = "engagement.community_joined"
INLINE_CUSTOMERS = 10  # larger ingestion batches (imports, bulk tracking) are handled in the background
EVENT_TRIGGERS = {"product_view": "browse", "share": "share", "group_join": "community_joined"}
RECENT = timedelta(days=2)


def _customer(workspace_id, customer_id) -> Customer | None:
    customer = Customer.objects.filter(pk=customer_id, workspace_id=workspace_id).first()
    return customer_live(customer) if customer is not None else None


def first_order_apply(*, workspace_id: int, order_id: int, customer_id: int | None) -> int:
    customer = _customer(workspace_id, customer_id) if customer_id else None
    if customer is None:
        return 0
    return len(mission_progress(workspace=workspace_id, customer=customer, trigger="first_order",
                                key=f"order:{order_id}"))


def community_joined_apply(*, workspace_id: int, customer_ids: list[int], community_id=None) -> int:
    moved = 0
    for customer_id in customer_ids:
        customer = _customer(workspace_id, customer_id)
        if customer is not None:
            moved += len(mission_progress(workspace=workspace_id, customer=customer, trigger="community_joined",
                                          key=f"community:{community_id or 'any'}"))
    return moved


def profile_complete(customer: Customer) -> bool:
    """完善资料: a name and a phone number on the profile."""
    return bool(customer.name_hash and customer.phone_hash)


def events_apply(*, workspace_id: int, customer_ids: list[int]) -> int:
    """Advance tasks from the customers' recent events (each event one step, keyed by what it is about)."""
    triggers = set(GrowthTask.objects.filter(workspace_id=workspace_id, is_active=True)
                   .values_list("trigger", flat=True))
    if not triggers:
        return 0
    wanted = [event_type for event_type, trigger in EVENT_TRIGGERS.items() if trigger in triggers]
    since = timezone.now() - RECENT
    moved = 0
    for customer_id in customer_ids:
        customer = _customer(workspace_id, customer_id)
        if customer is None:
            continue
        if "profile_completed" in triggers and profile_complete(customer):
            moved += len(mission_progress(workspace=workspace_id, customer=customer, trigger="profile_completed",
                                          key="profile"))
        if not wanted:
            continue
        events = (Event.objects.filter(workspace_id=workspace_id, type__in=wanted, occurred_at__gte=since)
                  .filter(Q(identity__customer_id=customer_id) | Q(identity__customer_id=customer.pk))
                  .order_by("occurred_at")[:500])
        for event in events:
            trigger = EVENT_TRIGGERS[event.type]
            about = event.properties or {}
            if trigger == "browse":
                key = f"product:{about.get('product_id') or event.event_id}"
            elif trigger == "community_joined":
                key = f"community:{about.get('group_id') or 'any'}"
            else:
                key = f"event:{event.event_id}"
            moved += len(mission_progress(workspace=workspace_id, customer=customer, trigger=trigger, key=key,
                                          at=event.occurred_at))
    return moved


@db_task(retries=5, retry_delay=30)
def mission_events_task(workspace_id: int, customer_ids: list[int]) -> int:
    return events_apply(workspace_id=workspace_id, customer_ids=customer_ids)


@db_task(retries=5, retry_delay=30)
def first_order_task(workspace_id: int, order_id: int, customer_id: int | None) -> int:
    return first_order_apply(workspace_id=workspace_id, order_id=order_id, customer_id=customer_id)


@db_task(retries=5, retry_delay=30)
def community_joined_task(workspace_id: int, customer_ids: list[int], community_id=None) -> int:
    return community_joined_apply(workspace_id=workspace_id, customer_ids=customer_ids, community_id=community_id)


@db_task(retries=3, retry_delay=30)
def product_viewed_task(workspace_id: int, customer_id: int, product_id: int, at_iso: str) -> int:
    """The 浏览商品 daily task's step, queued by the store's product pages (each product counts once a day)."""
    customer = _customer(workspace_id, customer_id)
    if customer is None:
        return 0
    moved = mission_progress(workspace=workspace_id, customer=customer, trigger="browse",
                             key=f"product:{int(product_id)}", at=datetime.fromisoformat(at_iso))
    return len(moved)


def product_viewed(*, workspace_id: int, customer_id: int, product_id: int) -> None:
    """Queue the browse step; a product page never waits for (or fails on) task bookkeeping."""
    try:
        product_viewed_task(workspace_id, customer_id, product_id, timezone.now().isoformat())
    except Exception:
        logger.exception("loyalty tasks: product view of %s by %s not recorded", product_id, customer_id)


@db_task(retries=5, retry_delay=60)
def tier_notice_task(change_id: int) -> str:
    from siyu.loyalty.tier_notices import tier_notice_send

    notice = tier_notice_send(change_id=change_id)
    return notice.status if notice else ""


def on_order_paid(*, workspace_id, order_id, customer_id=None, **_):
    try:
        first_order_apply(workspace_id=workspace_id, order_id=order_id, customer_id=customer_id)
    except Exception:
        logger.exception("loyalty tasks: OrderPaid %s failed, queued for retry", order_id)
        first_order_task(workspace_id, order_id, customer_id)


def on_community_joined(*, workspace_id, customer_id=None, customer_ids=None, community_id=None, **_):
    ids = [int(pk) for pk in (customer_ids or ([customer_id] if customer_id else []))]
    try:
        community_joined_apply(workspace_id=workspace_id, customer_ids=ids, community_id=community_id)
    except Exception:
        logger.exception("loyalty tasks: community join failed, queued for retry")
        community_joined_task(workspace_id, ids, community_id)


def on_events_ingested(*, workspace_id, customer_ids, **_):
    ids = list(customer_ids)
    if len(ids) > INLINE_CUSTOMERS:
        mission_events_task(workspace_id, ids)
        return
    try:
        events_apply(workspace_id=workspace_id, customer_ids=ids)
    except Exception:
        logger.exception("loyalty tasks: events of %s customers failed, queued for retry", len(ids))
        mission_events_task(workspace_id, ids)


def on_tier_changed(*, change_id, **_):
    # Always in the background: a subscribe message is a synchronous call to WeChat, and tier changes happen
    # on the payment path.
    tier_notice_task(change_id)


subscribe(ORDER_PAID, on_order_paid, background=True)  # off the payment notification request
subscribe(COMMUNITY_JOINED, on_community_joined)
subscribe(EVENTS_INGESTED, on_events_ingested, background=True)
subscribe(TIER_CHANGED, on_tier_changed)
