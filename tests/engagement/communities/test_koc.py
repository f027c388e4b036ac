"""KOC: the top percent by contribution (ties kept), tagged, and the incentive steps given once per period."""

from __future__ import annotations

from datetime import datetime

import pytest

from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.customers.models import CustomerTag
from siyu.engagement.communities.koc import contributions, incentives_apply, koc_evaluate
from siyu.engagement.communities.models import CommunityMember, GroupMessage, KocAward, KocIncentive
from siyu.engagement.communities.services import KOC_TAG, community_create, settings_update
from siyu.engagement.inbox.models import StaffTask
from siyu.loyalty.models import PointsTransaction

from .conftest import customer_make

OCT = datetime(2026, 10, 10, 12, 0, tzinfo=SHANGHAI)


def fill(workspace, community, counts: list[int], period_start=OCT):
    """Members with ``counts[i]`` messages each on one day of the period; returns the customers."""
    customers = []
    for index, count in enumerate(counts):
        customer = customer_make(workspace)
        CommunityMember.objects.create(workspace=workspace, community=community, customer=customer,
                                       joined_at=datetime(2026, 7, 1, tzinfo=SHANGHAI))
        GroupMessage.objects.bulk_create([
            GroupMessage(workspace=workspace, community=community, msg_id=f"{community.pk}-{period_start:%m}-{index}-{n}",
                         sender_id=f"wm{customer.pk}", customer=customer, content="分享", sent_at=period_start,
                         received_at=period_start) for n in range(count)])
        customers.append(customer)
    return customers


def test_contributions_count_replies_both_ways(workspace):
    community = community_create(workspace=workspace, name="交流群", type="exchange")
    a, b = fill(workspace, community, [1, 0])
    GroupMessage.objects.create(workspace=workspace, community=community, msg_id="reply-1", sender_id="b",
                                customer=b, content="同意", reply_to=f"{community.pk}-10-0-0", sent_at=OCT,
                                received_at=OCT)
    result = contributions(workspace=workspace, communities=[community], period="2026-10")
    assert result[a.pk].replies_received == 1 and result[b.pk].replies_given == 1


def test_koc_top_percent_with_ties_and_incentives_never_doubled(workspace):
    settings_update(workspace=workspace, koc_percent=15, step_points=[200, 500, 1000])
    community = community_create(workspace=workspace, name="福利群", type="welfare")
    # 10 members; 15% → 2 places; the 2nd place is a three-way tie, so 4 KOC.
    customers = fill(workspace, community, [20, 10, 10, 10, 5, 4, 3, 2, 1, 0])
    result = koc_evaluate(workspace=workspace, period="2026-10", now=datetime(2026, 11, 1, 1, tzinfo=SHANGHAI))
    group_kocs = set(KocAward.objects.filter(community=community).values_list("customer_id", flat=True))
    assert group_kocs == {c.pk for c in customers[:4]}
    assert result["kocs"] == 4 and result["incentives"] == 4
    assert CustomerTag.objects.filter(tag__name=KOC_TAG).count() == 4
    earned = PointsTransaction.objects.filter(workspace=workspace, ref__startswith="community-koc:2026-10:")
    assert earned.count() == 4
    again = koc_evaluate(workspace=workspace, period="2026-10", now=datetime(2026, 11, 2, tzinfo=SHANGHAI))
    assert (again["awarded"], again["incentives"]) == (0, 0)
    assert incentives_apply(workspace=workspace, period="2026-10") == 0
    assert earned.count() == 4 and KocIncentive.objects.count() == 4
    # November: only the quietest October member speaks; the KOC tag moves to them.
    nov = datetime(2026, 11, 3, tzinfo=SHANGHAI)
    GroupMessage.objects.create(workspace=workspace, community=community, msg_id="nov-1", sender_id="x",
                                customer=customers[9], content="x", sent_at=nov, received_at=nov)
    koc_evaluate(workspace=workspace, period="2026-11", now=datetime(2026, 12, 1, 1, tzinfo=SHANGHAI))
    tagged = set(CustomerTag.objects.filter(tag__name=KOC_TAG).values_list("customer_id", flat=True))
    assert tagged == {customers[9].pk}
    koc_evaluate(workspace=workspace, period="2026-10", now=datetime(2026, 12, 1, 2, tzinfo=SHANGHAI))
    assert set(CustomerTag.objects.filter(tag__name=KOC_TAG).values_list("customer_id", flat=True)) == tagged


def test_streaks_reach_steps_two_and_three(workspace):
    community = community_create(workspace=workspace, name="荣誉群", type="honor")
    settings_update(workspace=workspace, koc_percent=10, step_points=[1, 2, 3], honor_community_id=community.pk)
    star, *_rest = fill(workspace, community, [9, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    for month in (8, 9, 10):
        start = datetime(2026, month, 5, tzinfo=SHANGHAI)
        GroupMessage.objects.create(workspace=workspace, community=community, msg_id=f"star-{month}",
                                    sender_id="star", customer=star, content="x", sent_at=start, received_at=start)
        koc_evaluate(workspace=workspace, period=f"2026-{month:02d}", now=datetime(2026, 11, 1, tzinfo=SHANGHAI))
    steps = dict(KocIncentive.objects.filter(customer=star).values_list("period", "step"))
    assert steps == {"2026-08": 1, "2026-09": 2, "2026-10": 3}

    assert StaffTask.objects.filter(ref=f"koc-honor:2026-09:{star.pk}").exists()
    assert StaffTask.objects.get(ref=f"koc-share:2026-10:{star.pk}").level == "expert"


def test_bad_periods_and_settings_are_refused(workspace):
    for period, code in [("2026-13", "koc_period_invalid"), ("abc", "koc_period_invalid"),
                         ("2099-01", "koc_period_future")]:
        with pytest.raises(SiyuError) as refused:
            koc_evaluate(workspace=workspace, period=period)
        assert refused.value.code == code
    for kwargs in [{"koc_percent": 0, "step_points": [1, 2, 3]}, {"koc_percent": 15, "step_points": [1, 2]},
                   {"koc_percent": 15, "step_points": [1, 2, -3]}]:
        with pytest.raises(SiyuError):
            settings_update(workspace=workspace, **kwargs)
    assert not KocAward.objects.exists()
