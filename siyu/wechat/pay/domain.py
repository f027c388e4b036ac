"""Pure rules of a payment (no ORM): the intent's status transitions, what may still be refunded, yuan text.

A payment intent moves ``created → paid → refunded_partially → refunded`` or ``created → closed``; a
payment that arrives for a closed intent is recorded (``closed → paid``) and refunded in full at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MAX_YUAN = Decimal("100000000")  # far above any single WeChat Pay payment

CREATED, PAID, CLOSED, REFUNDED_PARTIALLY, REFUNDED = "created", "paid", "closed", "refunded_partially", "refunded"

TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({PAID, CLOSED}),
    PAID: frozenset({REFUNDED_PARTIALLY, REFUNDED}),
    CLOSED: frozenset({PAID}),  # paid after close: recorded, then refunded automatically
    REFUNDED_PARTIALLY: frozenset({REFUNDED_PARTIALLY, REFUNDED}),
    REFUNDED: frozenset(),
}
PAID_STATUSES = frozenset({PAID, REFUNDED_PARTIALLY, REFUNDED})

# Refund statuses. ``pending``: reserved in Siyu, not yet accepted by WeChat Pay; ``failed``: refused by
# WeChat Pay (the reservation is released); ``closed``: WeChat closed it (released too).
REFUND_PENDING, REFUND_PROCESSING, REFUND_SUCCEEDED = "pending", "processing", "succeeded"
REFUND_ABNORMAL, REFUND_CLOSED, REFUND_FAILED = "abnormal", "closed", "failed"
REFUND_HOLDS_MONEY = frozenset({REFUND_PENDING, REFUND_PROCESSING, REFUND_SUCCEEDED, REFUND_ABNORMAL})
REFUND_FINAL = frozenset({REFUND_SUCCEEDED, REFUND_CLOSED, REFUND_FAILED})
WECHAT_REFUND_STATUS = {"PROCESSING": REFUND_PROCESSING, "SUCCESS": REFUND_SUCCEEDED,
                        "ABNORMAL": REFUND_ABNORMAL, "CLOSED": REFUND_CLOSED}


class TransitionRefused(ValueError):
    pass


def transition_check(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise TransitionRefused(f"{current} → {target}")


def status_after_refunds(*, amount_fen: int, refunded_fen: int) -> str:
    """The status of a paid intent once ``refunded_fen`` has come back to the payer."""
    if refunded_fen <= 0:
        return PAID
    return REFUNDED if refunded_fen >= amount_fen else REFUNDED_PARTIALLY


@dataclass(frozen=True)
class Refundable:
    paid_fen: int
    held_fen: int  # pending + processing + succeeded + abnormal refunds

    @property
    def remaining_fen(self) -> int:
        return max(self.paid_fen - self.held_fen, 0)

    def allows(self, amount_fen: int) -> bool:
        return 0 < amount_fen <= self.remaining_fen


def yuan(fen: int) -> str:
    """12345 → "123.45" (exact: integer arithmetic, never float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def fen_parse(text: str) -> int:
    """"12.3" → 1230. Raises ValueError for non-numbers, zero or less, more than two decimals, absurd sizes."""
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation as error:
        raise ValueError("not a number") from error
    if not value.is_finite() or value <= 0 or value > MAX_YUAN:
        raise ValueError("out of range")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("more than two decimals")
    return int(value * 100)
