"""Console fixtures: one logged-in client per role in the test workspace."""

from __future__ import annotations

import pytest
from django.test import Client

from siyu.core.services import membership_grant


def _client_for(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


@pytest.fixture
def members(workspace):
    return {role: membership_grant(workspace=workspace, username=f"{role}-user", password="pass-12345", role=role)
            for role in ("admin", "operator", "service", "analyst")}


@pytest.fixture
def clients(members):
    return {role: _client_for(membership) for role, membership in members.items()}
