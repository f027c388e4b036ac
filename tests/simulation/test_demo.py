"""``siyu demo --no-serve``: sets up the demo brand, logins and API key, and is idempotent."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from siyu.channels.models import Channel
from siyu.core.models import ApiKey, Membership
from siyu.core.services import api_key_authenticate
from siyu.customers.models import Customer, Event
from siyu.simulation.models import SimulationRun


@pytest.mark.django_db(transaction=True)
def test_demo_sets_up_everything_once(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    out = io.StringIO()
    call_command("demo", no_serve=True, customers=300, stdout=out)
    text = out.getvalue()
    passwords = json.loads((tmp_path / "demo_logins.json").read_text())
    secret = (tmp_path / "demo_api_key").read_text().strip()
    assert f"admin     / {passwords['admin']}" in text
    assert secret in text and "http://127.0.0.1:" in text
    assert (tmp_path / "demo_logins.json").stat().st_mode & 0o077 == 0

    workspace = api_key_authenticate(secret)
    assert workspace is not None and workspace.slug == "demo"
    assert Customer.objects.filter(workspace=workspace).count() == 300
    assert Event.objects.filter(workspace=workspace).count() > 300
    assert Channel.objects.filter(workspace=workspace, code="xiaohongshu", monthly_target=8000,
                                  monthly_cost_fen__gt=0).exists()
    roles = dict(Membership.objects.filter(workspace=workspace).values_list("user__username", "role"))
    assert roles == {"admin": "admin", "operator": "operator", "service": "service", "analyst": "analyst"}
    for username, password in passwords.items():
        assert authenticate(username=username, password=password) is not None
    assert Customer.objects.filter(workspace=workspace, owner__username="service").exists()

    counts = (Customer.objects.count(), Event.objects.count(), SimulationRun.objects.count(), ApiKey.objects.count())
    again = io.StringIO()
    call_command("demo", no_serve=True, customers=300, stdout=again)
    assert "跳过模拟" in again.getvalue()
    assert (Customer.objects.count(), Event.objects.count(), SimulationRun.objects.count(),
            ApiKey.objects.count()) == counts
    assert secret in again.getvalue() and passwords == json.loads((tmp_path / "demo_logins.json").read_text())
