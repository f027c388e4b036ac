"""Customers for the loyalty tests."""

from __future__ import annotations

from django.utils import timezone

from siyu.customers.models import Customer


def make_customer(workspace, **fields) -> Customer:
    at = timezone.now()
    return Customer.objects.create(workspace=workspace, first_seen_at=at, last_seen_at=at, **fields)
