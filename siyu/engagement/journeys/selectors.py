"""Reading journeys: lists, the per-journey report (entered, per step, completed, converted, revenue,
messages, A/B variants, entries per day) and a customer's runs for the 360 page."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from siyu.core.timeutil import local_day
from siyu.customers.models import Event
from siyu.engagement.journeys.definition import steps_by_id
from siyu.engagement.journeys.models import Journey, JourneyMessage, JourneyRun, JourneyVersion, RunStatus

DEFAULT_GOAL = {"event_type": "order_paid", "days": 7}


def journey_list(*, workspace) -> list[dict]:
    journeys = list(Journey.objects.filter(workspace=workspace).order_by("status", "-updated_at"))
    counts = defaultdict(Counter)
    for journey_id, status, n in (JourneyRun.objects.filter(journey__in=journeys).values_list("journey_id", "status")
                                  .annotate(n=Count("pk")).order_by()):
        counts[journey_id][status] = n
    return [{"journey": journey, "entered": sum(counts[journey.pk].values()),
             "active": counts[journey.pk][RunStatus.ACTIVE]} for journey in journeys]


def goal_of(journey: Journey) -> dict:
    version = JourneyVersion.objects.filter(journey=journey, version=journey.version).first()
    definition = version.definition if version else journey.definition
    goal = definition.get("goal") or {}
    return goal if goal.get("event_type") and goal.get("days") else DEFAULT_GOAL


def _conversion(runs, goal: dict):
    """Annotate runs with converted (goal within the window after entry) and revenue (orders paid then)."""
    from siyu.commerce.orders.models import Order

    window = timedelta(days=int(goal["days"]))
    paid = Order.objects.filter(customer_id=OuterRef("customer_id"), paid_at__isnull=False,
                                paid_at__gte=OuterRef("entered_at"), paid_at__lte=OuterRef("entered_at") + window)
    revenue = Subquery(paid.order_by().values("customer_id").annotate(total=Sum("total_fen")).values("total")[:1],
                       output_field=IntegerField())
    if goal["event_type"] == "order_paid":
        converted = Exists(paid)
    else:
        converted = Exists(Event.objects.filter(identity__customer_id=OuterRef("customer_id"), type=goal["event_type"],
                                                occurred_at__gte=OuterRef("entered_at"),
                                                occurred_at__lte=OuterRef("entered_at") + window))
    return runs.annotate(converted=converted, revenue=Coalesce(revenue, 0))


def journey_report(*, journey: Journey) -> dict:
    goal = goal_of(journey)
    runs = JourneyRun.objects.filter(journey=journey)
    statuses = Counter(dict(runs.values_list("status").annotate(n=Count("pk")).order_by()))
    version = JourneyVersion.objects.filter(journey=journey, version=journey.version).first()
    steps = steps_by_id(version.definition if version else journey.definition)
    at_step = dict(runs.filter(status=RunStatus.ACTIVE).values_list("current_step").annotate(n=Count("pk"))
                   .order_by())
    variants: dict[str, dict] = defaultdict(lambda: {"entered": 0, "converted": 0, "revenue_fen": 0})
    routes: Counter = Counter()
    total = {"entered": 0, "converted": 0, "revenue_fen": 0}
    per_day: Counter = Counter()
    for variant, route, converted, revenue, entered_at in _conversion(runs, goal).values_list(
            "variant", "route", "converted", "revenue", "entered_at").iterator(chunk_size=2000):
        for bucket in (total, variants[variant or "—"]):
            bucket["entered"] += 1
            bucket["converted"] += 1 if converted else 0
            bucket["revenue_fen"] += int(revenue or 0)
        if route:
            routes[route] += 1
        per_day[local_day(entered_at).isoformat()] += 1
    for bucket in [total, *variants.values()]:
        bucket["rate"] = round(100 * bucket["converted"] / bucket["entered"], 1) if bucket["entered"] else 0.0
    messages = Counter(dict(JourneyMessage.objects.filter(journey=journey).values_list("status")
                            .annotate(n=Count("pk")).order_by()))
    by_channel = defaultdict(Counter)
    for channel, status, n in (JourneyMessage.objects.filter(journey=journey).values_list("channel", "status")
                               .annotate(n=Count("pk")).order_by()):
        by_channel[channel][status] = n
    return {
        "goal": goal, "total": total, "statuses": statuses,
        "steps": [{"id": sid, "type": step["type"], "current": at_step.get(sid, 0)} for sid, step in steps.items()],
        "variants": dict(sorted(variants.items())) if len(variants) > 1 or "—" not in variants else {},
        "routes": dict(routes), "messages": messages, "by_channel": {k: dict(v) for k, v in by_channel.items()},
        "per_day": sorted(per_day.items()),
    }


def customer_runs(*, customer, limit: int = 20) -> list[JourneyRun]:
    return list(JourneyRun.objects.filter(customer=customer).select_related("journey").order_by("-entered_at")[:limit])


def customer_messages(*, customer, limit: int = 20) -> list[JourneyMessage]:
    return list(JourneyMessage.objects.filter(customer=customer).select_related("journey").order_by("-created_at")[:limit])
