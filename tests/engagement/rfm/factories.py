"""Rows for RFM tests written straight through the ORM (orders and events as the services would leave them)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from siyu.commerce.orders.models import Order
from siyu.customers.models import Customer, Event, Identity

_numbers = itertools.count(1)


def customer(workspace, *, first_seen_at: datetime) -> Customer:
    return Customer.objects.create(workspace=workspace, first_seen_at=first_seen_at, last_seen_at=first_seen_at)


def order(workspace, who: Customer, *, paid_at: datetime | None, paid_fen: int, refunded_fen: int = 0,
          discount_fen: int = 0) -> Order:
    if paid_at is None:
        status, payment = "pending_payment", "unpaid"
    elif refunded_fen >= paid_fen:
        status, payment = "cancelled", "refunded"
    elif refunded_fen:
        status, payment = "confirmed", "partially_refunded"
    else:
        status, payment = "confirmed", "paid"
    subtotal = paid_fen + discount_fen
    return Order.objects.create(
        workspace=workspace, customer=who, number=f"RFM{next(_numbers):012d}", order_status=status,
        payment_status=payment, subtotal_fen=subtotal, discount_fen=discount_fen, total_fen=paid_fen,
        paid_fen=paid_fen if paid_at else 0, refunded_fen=refunded_fen if paid_at else 0, paid_at=paid_at,
        pay_expires_at=(paid_at or datetime.now().astimezone()) + timedelta(minutes=30))


def identity(workspace, who: Customer) -> Identity:
    value = f"openid-{next(_numbers)}"
    return Identity.objects.create(workspace=workspace, customer=who, kind="openid", namespace="wx-app", value=value,
                                   first_seen_at=who.first_seen_at, last_seen_at=who.first_seen_at)


def event(workspace, ident: Identity, *, type: str, occurred_at: datetime) -> Event:
    return Event.objects.create(workspace=workspace, event_id=f"ev-{next(_numbers)}", type=type,
                                occurred_at=occurred_at, received_at=occurred_at, identity=ident)
