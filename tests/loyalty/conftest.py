"""Loyalty fixtures: one logged-in console client per role in the test workspace."""

from __future__ import annotations

import pytest
from django.test import Client

from siyu.core.services import membership_grant


@pytest.fixture
def members(workspace, settings):
    # The real hasher costs about a second per password; these tests are about pages, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return {role: membership_grant(workspace=workspace, username=f"{role}-user", password="pass-12345", role=role)
            for role in ("admin", "operator", "service", "analyst")}


@pytest.fixture
def clients(members):
    result = {}
    for role, membership in members.items():
        client = Client()
        client.force_login(membership.user)
        result[role] = client
    return result
