"""``rfm_summary`` (read from the purchase rollup) and ``rfm_summary_from_orders`` (one SQL statement over the
orders) give exactly the numbers of ``lifetimes.utils.summary_data_from_transaction_data`` on the same random
purchases: same-day purchases, days split at midnight Asia/Shanghai, refunds, unpaid orders and purchases after
the observation end included (customers who bought both before and after it, too)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from siyu.core.timeutil import SHANGHAI
from siyu.engagement.rfm.rollup import rollup_rebuild, rollup_refresh
from siyu.engagement.rfm.scoring import rfm_summary, rfm_summary_from_orders
from tests.engagement.rfm import factories as f

END_DAY = date(2026, 6, 30)


def _moment(rng) -> datetime:
    day = END_DAY - timedelta(days=rng.randint(-3, 120))
    # Often right around midnight in Shanghai (16:00 UTC), where a UTC day would put it on the wrong side.
    minute = rng.choice([0, 1, 1439, 720, rng.randint(0, 1439)])
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(minutes=minute, seconds=rng.randint(0, 59))


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("fill", ["rebuild", "refresh"])
def test_rfm_summary_equals_lifetimes_on_random_purchases(workspace, seed, fill):
    rng = random.Random(seed)
    rows = []
    for _ in range(25):
        customer = f.customer(workspace, first_seen_at=datetime(2025, 1, 1, tzinfo=SHANGHAI))
        for _ in range(rng.choice([0, 1, 1, 2, 4, 7])):
            paid_at = rng.choice([_moment(rng)] * 8 + [None])
            paid = rng.randint(1, 90000)
            refunded = rng.choice([0, 0, 0, rng.randint(0, paid - 1), paid])
            f.order(workspace, customer, paid_at=paid_at, paid_fen=paid, refunded_fen=refunded)
            if paid_at is not None and refunded < paid:
                rows.append((customer.pk, paid_at.astimezone(SHANGHAI).replace(tzinfo=None), paid - refunded))
            if paid_at is not None and rng.random() < 0.3:  # another purchase the same day
                same_day = paid_at.replace(hour=rng.choice([0, 23]), minute=30)
                f.order(workspace, customer, paid_at=same_day, paid_fen=500)
                rows.append((customer.pk, same_day.astimezone(SHANGHAI).replace(tzinfo=None), 500))

    frame = pd.DataFrame(rows, columns=["customer_id", "paid_at", "amount_fen"])
    theirs = summary_data_from_transaction_data(frame, "customer_id", "paid_at", monetary_value_col="amount_fen",
                                                observation_period_end=pd.Timestamp(END_DAY), freq="D")
    if fill == "rebuild":
        rollup_rebuild(workspace_id=workspace.pk)
    else:
        rollup_refresh(workspace_id=workspace.pk, customer_ids=sorted({row[0] for row in rows} | {-1}))
    ours = rfm_summary(workspace_id=workspace.pk, observation_end=END_DAY)

    assert len(theirs) > 10
    assert any(moment.date() > END_DAY for _, moment, _ in rows)  # the end day cuts some customers' purchases
    expected = {int(pk): (frequency, recency, age, money)
                for pk, frequency, recency, age, money in theirs[["frequency", "recency", "T", "monetary_value"]]
                .itertuples()}
    assert ours == expected  # exact equality, floats included
    assert rfm_summary_from_orders(workspace_id=workspace.pk, observation_end=END_DAY) == expected
    some = sorted(expected)[:5]
    assert rfm_summary(workspace_id=workspace.pk, observation_end=END_DAY, customer_ids=some) == {
        pk: expected[pk] for pk in some}


def test_rfm_summary_accepts_an_aware_end_moment_and_reads_its_shanghai_day(workspace):
    customer = f.customer(workspace, first_seen_at=datetime(2025, 1, 1, tzinfo=SHANGHAI))
    f.order(workspace, customer, paid_at=datetime(2026, 6, 1, 10, tzinfo=SHANGHAI), paid_fen=1000)
    f.order(workspace, customer, paid_at=datetime(2026, 6, 3, 23, 59, tzinfo=SHANGHAI), paid_fen=3000)
    f.order(workspace, customer, paid_at=datetime(2026, 6, 3, 0, 1, tzinfo=SHANGHAI), paid_fen=2000)
    # 2026-06-10 17:00 UTC is already 06-11 in Shanghai.
    end = datetime(2026, 6, 10, 17, 0, tzinfo=UTC)
    rollup_rebuild(workspace_id=workspace.pk)
    assert rfm_summary(workspace_id=workspace.pk, observation_end=end) == {customer.pk: (1, 2, 10, 5000.0)}
