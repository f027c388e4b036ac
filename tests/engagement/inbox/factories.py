"""Staff, customers and tasks for the inbox tests."""

from __future__ import annotations

from django.test import Client
from django.utils import timezone

from siyu.core.services import membership_grant
from siyu.customers.models import Customer
from siyu.engagement.inbox.services import task_create


def staff(workspace, username: str, role: str):
    membership = membership_grant(workspace=workspace, username=username, password="pass-12345", role=role)
    client = Client()
    client.force_login(membership.user)
    return membership, client


def customer(workspace, owner=None) -> Customer:
    now = timezone.now()
    return Customer.objects.create(workspace=workspace, first_seen_at=now, last_seen_at=now, owner=owner)


def task(workspace, ref: str, *, customer_id=None, **fields):
    return task_create(workspace=workspace, source=fields.pop("source", "journey"), ref=ref,
                       title=fields.pop("title", f"任务 {ref}"), customer_id=customer_id, **fields)[0]
