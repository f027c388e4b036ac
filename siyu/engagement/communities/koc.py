"""KOC (关键意见消费者): each period (a Shanghai calendar month) the members with the highest contribution
score — the top ``koc_percent`` (default 15%, seed 002: 10%–15%) in each group and across the workspace —
are marked KOC and tagged, and each KOC gets the incentive step of their streak, once per period:

1. 内容共创 (recognition): step-1 points, the KOC tag;
2. 福利优先 (privileges, KOC two periods running): step-2 points, the configured coupon, an invitation
   to the honour group (a staff task: WeCom has no API to add a customer to a group);
3. 商业分成 (revenue share, three or more periods running): step-3 points and a task for an expert to
   offer a revenue-share (分销) agreement.

The score is ``domain.contribution_score`` (its formula is written there and shown in the console).
Idempotent: awards are unique per (scope, customer, period), incentives per (customer, period), and the
points carry the ref ``community-koc:<period>:<customer>``, so running a period twice gives nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.core.timeutil import SHANGHAI, local_day
from siyu.customers.models import Customer, CustomerTag, Event
from siyu.customers.tagging import tags_bulk_add, tags_bulk_remove
from siyu.engagement.communities import domain
from siyu.engagement.communities.models import (
    Community,
    CommunityMember,
    GroupMessage,
    KocAward,
    KocIncentive,
    ModerationRecord,
)
from siyu.engagement.communities.services import KOC_TAG, community_tag, settings_for
from siyu.engagement.inbox.models import TaskLevel
from siyu.engagement.inbox.services import task_create
from siyu.loyalty.points import points_earn


def period_of(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    if not domain.valid_period(period):
        raise SiyuError("koc_period_invalid", "周期格式应为 YYYY-MM", "The period must be YYYY-MM",
                        details={"field": "period"})
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=SHANGHAI)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


def contributions(*, workspace: Workspace, communities: list[Community], period: str
                  ) -> dict[int, domain.Contribution]:
    """What each member of these groups contributed in the period (members at any time during it)."""
    start, end = period_bounds(period)
    members = set(CommunityMember.objects.filter(community__in=communities, joined_at__lt=end)
                  .filter(Q(left_at=None) | Q(left_at__gte=start)).values_list("customer_id", flat=True))
    if not members:
        return {}
    per_day: dict[int, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    replies_given: dict[int, int] = defaultdict(int)
    reply_targets: list[tuple[int | None, str]] = []
    messages = GroupMessage.objects.filter(community__in=communities, sent_at__gte=start, sent_at__lt=end,
                                           is_staff=False)
    for customer_id, sent_at, reply_to in messages.values_list("customer_id", "sent_at", "reply_to").iterator():
        if customer_id in members:
            per_day[customer_id][local_day(sent_at)] += 1
            if reply_to:
                replies_given[customer_id] += 1
        if reply_to:
            reply_targets.append((customer_id, reply_to))
    authors = dict(GroupMessage.objects.filter(workspace=workspace, msg_id__in={target for _, target in reply_targets})
                   .values_list("msg_id", "customer_id"))
    replies_received: dict[int, int] = defaultdict(int)
    for replier, target in reply_targets:
        author = authors.get(target)
        if author in members and author != replier:
            replies_received[author] += 1
    invitations = defaultdict(int)
    for inviter in CommunityMember.objects.filter(community__in=communities, invited_by__in=members,
                                                  joined_at__gte=start, joined_at__lt=end) \
            .values_list("invited_by_id", flat=True):
        invitations[inviter] += 1
    orders, shares = defaultdict(int), defaultdict(int)
    for event_type, customer_id in Event.objects.filter(
            workspace_id=workspace.pk, type__in=("order_paid", "share"), occurred_at__gte=start, occurred_at__lt=end,
            identity__customer_id__in=members).values_list("type", "identity__customer_id").iterator():
        (orders if event_type == "order_paid" else shares)[customer_id] += 1
    violations = defaultdict(int)
    for customer_id in ModerationRecord.objects.filter(community__in=communities, customer_id__in=members,
                                                       created_at__gte=start, created_at__lt=end) \
            .values_list("customer_id", flat=True):
        violations[customer_id] += 1
    return {customer_id: domain.Contribution(
        messages_per_day=tuple(per_day[customer_id].values()), replies_given=replies_given[customer_id],
        replies_received=replies_received[customer_id], invitations=invitations[customer_id],
        orders=orders[customer_id], shares=shares[customer_id], violations=violations[customer_id])
        for customer_id in members}


def _award(workspace: Workspace, community: Community | None, chosen: list[tuple[int, int, int]], period: str,
           now: datetime) -> int:
    made = 0
    for customer_id, score, rank in chosen:
        try:
            with transaction.atomic():
                KocAward.objects.create(workspace=workspace, community=community, customer_id=customer_id,
                                        period=period, score=score, rank=rank, created_at=now)
                made += 1
        except IntegrityError:
            continue  # awarded by an earlier run of this period
    return made


def koc_evaluate(*, workspace: Workspace, period: str, actor: Any = None, now: datetime | None = None
                 ) -> dict[str, int]:
    """Mark the period's KOC per group and across the workspace, tag them and give their incentives."""
    now = now or timezone.now()
    start, _end = period_bounds(period)
    if start > now:
        raise SiyuError("koc_period_future", "不能评选尚未开始的周期", "That period has not started yet",
                        details={"field": "period"})
    percent = settings_for(workspace=workspace).koc_percent
    communities = list(Community.objects.filter(workspace=workspace, active=True).order_by("pk"))
    awarded = 0
    for community in communities:
        scores = {customer_id: domain.contribution_score(c)
                  for customer_id, c in contributions(workspace=workspace, communities=[community],
                                                      period=period).items()}
        awarded += _award(workspace, community, domain.top_percent(scores, percent), period, now)
    scores = {customer_id: domain.contribution_score(c)
              for customer_id, c in contributions(workspace=workspace, communities=communities, period=period).items()}
    awarded += _award(workspace, None, domain.top_percent(scores, percent), period, now)
    kocs = sorted(set(KocAward.objects.filter(workspace=workspace, period=period).values_list("customer_id", flat=True)))
    live = list(Customer.objects.filter(pk__in=kocs, merged_into=None).values_list("pk", flat=True))
    tagged = 0
    latest = KocAward.objects.filter(workspace=workspace).order_by("-period").values_list("period", flat=True).first()
    if latest in (None, period):
        # The tag says who is a KOC now: the latest period's KOC get it and last period's who are not KOC
        # any more lose it; evaluating an older period again leaves today's tags alone.
        tag = community_tag(workspace=workspace, name=KOC_TAG)
        tagged = tags_bulk_add(workspace=workspace, tag=tag, customer_ids=live, source="auto") if live else 0
        former = set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True)) - set(live)
        if former:
            tags_bulk_remove(workspace=workspace, tag=tag, customer_ids=sorted(former))
    given = incentives_apply(workspace=workspace, period=period, now=now)
    audit_record(workspace=workspace, actor=actor, action="community.koc_evaluate", target_type="workspace",
                 target_id=workspace.pk, period=period, awarded=awarded, tagged=tagged, incentives=given)
    return {"awarded": awarded, "kocs": len(kocs), "tagged": tagged, "incentives": given}


def _streak(workspace: Workspace, customer_id: int, period: str) -> int:
    periods = set(KocAward.objects.filter(workspace=workspace, customer_id=customer_id)
                  .values_list("period", flat=True))
    count, current = 0, period
    while current in periods and count < 3:
        count, current = count + 1, domain.previous_period(current)
    return count


def incentives_apply(*, workspace: Workspace, period: str, now: datetime | None = None) -> int:
    """Give each KOC of the period their step's incentive — once: the KocIncentive row, the points ref and
    the tasks' refs are all unique, and they are written in one transaction."""
    now = now or timezone.now()
    config = settings_for(workspace=workspace)
    points_by_step = list(config.step_points or domain.DEFAULT_STEP_POINTS)
    given = 0
    customer_ids = sorted(set(KocAward.objects.filter(workspace=workspace, period=period)
                              .values_list("customer_id", flat=True)))
    done = set(KocIncentive.objects.filter(workspace=workspace, period=period).values_list("customer_id", flat=True))
    for customer in Customer.objects.filter(pk__in=[pk for pk in customer_ids if pk not in done], merged_into=None):
        step = domain.incentive_step(_streak(workspace, customer.pk, period))
        try:
            with transaction.atomic():
                incentive = KocIncentive.objects.create(workspace=workspace, customer=customer, period=period,
                                                        step=step, created_at=now)
                _give(incentive, config, points_by_step, now)
            given += 1
        except IntegrityError:
            continue  # a concurrent run gave it
    return given


def _give(incentive: KocIncentive, config, points_by_step: list[int], now: datetime) -> None:
    workspace, customer, period, step = incentive.workspace, incentive.customer, incentive.period, incentive.step
    name_zh, _name_en = domain.STEP_NAMES[step]
    amount = int(points_by_step[step - 1]) if len(points_by_step) >= step else 0
    if amount > 0:
        points_earn(workspace=workspace, customer=customer, amount=amount, reason="task",
                    ref=f"community-koc:{period}:{customer.pk}", at=now, note=f"社群KOC激励 {period}（{name_zh}）")
        incentive.points = amount
    if step >= 2 and config.coupon_template_id:
        from siyu.commerce.promotions.services import coupon_issue

        try:
            with transaction.atomic():
                incentive.coupons = coupon_issue(workspace=workspace, template_id=config.coupon_template_id,
                                                 customer_ids=[customer.pk], now=now)["issued"]
        except SiyuError:
            incentive.coupons = 0  # the coupon ended or ran out: points and tasks still count
    task = None
    if step >= 2 and config.honor_community_id:
        task, _created = task_create(
            workspace=workspace, source="community", ref=f"koc-honor:{period}:{customer.pk}", customer_id=customer.pk,
            title=f"邀请 KOC 客户 #{customer.pk} 加入荣誉群「{config.honor_community.name}」",
            body="企业微信接口不能把客户拉进客户群，请发送入群邀请。",
            payload={"period": period, "community_id": config.honor_community_id}, now=now)
    if step >= 3:
        task, _created = task_create(
            workspace=workspace, source="community", ref=f"koc-share:{period}:{customer.pk}", customer_id=customer.pk,
            title=f"与 KOC 客户 #{customer.pk} 洽谈商业分成（连续 3 期 KOC）", level=TaskLevel.EXPERT,
            payload={"period": period}, now=now)
    incentive.task_id = task.pk if task else None
    incentive.save(update_fields=["points", "coupons", "task_id"])
