"""Shared fixtures. The same suite runs on SQLite and PostgreSQL (SIYU_DATABASE_URL decides)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from siyu.core.services import api_key_create, membership_grant, workspace_create


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    require = os.environ.get("SIYU_REQUIRE_SERVICES") == "1"
    for item in items:
        if "postgres" in item.keywords and "postgresql" not in engine:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL-only test; runs in the PostgreSQL pass"))
        if "redis" in item.keywords and not os.environ.get("SIYU_TEST_REDIS_URL"):
            marker = pytest.mark.xfail(strict=True, reason="Redis required") if require else pytest.mark.skip(
                reason="SIYU_TEST_REDIS_URL not set")
            item.add_marker(marker)


@pytest.fixture
def workspace(db):
    return workspace_create(slug="brand-a", name="品牌A")


@pytest.fixture
def other_workspace(db):
    return workspace_create(slug="brand-b", name="品牌B")


@pytest.fixture
def api_secret(workspace):
    return api_key_create(workspace=workspace, name="test")[1]


@pytest.fixture
def admin_membership(workspace):
    return membership_grant(workspace=workspace, username="admin", password="pass-12345", role="admin")


@pytest.fixture(autouse=True)
def domain_events_background_inline(monkeypatch):
    """Background subscribers of domain events run in-process right after commit (as the worker would)."""
    from siyu.core import domain_events

    monkeypatch.setattr(domain_events, "BACKGROUND_INLINE", True)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Tests create many logins: a fast hasher (passwords still checked, just cheaply)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clients(workspace):
    """A logged-in test client per role of ``workspace`` (tests/console has its own, with named members)."""
    from django.test import Client

    result = {}
    for role in ("admin", "operator", "service", "analyst"):
        membership = membership_grant(workspace=workspace, username=f"{role}-client", password="pass-12345", role=role)
        client = Client()
        client.force_login(membership.user)
        result[role] = client
    return result


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def recent(now):
    return now - timedelta(hours=1)
