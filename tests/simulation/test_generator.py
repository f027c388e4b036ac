"""The pure generator: determinism, the channel matrix, and the true parameters being recoverable."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from siyu.simulation.generator import (
    CHANNEL_CODES,
    CHANNEL_WEIGHTS,
    DAY_US,
    EVENT_INDEX,
    BrandParameters,
    chunk_generate,
    event_identity_rows,
)

END_US = 1_790_000_000 * 1_000_000


def _digest(chunk) -> str:
    h = hashlib.sha256()
    for array in (chunk.channel, chunk.first_us, chunk.last_us, chunk.lam, chunk.p, chunk.purchases, chunk.ev_us,
                  chunk.ev_type, chunk.ev_customer, chunk.ev_amount, chunk.ident_slot):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update("|".join(chunk.name).encode())
    h.update("|".join(v or "" for v in chunk.ident_value).encode())
    return h.hexdigest()


def test_same_seed_gives_identical_data_and_another_seed_does_not():
    params = BrandParameters(customers=2000, months=3, seed=11, end_us=END_US, chunk_size=1000)
    first = [_digest(chunk_generate(params, i)) for i in range(2)]
    again = [_digest(chunk_generate(params, i)) for i in range(2)]
    other = BrandParameters(customers=2000, months=3, seed=12, end_us=END_US, chunk_size=1000)
    assert first == again
    assert first[0] != first[1]
    assert _digest(chunk_generate(other, 0)) != first[0]


@pytest.fixture(scope="module")
def big_chunk():
    params = BrandParameters(customers=40_000, months=12, seed=3, end_us=END_US, chunk_size=40_000)
    return params, chunk_generate(params, 0)


def test_arrival_channels_follow_the_seed_003_matrix(big_chunk):
    _, chunk = big_chunk
    shares = np.bincount(chunk.channel, minlength=len(CHANNEL_CODES)) / chunk.n
    total = sum(CHANNEL_WEIGHTS.values())
    for index, code in enumerate(CHANNEL_CODES):
        assert shares[index] == pytest.approx(CHANNEL_WEIGHTS[code] / total, abs=0.008), code
    # the matrix itself: 小红书 : 抖音 : 公众号 : 门店 : 老客推荐 = 8000 : 5000 : 2000 : 3000 : 4000
    xhs = shares[CHANNEL_CODES.index("xiaohongshu")]
    assert shares[CHANNEL_CODES.index("douyin")] / xhs == pytest.approx(5 / 8, rel=0.06)
    assert shares[CHANNEL_CODES.index("referral")] / xhs == pytest.approx(4 / 8, rel=0.06)
    # arrivals spread evenly over the months
    months = ((chunk.first_us - chunk.first_us.min()) // (30 * DAY_US)).clip(max=11)
    per_month = np.bincount(months, minlength=12) / chunk.n
    assert np.all(np.abs(per_month - 1 / 12) < 0.01)


def test_true_parameters_are_recoverable_from_the_truth_arrays(big_chunk):
    params, chunk = big_chunk
    mean, var = chunk.lam.mean(), chunk.lam.var()
    # method of moments for Gamma(r, α): r = mean²/var, α = mean/var
    assert mean == pytest.approx(params.r / params.alpha, rel=0.05)
    assert mean**2 / var == pytest.approx(params.r, rel=0.1)
    assert mean / var == pytest.approx(params.alpha, rel=0.1)
    assert chunk.p.mean() == pytest.approx(params.a / (params.a + params.b), rel=0.05)
    # orders follow Gamma-Gamma: mean order value p γ / (q - 1)
    orders = chunk.ev_amount[chunk.ev_type == EVENT_INDEX["order_paid"]]
    assert orders.size == chunk.purchases.sum()
    assert orders.mean() == pytest.approx(params.gg_p * params.gg_gamma / (params.gg_q - 1), rel=0.1)
    # dead customers made at least one purchase (they drop out right after one)
    assert np.all(chunk.purchases[~chunk.alive] >= 1)


def test_without_dropout_purchases_are_a_poisson_process_at_the_gamma_mean_rate():
    params = BrandParameters(customers=30_000, months=6, seed=5, end_us=END_US, chunk_size=30_000,
                             a=0.001, b=5000.0)
    chunk = chunk_generate(params, 0)
    observed_days = (params.end_us - chunk.first_us) / DAY_US
    assert chunk.purchases.sum() / observed_days.sum() == pytest.approx(params.r / params.alpha, rel=0.06)
    # purchase times are uniform over each customer's window (Poisson order statistics)
    is_order = chunk.ev_type == EVENT_INDEX["order_paid"]
    owner = chunk.ev_customer[is_order]
    position = (chunk.ev_us[is_order] - chunk.first_us[owner]) / (observed_days[owner] * DAY_US)
    assert position.min() >= 0 and position.max() <= 1
    assert position.mean() == pytest.approx(0.5, abs=0.02)


def test_every_event_has_an_identity_of_its_customer_and_arrival_comes_first(big_chunk):
    _, chunk = big_chunk
    rows = event_identity_rows(chunk)
    assert rows.min() >= 0
    assert np.array_equal(chunk.ident_customer[rows], chunk.ev_customer)
    assert np.all(np.bincount(chunk.ident_customer, minlength=chunk.n) >= 1)
    first_event = chunk.ev_seq == 0
    assert np.array_equal(chunk.ev_us[first_event], chunk.first_us)
    assert np.all(chunk.last_us >= chunk.first_us)
    assert np.all(chunk.ev_us < END_US)
