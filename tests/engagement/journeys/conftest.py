"""Journeys fixtures: a 公众号 in the WeChat simulator whose followers are Siyu customers, and a helper to
build and activate a journey."""

from __future__ import annotations

from datetime import datetime

import pytest
from huey.contrib.djhuey import HUEY

from siyu.core.timeutil import SHANGHAI
from siyu.customers.models import Identity
from siyu.engagement.journeys import services
from siyu.wechat.official import services as official_services
from siyu.wechat_sim import mp
from tests.wechat.conftest import official_app, wechat_app_factory, wechat_sim  # noqa: F401 - fixtures
from tests.wechat.official_support import official_account

# A Tuesday afternoon in Shanghai: outside quiet hours.
NOON = datetime(2026, 11, 24, 14, 0, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def patient_timeouts(settings, monkeypatch):
    """The machine is shared and often loaded: a 5-second read timeout towards the in-process simulator or a
    local webhook receiver can expire although the other side answered, which turns a send into "unknown" (or
    a webhook into a retry) and fails assertions that are about journeys, not about timeouts. No test here
    exercises a timeout (crashes are simulated by patching), so waiting longer changes nothing they check."""
    from siyu.engagement.journeys import delivery

    settings.SIYU_WECHAT_TIMEOUT = 60
    monkeypatch.setattr(delivery, "WEBHOOK_TIMEOUT", 60)


@pytest.fixture
def account(wechat_sim, wechat_app_factory):  # noqa: F811
    HUEY.flush()
    app = official_account(wechat_app_factory, wechat_sim)
    official_services.settings_update(app=app, actor=None, account_type="service", unionid_access=False,
                                      welcome_reply="", default_reply="")
    return app


@pytest.fixture
def follow(wechat_sim, account):  # noqa: F811
    """``follow(n, prefix)`` → n customers following the 公众号 (through the simulator's subscribe callback)."""

    def make(count: int, prefix: str = "f"):
        customers = []
        for index in range(count):
            user = wechat_sim.state.user(f"{prefix}{index}")
            assert mp.subscribe(wechat_sim, user, account.appid).status == 200
            openid = wechat_sim.state.openid(user, account.appid)
            customers.append(Identity.objects.get(kind="openid", namespace=account.appid, value=openid).customer)
        return customers

    return make


def template_step(account, step_id: str = "m1", next_step: str = "", **extra) -> dict:
    return {"id": step_id, "type": "message", "channel": "official_template", "app_id": account.pk,
            "template_id": "TPL_journey", "data": {"first": "您好，新品上市", "remark": "回复 TD 退订"},
            "url": "https://shop.example/new", "next": next_step, **extra}


def activate(workspace, definition: dict, *, name: str = "旅程", now=NOON):
    journey = services.journey_create(workspace=workspace, name=name, definition=definition, now=now)
    return services.journey_activate(workspace=workspace, journey_id=journey.pk, now=now)


def sent_templates(sim, account) -> list[dict]:
    return mp.sent_messages(sim, account.appid, "template")
