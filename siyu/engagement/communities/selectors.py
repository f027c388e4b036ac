"""Reads for the communities console pages and the customer 360 panel."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from siyu.core.timeutil import local_day, start_of_local_day
from siyu.engagement.communities import domain
from siyu.engagement.communities.models import (
    Community,
    CommunityMember,
    GroupMessage,
    KocAward,
    KocIncentive,
    ModerationRecord,
)
from siyu.wechat.work.models import CustomerGroup

SERVICE_ROLE = "service"


def communities_visible(*, workspace, user, role: str) -> QuerySet[Community]:
    """Service staff see the groups they own; other roles see all of the workspace's."""
    queryset = Community.objects.filter(workspace=workspace)
    if role == SERVICE_ROLE:
        queryset = queryset.filter(owner=user)
    return queryset


def community_rows(*, communities: QuerySet[Community], now: datetime | None = None, days: int = 7) -> list[dict]:
    """Each group with members, messages today, the daily average of the last ``days`` full days and its
    place against the expected range."""
    now = now or timezone.now()
    today = local_day(now)
    since = start_of_local_day(today - timedelta(days=days))
    rows = list(communities.annotate(
        member_count=Count("members", filter=Q(members__left_at=None), distinct=True)).order_by("type", "name"))
    counts = {row["community_id"]: row for row in GroupMessage.objects.filter(
        community__in=rows, sent_at__gte=since).values("community_id").annotate(
        recent=Count("id", filter=Q(sent_at__lt=start_of_local_day(today))),
        today=Count("id", filter=Q(sent_at__gte=start_of_local_day(today))))}
    result = []
    for community in rows:
        low, high = domain.expected_range(community.type, community.expected_min, community.expected_max)
        mine = counts.get(community.pk, {})
        average = (mine.get("recent") or 0) / days
        result.append({"community": community, "members": community.member_count, "today": mine.get("today") or 0,
                       "average": round(average, 1), "low": low, "high": high,
                       "flag": domain.activity_flag(average, low, high)})
    return result


def daily_metrics(*, community: Community, days: int = 14, today: date | None = None) -> list[dict]:
    """Per Shanghai day: messages, active members (distinct customer senders), joins and leaves."""
    today = today or local_day(timezone.now())
    first = today - timedelta(days=days - 1)
    start = start_of_local_day(first)
    table = {first + timedelta(days=offset): {"messages": 0, "senders": set(), "joins": 0, "leaves": 0}
             for offset in range(days)}
    for sent_at, sender, is_staff in GroupMessage.objects.filter(community=community, sent_at__gte=start) \
            .values_list("sent_at", "sender_id", "is_staff").iterator():
        day = table.get(local_day(sent_at))
        if day is not None:
            day["messages"] += 1
            if not is_staff:
                day["senders"].add(sender)
    for joined_at, left_at in CommunityMember.objects.filter(community=community).filter(
            Q(joined_at__gte=start) | Q(left_at__gte=start)).values_list("joined_at", "left_at"):
        if joined_at and local_day(joined_at) in table:
            table[local_day(joined_at)]["joins"] += 1
        if left_at and local_day(left_at) in table:
            table[local_day(left_at)]["leaves"] += 1
    low, high = domain.expected_range(community.type, community.expected_min, community.expected_max)
    return [{"day": day, "messages": row["messages"], "active": len(row["senders"]), "joins": row["joins"],
             "leaves": row["leaves"], "flag": domain.activity_flag(row["messages"], low, high)}
            for day, row in sorted(table.items())]


def members(*, community: Community, limit: int = 200) -> list[CommunityMember]:
    return list(CommunityMember.objects.filter(community=community, left_at=None).select_related("customer")
                .order_by("-joined_at")[:limit])


def moderation_log(*, workspace, communities: QuerySet[Community] | None = None, community: Community | None = None,
                   limit: int = 200) -> list[ModerationRecord]:
    queryset = ModerationRecord.objects.filter(workspace=workspace)
    if community is not None:
        queryset = queryset.filter(community=community)
    elif communities is not None:
        queryset = queryset.filter(community__in=communities)
    return list(queryset.select_related("community").order_by("-created_at", "-pk")[:limit])


def unlinked_groups(*, workspace) -> list[CustomerGroup]:
    linked = Community.objects.filter(workspace=workspace).exclude(wecom_chat_id="").values_list("wecom_chat_id",
                                                                                                 flat=True)
    return list(CustomerGroup.objects.filter(workspace=workspace, dismissed_at=None).exclude(chat_id__in=linked)
                .order_by("name")[:200])


def koc_awards(*, workspace, period: str, communities: QuerySet[Community] | None = None,
               workspace_wide: bool = True) -> list[KocAward]:
    """The period's KOC in these groups, and (``workspace_wide``) those across all groups."""
    queryset = KocAward.objects.filter(workspace=workspace, period=period)
    if communities is not None:
        scope = Q(community__in=communities) | Q(community=None) if workspace_wide else Q(community__in=communities)
        queryset = queryset.filter(scope)
    return list(queryset.select_related("community").order_by("community_id", "rank", "customer_id"))


def koc_incentives(*, workspace, period: str) -> dict[int, KocIncentive]:
    return {row.customer_id: row for row in KocIncentive.objects.filter(workspace=workspace, period=period)}


def customer_communities(*, customer) -> dict:
    """The 360 panel: groups (current and past), KOC periods with incentive steps, moderation record."""
    memberships = list(CommunityMember.objects.filter(customer=customer).select_related("community")
                       .order_by("left_at", "-joined_at"))
    awards = list(KocAward.objects.filter(customer=customer).select_related("community").order_by("-period")[:24])
    incentives = {row.period: row for row in KocIncentive.objects.filter(customer=customer)}
    records = list(ModerationRecord.objects.filter(customer=customer).select_related("community")
                   .order_by("-created_at")[:20])
    return {"memberships": memberships, "awards": awards, "incentives": incentives, "records": records,
            "is_koc": any(award.period == awards[0].period for award in awards) if awards else False}
