"""Tier changes reach the customer in the WeChat simulator: a 公众号 template message to a follower, else a
小程序 subscribe message the user granted, else nothing (recorded). One notice per change, however often the
change event is replayed; the daily re-evaluation's downgrades are notified too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from huey.contrib.djhuey import HUEY

from siyu.customers.models import Identity
from siyu.loyalty.checkin import member_rules_update
from siyu.loyalty.models import GrowthEntry, TierChange, TierNotice
from siyu.loyalty.tier_notices import tier_notice_send
from siyu.loyalty.tiers import growth_record, tier_evaluate, tiers_reevaluate
from siyu.wechat.consumer.models import SubscribeAuthorisation
from siyu.wechat.official import messaging
from siyu.wechat.official.models import Follower
from siyu.wechat_sim import miniapp as sim_miniapp
from siyu.wechat_sim import mp
from tests.loyalty.factories import make_customer
from tests.wechat import conftest as wechat_fixtures
from tests.wechat.official_support import official_account

pytestmark = pytest.mark.django_db
wechat_sim, wechat_app_factory = wechat_fixtures.wechat_sim, wechat_fixtures.wechat_app_factory


@pytest.fixture
def account(wechat_sim, wechat_app_factory):
    HUEY.flush()
    return official_account(wechat_app_factory, wechat_sim)


def follower(sim, app, workspace, key: str):
    user = sim.state.user(key)
    assert mp.subscribe(sim, user, app.appid).status == 200
    openid = sim.state.openid(user, app.appid)
    customer = make_customer(workspace)
    now = timezone.now()
    Identity.objects.update_or_create(workspace=workspace, kind="openid", namespace=app.appid, value=openid,
                                      defaults={"customer": customer, "first_seen_at": now, "last_seen_at": now})
    Follower.objects.update_or_create(app=app, openid=openid, defaults={
        "workspace": workspace, "subscribed": True, "customer": customer})
    return customer, openid


def upgrade(workspace, customer, growth=1500) -> TierChange:
    growth_record(workspace=workspace, customer=customer, source="order_paid", ref=f"o{customer.pk}",
                  spend_fen=growth * 100, growth=growth)
    return tier_evaluate(customer=customer, allow_downgrade=False, reason="order_paid")


def test_upgrade_sends_one_template_message_to_a_follower(wechat_sim, account, workspace):
    member_rules_update(workspace=workspace, changes={"tier_notice_template_id": "TPL_tier_changed"})
    customer, openid = follower(wechat_sim, account, workspace, "fan")
    change = upgrade(workspace, customer)
    assert change is not None and change.to_code == "silver"
    notice = tier_notice_send(change_id=change.pk)
    assert (notice.channel, notice.status) == ("official", "queued")
    assert tier_notice_send(change_id=change.pk).pk == notice.pk  # replayed: the same notice, nothing new
    send_id = int(notice.detail.split(":")[1])
    messaging.send_execute(send_id=send_id)
    sent = mp.sent_messages(wechat_sim, account.appid, "template")
    assert [item["touser"] for item in sent] == [openid]
    assert sent[0]["payload"]["template_id"] == "TPL_tier_changed"
    assert "银卡" in sent[0]["payload"]["data"]["first"]["value"]
    assert TierNotice.objects.count() == 1


def test_change_event_queues_the_notice_task(wechat_sim, account, workspace, django_capture_on_commit_callbacks):
    member_rules_update(workspace=workspace, changes={"tier_notice_template_id": "TPL_tier_changed"})
    customer, _ = follower(wechat_sim, account, workspace, "fan2")
    HUEY.flush()
    with django_capture_on_commit_callbacks(execute=True):
        change = upgrade(workspace, customer)
    assert len(HUEY) == 1  # the notice is sent in the background, off the payment path
    HUEY.immediate = True
    try:
        from siyu.loyalty.mission_tasks import on_tier_changed

        on_tier_changed(change_id=change.pk)
        on_tier_changed(change_id=change.pk)
    finally:
        HUEY.immediate = False
    assert TierNotice.objects.filter(change=change, channel="official").count() == 1


def test_downgrade_by_daily_reevaluation_is_notified(wechat_sim, account, workspace):
    member_rules_update(workspace=workspace, changes={"tier_notice_template_id": "TPL_tier_changed"})
    customer, openid = follower(wechat_sim, account, workspace, "fan3")
    upgrade(workspace, customer)
    GrowthEntry.objects.filter(customer=customer).update(occurred_at=timezone.now() - timedelta(days=400))
    counts = tiers_reevaluate(workspace=workspace)
    assert counts["down"] == 1
    change = TierChange.objects.get(customer=customer, direction="down")
    notice = tier_notice_send(change_id=change.pk)
    messaging.send_execute(send_id=int(notice.detail.split(":")[1]))
    sent = mp.sent_messages(wechat_sim, account.appid, "template")
    assert sent[-1]["touser"] == openid and "普通" in sent[-1]["payload"]["data"]["first"]["value"]


def test_miniapp_subscribe_message_when_granted(wechat_sim, wechat_app_factory, workspace):
    miniapp = wechat_app_factory("miniapp")
    member_rules_update(workspace=workspace, changes={"tier_notice_subscribe_template_id": "SUB_tier"})
    user = wechat_sim.state.user("mini-fan")
    openid = wechat_sim.state.openid(user, miniapp.appid)
    customer = make_customer(workspace)
    now = timezone.now()
    identity = Identity.objects.create(workspace=workspace, customer=customer, kind="openid",
                                       namespace=miniapp.appid, value=openid, first_seen_at=now, last_seen_at=now)
    assert sim_miniapp.subscribe_accept(wechat_sim, user, miniapp.appid, ["SUB_tier"]) == {"SUB_tier": "accept"}
    SubscribeAuthorisation.objects.create(workspace=workspace, app=miniapp, identity=identity,
                                          template_id="SUB_tier", remaining=1, accepted_total=1)
    change = upgrade(workspace, customer)
    notice = tier_notice_send(change_id=change.pk)
    assert (notice.channel, notice.status) == ("miniapp", "sent")
    assert SubscribeAuthorisation.objects.get(identity=identity).remaining == 0
    sends = sim_miniapp.area(wechat_sim).sends
    assert [(send.touser, send.template_id) for send in sends] == [(openid, "SUB_tier")]
    assert tier_notice_send(change_id=change.pk).pk == notice.pk


def test_no_channel_is_recorded_as_skipped(workspace):
    customer = make_customer(workspace)
    change = upgrade(workspace, customer)
    notice = tier_notice_send(change_id=change.pk)
    assert (notice.channel, notice.status, notice.detail) == ("", "skipped", "no_channel")
