"""Journeys end to end on SQLite and PostgreSQL: every step type, messages arriving in the WeChat simulator,
replayed triggers, the crash window of a send, caps and quiet hours."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.db.models import Count

from siyu.core import domain_events
from siyu.customers.models import ConsentRecord, CustomerTag
from siyu.customers.tagging import customer_tag_add, tag_create, tag_group_create
from siyu.engagement.inbox.models import StaffTask
from siyu.engagement.journeys import delivery, engine, triggers
from siyu.engagement.journeys.models import (
    JourneyMessage,
    JourneyRun,
    MessageStatus,
    RunStatus,
    StepExecution,
)
from siyu.engagement.journeys.runner import run_until
from siyu.engagement.journeys.selectors import journey_report
from siyu.engagement.segments.models import Segment, SegmentMember
from siyu.loyalty.models import PointsTransaction
from tests.commerce.promotions_fixtures import make_coupon_template
from tests.engagement.journeys.conftest import NOON, activate, sent_templates, template_step

pytestmark = pytest.mark.django_db


def segment_of(workspace, customers, name="新关注") -> Segment:
    segment = Segment.objects.create(workspace=workspace, name=name, definition={})
    SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c, entered_at=NOON) for c in customers])
    return segment


def seg_trigger(segment, **extra) -> dict:
    return {"type": "segment_entered", "segment_id": segment.pk, "include_existing": True, **extra}


def test_segment_journey_sends_template_messages_that_arrive_in_the_simulator(workspace, wechat_sim, account, follow):
    customers = follow(3)
    segment = segment_of(workspace, customers)
    journey = activate(workspace, {"trigger": seg_trigger(segment), "steps": [
        {"id": "w", "type": "wait", "minutes": 30, "next": "m1"}, template_step(account)]})
    assert JourneyRun.objects.filter(journey=journey).count() == 3
    run_until(start=NOON, until=NOON + timedelta(minutes=20))
    assert sent_templates(wechat_sim, account) == []  # still waiting
    run_until(start=NOON + timedelta(minutes=20), until=NOON + timedelta(hours=2))
    sent = sent_templates(wechat_sim, account)
    assert len(sent) == 3
    assert sent[0]["payload"]["data"]["first"] == {"value": "您好，新品上市"}
    assert set(JourneyMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
    assert set(JourneyRun.objects.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    report = journey_report(journey=journey)
    assert report["total"]["entered"] == 3 and report["messages"][MessageStatus.SENT] == 3
    # running again sends nothing more
    run_until(start=NOON + timedelta(hours=2), until=NOON + timedelta(days=2))
    assert len(sent_templates(wechat_sim, account)) == 3


def test_replayed_triggers_are_idempotent(workspace, account, follow, django_capture_on_commit_callbacks):
    customers = follow(3)
    segment = segment_of(workspace, [])
    journey = activate(workspace, {"trigger": seg_trigger(segment), "steps": [template_step(account)]})
    ids = [c.pk for c in customers]
    for _ in range(3):
        triggers.on_segment_changed(workspace_id=workspace.pk, segment_id=segment.pk, customer_ids=ids[:2],
                                    entered=True, now=NOON)
    assert JourneyRun.objects.filter(journey=journey).count() == 2
    # the same through the published domain event (delivered on commit), replayed: the third enters once
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            domain_events.publish(triggers.SEGMENT_ENTERED, workspace_id=workspace.pk, segment_id=segment.pk,
                                  customer_ids=ids)
    assert JourneyRun.objects.filter(journey=journey).count() == 3
    engine.runs_process(now=NOON)
    engine.runs_process(now=NOON)
    assert JourneyMessage.objects.count() == 3


def test_every_entry_journey_takes_one_run_per_event(workspace, account, follow):
    from siyu.customers.ingestion import events_ingest  # noqa: F401 - the public path is exercised elsewhere
    from siyu.customers.models import Event, Identity

    customer = follow(1)[0]
    identity = Identity.objects.get(customer=customer, kind="openid")
    journey = activate(workspace, {"trigger": {"type": "event", "event_type": "cart_abandoned", "reentry": "every"},
                                   "steps": [{"id": "t", "type": "task", "title": "跟进弃购"}]})
    for index in range(2):
        Event.objects.create(workspace=workspace, event_id=f"e{index}", type="cart_abandoned", occurred_at=NOON,
                             received_at=NOON, identity=identity)
    for _ in range(2):  # replay
        triggers.on_events_ingested(workspace_id=workspace.pk, customer_ids=[customer.pk], now=NOON)
    assert sorted(JourneyRun.objects.filter(journey=journey).values_list("entry_key", flat=True)) == [
        "event:e0", "event:e1"]


def test_condition_split_and_actions(workspace, wechat_sim, account, follow):
    customers = follow(40)
    group = tag_group_create(workspace=workspace, name="旅程")
    vip = tag_create(workspace=workspace, group_id=group.pk, name="VIP")
    touched = tag_create(workspace=workspace, group_id=group.pk, name="已触达")
    for customer in customers[:10]:
        customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=vip.pk)
    coupon = make_coupon_template(workspace, name="回归券", per_customer_limit=1)
    segment = segment_of(workspace, customers)
    journey = activate(workspace, {"trigger": seg_trigger(segment), "steps": [
        {"id": "c", "type": "condition", "check": {"kind": "tag", "tag_id": vip.pk}, "yes": "p", "no": "ab"},
        {"id": "p", "type": "points", "amount": 50, "next": "cp"},
        {"id": "cp", "type": "coupon", "template_id": coupon.pk, "next": "tg"},
        {"id": "tg", "type": "tag", "action": "add", "tag_id": touched.pk},
        {"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 50, "next": "ma"},
                                                    {"name": "B", "weight": 50, "next": "tk"}]},
        template_step(account, "ma"),
        {"id": "tk", "type": "task", "title": "电话回访", "level": "junior", "sla_minutes": 30}]})
    run_until(start=NOON, until=NOON + timedelta(hours=1))
    runs = JourneyRun.objects.filter(journey=journey)
    assert set(runs.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    assert StepExecution.objects.filter(step_id="c", outcome="yes").count() == 10
    assert PointsTransaction.objects.filter(ref__startswith="journey:").count() == 10
    assert CustomerTag.objects.filter(tag=touched).count() == 10
    from siyu.commerce.promotions.models import Coupon
    assert Coupon.objects.filter(template=coupon).count() == 10
    variants = dict(runs.exclude(variant="").values_list("variant").annotate(n=Count("pk")))
    assert set(variants) == {"A", "B"} and sum(variants.values()) == 30
    assert len(sent_templates(wechat_sim, account)) == variants["A"]
    assert StaffTask.objects.filter(source="journey").count() == variants["B"]
    report = journey_report(journey=journey)
    assert set(report["variants"]) == {"A", "B", "—"}  # — : the VIPs, who never reached the split
    assert report["variants"]["A"]["entered"] == variants["A"]
    # the same customer always takes the same branch
    again = {r.customer_id: r.variant for r in runs}
    assert all(engine.rules.weighted_choice(weights=[("A", 50), ("B", 50)], key=f"{journey.pk}:ab",
                                            customer_id=cid) == v for cid, v in again.items() if v)


def test_721_routing_creates_staff_tasks_with_sla_and_escalates(workspace, account, follow):
    customers = follow(40)
    segment = segment_of(workspace, customers)
    journey = activate(workspace, {"trigger": seg_trigger(segment), "steps": [
        {"id": "r", "type": "route721", "weights": {"auto": 70, "junior": 20, "expert": 10}, "title": "回访客户",
         "sla_junior": 60, "sla_expert": 240, "auto": "m", "next": ""},
        template_step(account, "m")]})
    run_until(start=NOON, until=NOON + timedelta(minutes=5))
    routes = dict(JourneyRun.objects.filter(journey=journey).values_list("route").annotate(n=Count("pk")))
    assert sum(routes.values()) == 40 and routes["auto"] > routes.get("junior", 0) > 0
    tasks = StaffTask.objects.filter(source="journey")
    assert tasks.count() == routes.get("junior", 0) + routes.get("expert", 0)
    junior = tasks.filter(level="junior").first()
    assert junior.due_at == NOON + timedelta(minutes=60)
    # past the SLA the junior task escalates to the experts
    assert engine.tasks_escalate(now=NOON + timedelta(minutes=61)) >= 1
    junior.refresh_from_db()
    assert junior.level == "expert" and "escalated_at" in junior.payload
    assert journey_report(journey=journey)["routes"]["auto"] == routes["auto"]


def test_quiet_hours_defer_to_eight_and_caps_hold(workspace, wechat_sim, account, follow):
    customer = follow(1)[0]
    late = NOON.replace(hour=23)
    journeys = []
    for index in range(3):  # three journeys each want to message the same customer
        segment = segment_of(workspace, [customer], name=f"s{index}")
        journeys.append(activate(workspace, {"trigger": seg_trigger(segment), "steps": [template_step(account)]},
                                 name=f"j{index}", now=late))
    run_until(start=late, until=late + timedelta(minutes=30))
    assert sent_templates(wechat_sim, account) == []
    statuses = sorted(JourneyMessage.objects.values_list("status", flat=True))
    assert statuses == [MessageStatus.CAPPED, MessageStatus.CAPPED, MessageStatus.DEFERRED]
    deferred = JourneyMessage.objects.get(status=MessageStatus.DEFERRED)
    assert deferred.due_at == (late + timedelta(days=1)).replace(hour=8, minute=0)
    run_until(start=late + timedelta(minutes=30), until=late + timedelta(hours=10))
    sent = JourneyMessage.objects.get(status=MessageStatus.SENT)
    assert sent.sent_at == deferred.due_at and len(sent_templates(wechat_sim, account)) == 1


def test_unsubscribed_and_unfollowed_customers_get_nothing(workspace, wechat_sim, account, follow):
    from siyu.wechat_sim import mp

    stays, withdrew, unfollowed = follow(3)
    ConsentRecord.objects.create(workspace=workspace, customer=withdrew, purpose="marketing", granted=False,
                                 recorded_at=NOON - timedelta(days=1))
    user = wechat_sim.state.user("f2")
    mp.unsubscribe(wechat_sim, user, account.appid)
    segment = segment_of(workspace, [stays, withdrew, unfollowed])
    activate(workspace, {"trigger": seg_trigger(segment), "steps": [template_step(account)]})
    run_until(start=NOON, until=NOON + timedelta(minutes=5))
    by_customer = dict(JourneyMessage.objects.values_list("customer_id", "status"))
    assert by_customer == {stays.pk: MessageStatus.SENT, withdrew.pk: MessageStatus.SUPPRESSED,
                           unfollowed.pk: MessageStatus.SUPPRESSED}
    assert len(sent_templates(wechat_sim, account)) == 1


def test_crash_after_wechat_accepted_never_resends(workspace, wechat_sim, account, follow, monkeypatch):
    customers = follow(2)
    segment = segment_of(workspace, customers)
    activate(workspace, {"trigger": seg_trigger(segment), "steps": [template_step(account)]})
    engine.runs_process(now=NOON)
    real_record = delivery._record

    def crash(message, **kwargs):
        if kwargs.get("status") == MessageStatus.SENT:
            raise SystemExit("worker killed after WeChat answered")  # dies before writing the outcome
        return real_record(message, **kwargs)

    monkeypatch.setattr(delivery, "_record", crash)
    with pytest.raises(SystemExit):
        delivery.messages_deliver(now=NOON)
    monkeypatch.setattr(delivery, "_record", real_record)
    assert len(sent_templates(wechat_sim, account)) == 1
    # retries: immediately (the lease still holds) and after the lease (marked unknown, not resent)
    delivery.messages_deliver(now=NOON + timedelta(minutes=1))
    delivery.messages_deliver(now=NOON + timedelta(minutes=11))
    delivery.messages_deliver(now=NOON + timedelta(minutes=30))
    statuses = sorted(JourneyMessage.objects.values_list("status", flat=True))
    assert statuses == [MessageStatus.SENT, MessageStatus.UNKNOWN]
    assert len(sent_templates(wechat_sim, account)) == 2  # one each, nobody twice
    assert len({item["touser"] for item in sent_templates(wechat_sim, account)}) == 2


def test_crash_mid_step_rolls_back_and_retry_does_the_step_once(workspace, account, follow, monkeypatch):
    customer = follow(1)[0]
    segment = segment_of(workspace, [customer])
    activate(workspace, {"trigger": seg_trigger(segment), "steps": [
        {"id": "p", "type": "points", "amount": 10, "next": "m"}, template_step(account, "m", next_step="t"),
        {"id": "t", "type": "task", "title": "回访"}]})
    real = engine._plan_message

    def crash(*args, **kwargs):
        raise SystemExit("killed while planning")

    monkeypatch.setattr(engine, "_plan_message", crash)
    with pytest.raises(SystemExit):
        engine.run_advance(run_id=JourneyRun.objects.get().pk, now=NOON)
    assert not PointsTransaction.objects.filter(ref__startswith="journey:").exists()  # rolled back with the step
    monkeypatch.setattr(engine, "_plan_message", real)
    run_until(start=NOON, until=NOON + timedelta(minutes=5))
    run_until(start=NOON + timedelta(minutes=5), until=NOON + timedelta(minutes=30))
    assert PointsTransaction.objects.filter(ref__startswith="journey:").count() == 1
    assert JourneyMessage.objects.count() == 1 and StaffTask.objects.count() == 1
    assert StepExecution.objects.count() == 3


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((dict(self.headers), body))
        status = 503 if _Hook.fail_first > 0 else 200
        _Hook.fail_first -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_is_signed_retried_and_recorded(workspace, account, follow):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received, _Hook.fail_first = [], 1
    try:
        customer = follow(1)[0]
        segment = segment_of(workspace, [customer])
        secret = "s3cret-key"
        activate(workspace, {"trigger": seg_trigger(segment), "steps": [
            {"id": "h", "type": "webhook", "url": f"http://127.0.0.1:{server.server_port}/hook", "secret": secret}]})
        run_until(start=NOON, until=NOON + timedelta(minutes=10))
    finally:
        server.shutdown()
    message = JourneyMessage.objects.get(channel="webhook")
    assert message.status == MessageStatus.SENT and message.attempts == 2 and message.provider_ref == "HTTP 200"
    headers, body = _Hook.received[-1]
    assert headers["X-Siyu-Signature"] == delivery.webhook_signature(secret, body, headers["X-Siyu-Timestamp"])
    assert headers["X-Siyu-Delivery"] == message.idempotency_key
    assert json.loads(body)["customer_id"] == customer.pk


def test_tag_change_triggers_a_journey(workspace, account, follow, django_capture_on_commit_callbacks):
    customer = follow(1)[0]
    group = tag_group_create(workspace=workspace, name="兴趣")
    tag = tag_create(workspace=workspace, group_id=group.pk, name="护肤")
    journey = activate(workspace, {"trigger": {"type": "tag", "tag_id": tag.pk, "change": "added"},
                                   "steps": [template_step(account)]})
    with django_capture_on_commit_callbacks(execute=True):
        customer_tag_add(workspace=workspace, customer_id=customer.pk, tag_id=tag.pk)
    assert JourneyRun.objects.filter(journey=journey, customer=customer).count() == 1


def test_layer_change_and_goal_conversion(workspace, account, follow):
    from siyu.commerce.orders.models import Order
    from tests.commerce.orders_fixtures import make_buyer  # noqa: F401 - orders made directly below

    a, b = follow(2)
    journey = activate(workspace, {"trigger": {"type": "layer", "kind": "lifecycle", "to": "silent"},
                                   "goal": {"event_type": "order_paid", "days": 7},
                                   "steps": [template_step(account)]})
    triggers.on_layer_changed(workspace_id=workspace.pk, kind="lifecycle",
                              moves=[(a.pk, "active", "silent"), (b.pk, "new", "active")], now=NOON)
    run = JourneyRun.objects.get(journey=journey)
    assert run.customer_id == a.pk
    Order.objects.create(workspace=workspace, customer=a, number="J1", subtotal_fen=19900, total_fen=19900,
                         paid_fen=19900, pay_expires_at=NOON, paid_at=NOON + timedelta(days=2),
                         order_status="paid", payment_status="paid")
    report = journey_report(journey=journey)
    assert report["total"]["converted"] == 1 and report["total"]["revenue_fen"] == 19900


def test_birthday_date_trigger_enters_once_a_year(workspace, account, follow):
    customer = follow(1)[0]
    customer.attributes = {"birthday": "1990-11-25"}
    customer.save(update_fields=["attributes"])
    journey = activate(workspace, {"trigger": {"type": "date", "kind": "birthday", "time": "10:00"},
                                   "steps": [template_step(account)]})
    run_until(start=NOON, until=NOON + timedelta(days=2))
    assert JourneyRun.objects.filter(journey=journey).count() == 1
    assert JourneyMessage.objects.get().sent_at.astimezone(NOON.tzinfo).hour == 10
