"""Reads of the RFM area: customers per layer, moves per day, one customer's score and recent moves."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from siyu.core.timeutil import SHANGHAI, local_day
from siyu.engagement.rfm.models import CustomerScore, LayerChange
from siyu.engagement.rfm.presets import KINDS, PRESETS


def layer_counts(*, workspace, kind: str) -> dict[str, int]:
    """Scored live customers per layer code of ``kind`` (every code present, zero when empty)."""
    counts = dict.fromkeys(PRESETS[kind].codes, 0)
    rows = (CustomerScore.objects.filter(workspace=workspace, customer__status="active").values(kind)
            .annotate(n=Count("id")))
    for row in rows:
        if row[kind] in counts:
            counts[row[kind]] = row["n"]
    return counts


def moves_daily(*, workspace, days: int = 30) -> dict:
    """Moves per day (Asia/Shanghai) and kind over the last ``days`` days; first placements left out."""
    today = local_day(timezone.now())
    labels = [(today - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]
    since = timezone.now() - timedelta(days=days + 1)
    series = {kind: dict.fromkeys(labels, 0) for kind in KINDS}
    rows = (LayerChange.objects.filter(workspace=workspace, at__gte=since).exclude(from_code="")
            .annotate(day=TruncDate("at", tzinfo=SHANGHAI)).values("day", "kind").annotate(n=Count("id")))
    for row in rows:
        label = row["day"].isoformat() if row["day"] else ""
        if row["kind"] in series and label in series[row["kind"]]:
            series[row["kind"]][label] += row["n"]
    return {"days": labels, "series": {kind: list(values.values()) for kind, values in series.items()}}


def layer_members(*, workspace, kind: str, code: str):
    """Scores of the live customers in one layer, most valuable first (a queryset, for paging)."""
    return (CustomerScore.objects.filter(workspace=workspace, customer__status="active", **{kind: code})
            .order_by("-monetary_fen", "customer_id"))


def customer_score(*, customer) -> CustomerScore | None:
    return CustomerScore.objects.filter(customer=customer).first()


def customer_moves(*, customer, limit: int = 10) -> list[LayerChange]:
    return list(LayerChange.objects.filter(customer=customer).order_by("-at", "-id")[:limit])
