"""The message bridge and the event path: authenticated, idempotent by msg_id, moderated once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from siyu.core.domain_events import EVENTS_INGESTED, subscribe, unsubscribe
from siyu.customers.ingestion import events_ingest
from siyu.customers.models import CustomerTag
from siyu.engagement.communities.messages import messages_record
from siyu.engagement.communities.models import GroupMessage, ModerationRecord
from siyu.engagement.communities.services import (
    VIOLATION_TAG,
    bridge_secret_rotate,
    community_create,
    community_rule_save,
)
from siyu.engagement.inbox.models import StaffTask

from .conftest import CORP, customer_make

URL = "/api/v1/communities/messages"


@pytest.fixture
def community(workspace, wecom_group):
    return community_create(workspace=workspace, name="护肤交流群", type="exchange", chat_id="wrChat1")


def message(msg_id, text, sender="wm1", **extra):
    return {"msg_id": msg_id, "chat_id": "wrChat1", "sender": {"id": sender, "type": "external"},
            "msg_type": "text", "content": text, "sent_at": int(time.time()) - 5, **extra}


def signed_post(client, key_id, secret, body: dict, *, stamp=None, signature=None):
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return client.post(URL, raw, content_type="application/json", HTTP_X_SIYU_BRIDGE_KEY=key_id,
                       HTTP_X_SIYU_TIMESTAMP=stamp, HTTP_X_SIYU_SIGNATURE=signature or digest)


def test_bridge_with_hmac_is_idempotent_and_moderates_once(workspace, community):
    key_id, secret = bridge_secret_rotate(workspace=workspace)
    client = Client()
    body = {"messages": [message("m1", "大家好，今天的面霜真好用"),
                         message("m2", "代购正品，加我微信 beauty_2024", sender="wm2"),
                         message("m3", "好的", sender="zhangsan") | {"sender": {"id": "zhangsan", "type": "staff"}}]}
    first = signed_post(client, key_id, secret, body)
    assert first.status_code == 200, first.content
    assert (first.json()["accepted"], first.json()["duplicate"]) == (3, 0)
    assert first.json()["results"][1]["violations"] == ["keyword", "contact"]
    records = ModerationRecord.objects.filter(community=community)
    assert sorted(records.values_list("kind", flat=True)) == ["contact", "keyword"]
    tasks = StaffTask.objects.filter(workspace=workspace, source="community")
    assert tasks.count() == 1 and tasks.get().ref.startswith(f"warn:{community.pk}:wm2:")  # one warning a day
    offender = GroupMessage.objects.get(msg_id="m2").customer
    assert offender is not None and CustomerTag.objects.filter(customer=offender, tag__name=VIOLATION_TAG).exists()
    assert GroupMessage.objects.get(msg_id="m3").is_staff and GroupMessage.objects.get(msg_id="m3").customer is None

    again = signed_post(client, key_id, secret, body)
    assert (again.json()["accepted"], again.json()["duplicate"]) == (0, 3)
    assert GroupMessage.objects.count() == 3 and records.count() == 2 and tasks.count() == 1


def test_bridge_refuses_bad_credentials_and_changes_nothing(workspace, community, api_secret):
    key_id, secret = bridge_secret_rotate(workspace=workspace)
    client = Client()
    body = {"messages": [message("x1", "你好")]}
    assert signed_post(client, key_id, "wrong", body).status_code == 401
    assert signed_post(client, key_id, secret, body, stamp=int(time.time()) - 3600).json()["code"] == "unauthorized"
    assert signed_post(client, "cb_unknown", secret, body).status_code == 401
    assert client.post(URL, json.dumps(body), content_type="application/json").status_code == 401
    assert client.post(URL, json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION="Bearer sk_bad.bad").status_code == 401
    assert not GroupMessage.objects.exists()
    ok = client.post(URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_secret}")
    assert ok.status_code == 200 and ok.json()["accepted"] == 1


def test_bad_messages_are_rejected_with_codes(workspace, community, api_secret):
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_secret}"}
    for payload, status, code in [
        (b"{not json", 400, "invalid_json"), (b"[]", 400, "invalid_batch"), (b'{"messages": []}', 400, "empty_batch"),
        (json.dumps({"messages": [message(f"m{i}", "x") for i in range(501)]}).encode(), 413, "batch_too_large"),
    ]:
        answer = client.post(URL, payload, content_type="application/json", **auth)
        assert (answer.status_code, answer.json()["code"]) == (status, code)
    now = int(time.time())
    batch = [message("ok", "正常发言"), {"chat_id": "wrChat1"}, message("c1", "x", chat_id="nochat"),
             message("t1", "x", sent_at=now + 3600), message("t2", "x", sent_at="2026-01-01T00:00:00"),
             message("s1", "x") | {"sender": {"id": "wm1", "type": "robot"}}, message("q1", "x", qr="yes"), "text"]
    results = client.post(URL, json.dumps({"messages": batch}), content_type="application/json", **auth).json()
    assert [r["status"] for r in results["results"]] == ["accepted"] + ["rejected"] * 7
    assert [r.get("code") for r in results["results"][1:]] == [
        "msg_id_required", "community_unknown", "sent_at_out_of_range", "sent_at_timezone", "sender_type_invalid",
        "qr_invalid", "message_invalid"]
    assert list(GroupMessage.objects.values_list("msg_id", flat=True)) == ["ok"]


def test_repeat_and_flood_and_escalation_to_a_removal_task(workspace, community):
    community_rule_save(workspace=workspace, community=community, kind="flood", threshold=3, window_seconds=60,
                        actions=["warn"])
    start = int(time.time()) - 100
    batch = [message(f"r{i}", "快来买", sent_at=start + i) for i in range(5)]
    outcomes = messages_record(workspace=workspace, messages=batch)
    kinds = [sorted(outcome.violations) for outcome in outcomes]
    assert kinds[0] == kinds[1] == [] and kinds[2] == ["repeat"] and kinds[3] == ["flood", "repeat"]
    records = list(ModerationRecord.objects.filter(sender_id="wm1").order_by("violation_no"))
    assert [r.violation_no for r in records] == [1, 2, 3, 4, 5]
    assert [r.escalated for r in records] == [False, False, True, True, True]  # escalate_after = 3
    removal = StaffTask.objects.get(workspace=workspace, ref__startswith=f"remove:{community.pk}:wm1:")
    assert "不允许应用移除" in removal.body


def test_group_messages_through_the_event_api(workspace, community, django_capture_on_commit_callbacks):
    delivered = []

    def spy(**payload):
        delivered.append(payload)

    subscribe(EVENTS_INGESTED, spy)
    try:
        now = timezone.now()
        event = {"event_id": "ev-gm-1", "type": "group_message", "occurred_at": now.isoformat(),
                 "identities": [{"kind": "external_userid", "namespace": CORP, "value": "wm3"}],
                 "properties": {"group_id": "wrChat1", "text": "请看 www.spam.cn 领红包"}}
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                events_ingest(workspace=workspace, events=[event])
    finally:
        unsubscribe(EVENTS_INGESTED, spy)
    assert delivered
    stored = GroupMessage.objects.get()
    assert (stored.msg_id, stored.source, stored.content) == ("event:ev-gm-1", "event", "请看 www.spam.cn 领红包")
    assert list(ModerationRecord.objects.values_list("kind", flat=True)) == ["link"]


def test_join_and_leave_events_for_a_group_tracked_by_hand(workspace, django_capture_on_commit_callbacks):
    from siyu.engagement.communities.models import CommunityMember

    hand = community_create(workspace=workspace, name="线下门店群", type="vip")
    customer = customer_make(workspace, "wmHand")
    now = timezone.now()

    def send(event_id, kind, at):
        with django_capture_on_commit_callbacks(execute=True):
            events_ingest(workspace=workspace, events=[{
                "event_id": event_id, "type": kind, "occurred_at": at.isoformat(),
                "identities": [{"kind": "external_userid", "namespace": CORP, "value": "wmHand"}],
                "properties": {"group_id": "x", "community_id": hand.pk}}])

    send("j1", "group_join", now)
    member = CommunityMember.objects.get(community=hand)
    assert member.customer_id == customer.pk and member.left_at is None
    send("l1", "group_leave", now + timedelta(seconds=5))
    member.refresh_from_db()
    assert member.left_at == now + timedelta(seconds=5)
    send("l1", "group_leave", now + timedelta(seconds=5))  # a replay changes nothing
    assert CommunityMember.objects.get(pk=member.pk).left_at == member.left_at
