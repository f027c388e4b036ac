"""Reads for the console: logins per day, live sessions, subscribe authorisations, recent logins."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from siyu.core.crypto import mask_name, mask_phone
from siyu.core.models import Membership, Workspace
from siyu.core.timeutil import SHANGHAI, local_day, start_of_local_day
from siyu.wechat.consumer.models import ConsumerSession, SessionKind, SubscribeAuthorisation

MAX_DAYS = 90


def logins_daily(*, workspace: Workspace, days: int = 30, today: date | None = None) -> dict:
    """Logins (sessions opened) per Beijing day and kind: ``{"days": [...], "series": {kind: [counts]}}``."""
    days = max(1, min(days, MAX_DAYS))
    today = today or local_day(timezone.now())
    first = today - timedelta(days=days - 1)
    rows = (ConsumerSession.objects.filter(workspace=workspace, created_at__gte=start_of_local_day(first),
                                           created_at__lt=start_of_local_day(today + timedelta(days=1)))
            .annotate(day=TruncDate("created_at", tzinfo=SHANGHAI)).values("day", "kind")
            .annotate(count=Count("pk")))
    labels = [first + timedelta(days=offset) for offset in range(days)]
    series = {kind: [0] * days for kind in SessionKind.values}
    for row in rows:
        day = row["day"] if isinstance(row["day"], date) else date.fromisoformat(str(row["day"])[:10])
        series[row["kind"]][(day - first).days] += row["count"]
    return {"days": [day.isoformat() for day in labels], "series": series,
            "total": sum(sum(values) for values in series.values())}


def sessions_active(*, workspace: Workspace) -> dict[str, int]:
    live = ConsumerSession.objects.filter(workspace=workspace, revoked_at=None, expires_at__gt=timezone.now())
    counts = dict(live.values_list("kind").annotate(count=Count("pk")).values_list("kind", "count"))
    return {"total": sum(counts.values()), **{kind: counts.get(kind, 0) for kind in SessionKind.values}}


def subscribe_authorisations_by_template(*, workspace: Workspace) -> list[dict]:
    return list(SubscribeAuthorisation.objects.filter(workspace=workspace).values("template_id").annotate(
        users=Count("pk", filter=Q(remaining__gt=0)), remaining=Sum("remaining"), accepted=Sum("accepted_total"),
        rejected=Sum("rejected_total"), sent=Sum("sent_total")).order_by("template_id"))


def _mask_identifier(value: str) -> str:
    return value[:4] + "****" + value[-4:] if len(value) > 10 else "****"


def logins_recent(*, workspace: Workspace, membership: Membership, limit: int = 20) -> list[dict]:
    """The latest logins with personal data always masked; service staff see only their own customers."""
    sessions = (ConsumerSession.objects.filter(workspace=workspace)
                .select_related("app", "identity", "customer").order_by("-created_at", "-pk"))
    if not membership.sees_all_customers:
        sessions = sessions.filter(customer__owner_id=membership.user_id)
    now = timezone.now()
    rows = []
    for session in sessions[:limit]:
        status = "revoked" if session.revoked_at else ("active" if session.expires_at > now else "expired")
        rows.append({
            "session": session, "status": status, "customer_id": session.customer_id,
            "name": mask_name(session.customer.name), "phone": mask_phone(session.customer.phone),
            "openid": _mask_identifier(session.identity.value), "app_name": session.app.name,
        })
    return rows
