"""Pure rules of an order (no ORM): its three status fields and their transition tables, refund
allocation over lines, and money text. Tested in microseconds.

An order carries three separate statuses, each moved only by its own transition:

- ``order_status``: pending_payment → confirmed (paid) → completed (delivered); pending_payment → cancelled
  (consumer, operator or the auto-cancel of unpaid orders); confirmed → cancelled only when every fen was
  refunded before anything shipped.
- ``payment_status``: unpaid → paid → partially_refunded → refunded.
- ``fulfilment_status``: unfulfilled → shipped → delivered; shipped/delivered → returned (all goods back).

Refund rules (what goes back to the customer, and when):

- Money: a refund never exceeds paid − refunded − refunds still in flight. A refund names lines and
  quantities (after-sales) or only an amount, which is then spread over the lines in proportion to what is
  still refundable on each (largest remainder, so no fen is created or lost).
- Stock: goods that come back (return_refund received, or a refund before shipping) are returned to stock
  exactly once per reservation; a refund of money alone (refund_only after delivery) returns no stock.
- Points spent on the order: returned exactly once, when the order is cancelled before payment or when its
  money is refunded in full. A partial refund keeps them spent (the points bought part of what is kept).
- Coupons: given back exactly once when the order is cancelled — unpaid (released from their lock) or paid
  and refunded in full before anything shipped. A partial refund, or a refund after shipping, keeps them
  used (the goods kept were bought with them).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- statuses ------------------------------------------------------------------------------------------
PENDING_PAYMENT, CONFIRMED, COMPLETED, CANCELLED = "pending_payment", "confirmed", "completed", "cancelled"
UNPAID, PAID, PARTIALLY_REFUNDED, REFUNDED = "unpaid", "paid", "partially_refunded", "refunded"
UNFULFILLED, SHIPPED, DELIVERED, RETURNED = "unfulfilled", "shipped", "delivered", "returned"

ORDER_STATUS, PAYMENT_STATUS, FULFILMENT_STATUS = "order_status", "payment_status", "fulfilment_status"

TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    ORDER_STATUS: {
        PENDING_PAYMENT: frozenset({CONFIRMED, CANCELLED}),
        CONFIRMED: frozenset({COMPLETED, CANCELLED}),
        COMPLETED: frozenset(),
        CANCELLED: frozenset(),
    },
    PAYMENT_STATUS: {
        UNPAID: frozenset({PAID}),
        PAID: frozenset({PARTIALLY_REFUNDED, REFUNDED}),
        PARTIALLY_REFUNDED: frozenset({PARTIALLY_REFUNDED, REFUNDED}),
        REFUNDED: frozenset(),
    },
    FULFILMENT_STATUS: {
        UNFULFILLED: frozenset({SHIPPED}),
        SHIPPED: frozenset({DELIVERED, RETURNED}),
        DELIVERED: frozenset({RETURNED}),
        RETURNED: frozenset(),
    },
}

# After-sales
REFUND_ONLY, RETURN_REFUND, EXCHANGE = "refund_only", "return_refund", "exchange"
AS_REQUESTED, AS_APPROVED, AS_REJECTED, AS_RETURNED = "requested", "approved", "rejected", "returned"
AS_REFUNDED, AS_CLOSED = "refunded", "closed"
AFTERSALE_TRANSITIONS: dict[str, frozenset[str]] = {
    AS_REQUESTED: frozenset({AS_APPROVED, AS_REJECTED, AS_CLOSED}),
    AS_APPROVED: frozenset({AS_RETURNED, AS_REFUNDED, AS_CLOSED}),
    AS_RETURNED: frozenset({AS_REFUNDED, AS_CLOSED}),
    AS_REJECTED: frozenset(),
    AS_REFUNDED: frozenset(),
    AS_CLOSED: frozenset(),
}
AFTERSALE_OPEN = frozenset({AS_REQUESTED, AS_APPROVED, AS_RETURNED})


class TransitionRefused(ValueError):
    def __init__(self, field: str, current: str, target: str):
        super().__init__(f"{field}: {current} → {target}")
        self.field, self.current, self.target = field, current, target


def transition_check(field: str, current: str, target: str) -> None:
    if target not in TRANSITIONS[field].get(current, frozenset()):
        raise TransitionRefused(field, current, target)


def aftersale_transition_check(current: str, target: str) -> None:
    if target not in AFTERSALE_TRANSITIONS.get(current, frozenset()):
        raise TransitionRefused("aftersale_status", current, target)


def aftersale_next_after_approval(kind: str) -> str:
    """What an approved request waits for: goods back (return/exchange) or the refund itself."""
    return AS_RETURNED if kind in {RETURN_REFUND, EXCHANGE} else AS_REFUNDED


def payment_status_after_refunds(*, paid_fen: int, refunded_fen: int) -> str:
    if refunded_fen <= 0:
        return PAID
    return REFUNDED if refunded_fen >= paid_fen else PARTIALLY_REFUNDED


# --- amounts ---------------------------------------------------------------------------------------------
def order_total(*, subtotal_fen: int, discount_fen: int, points_fen: int, shipping_fen: int) -> int:
    return subtotal_fen - discount_fen - points_fen + shipping_fen


@dataclass(frozen=True)
class LineRoom:
    line_id: int
    refundable_fen: int  # payable − already refunded (or held by a refund in flight)


def allocate_refund(amount_fen: int, lines: list[LineRoom]) -> dict[int, int]:
    """Spread ``amount_fen`` over lines in proportion to what each may still refund.

    Largest remainder: the parts add up to ``amount_fen`` exactly and no line gets more than its room.
    Raises ValueError when the amount exceeds the lines' total room or is not positive.
    """
    room = sum(line.refundable_fen for line in lines)
    if amount_fen <= 0 or amount_fen > room:
        raise ValueError("amount outside what the lines may refund")
    shares: dict[int, int] = {}
    remainders: list[tuple[int, int, int]] = []
    for index, line in enumerate(lines):
        whole, remainder = divmod(amount_fen * line.refundable_fen, room)
        shares[line.line_id] = whole
        remainders.append((-remainder, index, line.line_id))
    missing = amount_fen - sum(shares.values())
    for _, _, line_id in sorted(remainders)[:missing]:
        shares[line_id] += 1
    return {line_id: share for line_id, share in shares.items() if share > 0}


def line_refund_for_quantity(*, payable_fen: int, quantity: int, refunded_quantity: int, returning: int,
                             refunded_fen: int) -> int:
    """The money that goes with ``returning`` more units of a line: each unit carries its share of the line's
    payable amount; the last unit carries what is left, so a line refunded unit by unit returns exactly
    its payable amount."""
    if returning <= 0 or refunded_quantity + returning > quantity:
        raise ValueError("quantity outside the line")
    if refunded_quantity + returning == quantity:
        return payable_fen - refunded_fen
    return payable_fen * (refunded_quantity + returning) // quantity - payable_fen * refunded_quantity // quantity


def yuan(fen: int) -> str:
    """12345 → "123.45" (integer arithmetic, never float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"
