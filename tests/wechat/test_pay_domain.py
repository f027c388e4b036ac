"""Pure payment rules: transitions, what may still be refunded, yuan text (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.wechat.pay import domain


@given(st.integers(min_value=1, max_value=10**8), st.lists(st.integers(min_value=1, max_value=10**8), max_size=30))
def test_granted_refunds_never_exceed_the_payment(paid, requests):
    held = 0
    for amount in requests:
        room = domain.Refundable(paid_fen=paid, held_fen=held)
        if room.allows(amount):
            held += amount
        assert 0 <= held <= paid
        assert domain.Refundable(paid_fen=paid, held_fen=held).remaining_fen == paid - held


@given(st.integers(min_value=1, max_value=10**8), st.integers(min_value=0, max_value=10**8))
def test_status_after_refunds(amount, refunded):
    refunded = min(refunded, amount)
    status = domain.status_after_refunds(amount_fen=amount, refunded_fen=refunded)
    assert status == (domain.PAID if refunded == 0 else domain.REFUNDED if refunded == amount
                      else domain.REFUNDED_PARTIALLY)
    if status != domain.PAID:
        domain.transition_check(domain.PAID, status)


@given(st.integers(min_value=1, max_value=10**10))
def test_yuan_text_round_trips_to_fen(fen):
    assert domain.fen_parse(domain.yuan(fen).replace(",", "")) == fen


def test_yuan_examples():
    assert [domain.yuan(value) for value in (0, 5, 100, 12345, 123456789, -250)] == \
        ["0.00", "0.05", "1.00", "123.45", "1,234,567.89", "-2.50"]


@pytest.mark.parametrize("text", ["", "0", "-1", "1.001", "abc", "NaN", "Infinity", "1e3000", "100000000.01"])
def test_bad_yuan_is_refused(text):
    with pytest.raises(ValueError):
        domain.fen_parse(text)


def test_transitions():
    for current, target in [(domain.CREATED, domain.PAID), (domain.CREATED, domain.CLOSED), (domain.CLOSED, domain.PAID),
                            (domain.PAID, domain.REFUNDED)]:
        domain.transition_check(current, target)
    for current, target in [(domain.PAID, domain.CLOSED), (domain.REFUNDED, domain.PAID),
                            (domain.CLOSED, domain.CREATED), (domain.PAID, domain.CREATED)]:
        with pytest.raises(domain.TransitionRefused):
            domain.transition_check(current, target)
