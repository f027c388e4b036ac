"""Reads for the 企业微信 console pages: staff with their customers and today's adds against caps,
groups with customer members, mass-send tasks with confirmation and delivery, adds per code per day."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from siyu.core.timeutil import local_day, start_of_local_day
from siyu.wechat.models import WeChatApp
from siyu.wechat.work.models import (
    ContactRelation,
    ContactWay,
    ContactWayStaff,
    CustomerGroup,
    MassSend,
    MassSendRecipient,
    RecipientStatus,
    RelationStatus,
    Staff,
)


def staff_rows(*, app: WeChatApp, today: date | None = None) -> list[dict]:
    today = today or local_day(timezone.now())
    since = start_of_local_day(today)
    rows = (Staff.objects.filter(app=app)
            .annotate(customers=Count("relations", filter=Q(relations__status=RelationStatus.ACTIVE)),
                      added_today=Count("relations", filter=Q(relations__added_at__gte=since,
                                                              relations__contact_way__isnull=False)))
            .order_by("status", "userid"))
    caps: dict[int, int] = {}
    paused: set[int] = set()
    for member in ContactWayStaff.objects.filter(contact_way__app=app, contact_way__active=True):
        caps[member.staff_id] = caps.get(member.staff_id, 0) + member.daily_cap
        if member.paused_on == today:
            paused.add(member.staff_id)
    return [{"staff": row, "customers": row.customers, "added_today": row.added_today, "cap": caps.get(row.pk),
             "paused": row.pk in paused} for row in rows]


def customer_count(*, app: WeChatApp) -> int:
    return ContactRelation.objects.filter(app=app, status=RelationStatus.ACTIVE).values("customer_id").distinct().count()


def groups_with_members(*, app: WeChatApp, limit: int = 50) -> QuerySet[CustomerGroup]:
    return (CustomerGroup.objects.filter(app=app, dismissed_at=None)
            .annotate(member_count=Count("members", filter=Q(members__left_at=None, members__is_staff=False)))
            .order_by("-pk")[:limit])


def mass_sends(*, app: WeChatApp, limit: int = 20) -> list[MassSend]:
    """Recent tasks with ``staff_sent``/``staff_total`` and ``delivery``: [(label, count)] per status."""
    sends = list(MassSend.objects.filter(app=app).order_by("-pk").annotate(
        staff_total=Count("staff_tasks", distinct=True),
        staff_sent=Count("staff_tasks", filter=Q(staff_tasks__sent=True), distinct=True))[:limit])
    counts: dict[int, dict[int, int]] = {}
    for row in (MassSendRecipient.objects.filter(mass_send__in=sends)
                .values("mass_send_id", "status").annotate(n=Count("id"))):
        counts.setdefault(row["mass_send_id"], {})[row["status"]] = row["n"]
    for mass in sends:
        mine = counts.get(mass.pk, {})
        mass.delivery = [(RecipientStatus(status).label, mine.get(status, 0)) for status in RecipientStatus.values]
    return sends


def adds_by_day(*, way: ContactWay, days: int = 7, today: date | None = None) -> list[tuple[date, int]]:
    today = today or local_day(timezone.now())
    start = start_of_local_day(today - timedelta(days=days - 1))
    counts: dict[date, int] = {}
    for added_at in ContactRelation.objects.filter(contact_way=way, added_at__gte=start).values_list("added_at",
                                                                                                   flat=True):
        day = local_day(added_at)
        counts[day] = counts.get(day, 0) + 1
    return [(today - timedelta(days=offset), counts.get(today - timedelta(days=offset), 0))
            for offset in range(days - 1, -1, -1)]
