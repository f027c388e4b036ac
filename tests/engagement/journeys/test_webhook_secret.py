"""The webhook signing secret: encrypted at rest (drafts and versions), never in a page for any role, replaceable
but never shown back; deliveries are still signed with it (a local receiver checks the HMAC itself); the data
migration encrypts secrets left in clear."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.apps import apps as django_apps
from django.urls import reverse

from siyu.engagement.journeys import webhook_secrets
from siyu.engagement.journeys.models import Journey, JourneyMessage, JourneyVersion, MessageStatus
from siyu.engagement.journeys.runner import run_until
from siyu.engagement.segments.models import Segment, SegmentMember
from tests.engagement.journeys.conftest import NOON

pytestmark = pytest.mark.django_db

FIRST, SECOND, TOO_SHORT = "first-Secret-71", "second-Secret-82", "q7Zx9w"


class _Receiver(BaseHTTPRequestHandler):
    """Accepts a delivery only when its signature is HMAC-SHA256(secret, timestamp + "." + body)."""

    secret = b""
    verified: list[str] = []
    rejected = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(self.secret, self.headers["X-Siyu-Timestamp"].encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, self.headers.get("X-Siyu-Signature", "")):
            _Receiver.verified.append(self.headers["X-Siyu-Delivery"])
            self.send_response(200)
        else:
            _Receiver.rejected += 1
            self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


def _everything_stored() -> str:
    rows = [*Journey.objects.values_list("definition", flat=True),
            *JourneyVersion.objects.values_list("definition", flat=True)]
    return json.dumps(rows, ensure_ascii=False)


def _tokens() -> list[str]:
    found = []
    for definition in [*Journey.objects.values_list("definition", flat=True),
                       *JourneyVersion.objects.values_list("definition", flat=True)]:
        found += [step["secret_enc"] for step in definition["steps"] if step.get("secret_enc")]
    return found


def _pages_show_no_secret(clients, journey, customer, *secrets: str) -> None:
    urls = [reverse("console:journeys"), reverse("console:journey_edit", args=[journey.pk]),
            reverse("console:journey_report", args=[journey.pk]),
            reverse("console:customer_detail", args=[customer.pk])]
    for role, client in clients.items():
        for url in urls:
            html = client.get(url).content.decode()
            for secret in (*secrets, *_tokens()):
                assert secret not in html, (role, url)


def _webhook_step(url: str, **extra) -> dict:
    return {"id": "h", "type": "webhook", "url": url, **extra}


def test_secret_encrypted_never_shown_replaceable_and_still_signs(clients, workspace, account, follow):
    customer = follow(1)[0]
    segment = Segment.objects.create(workspace=workspace, name="钩子", definition={})
    SegmentMember.objects.create(segment=segment, customer=customer, entered_at=NOON)
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.secret, _Receiver.verified, _Receiver.rejected = SECOND.encode(), [], 0
    url = f"http://127.0.0.1:{server.server_port}/hook"
    trigger = {"type": "segment_entered", "segment_id": segment.pk, "include_existing": True}
    admin = clients["admin"]
    try:
        admin.post(reverse("console:journeys"), {"name": "回调"})
        journey = Journey.objects.get(name="回调")
        edit_url = reverse("console:journey_edit", args=[journey.pk])

        def save(step: dict, action: str = "save"):
            return admin.post(edit_url, {"name": "回调", "action": action,
                                         "definition": json.dumps({"trigger": trigger, "steps": [step]})})

        assert save(_webhook_step(url, secret=FIRST)).status_code == 302
        journey.refresh_from_db()
        stored = journey.definition["steps"][0]
        assert "secret" not in stored and webhook_secrets.decrypt(stored["secret_enc"]) == FIRST
        assert FIRST not in _everything_stored()
        editor = admin.get(edit_url).content.decode()
        assert '"secret_set": true' in editor
        _pages_show_no_secret(clients, journey, customer, FIRST)

        # the editor posts back what it was given (no secret, "set"): the stored secret stays
        assert save(_webhook_step(url, secret_set=True)).status_code == 302
        journey.refresh_from_db()
        assert webhook_secrets.decrypt(journey.definition["steps"][0]["secret_enc"]) == FIRST
        # a client cannot smuggle a ciphertext of its own: only a typed secret replaces the stored one
        save(_webhook_step(url, secret_enc=webhook_secrets.encrypt("chosen-by-client")))
        journey.refresh_from_db()
        assert webhook_secrets.decrypt(journey.definition["steps"][0]["secret_enc"]) == FIRST

        # too short: refused with the reason, nothing changed, the typed value not echoed in the page
        refused = save(_webhook_step(url, secret=TOO_SHORT))
        assert refused.status_code == 400 and "签名密钥至少 8 个字符" in refused.content.decode()
        assert TOO_SHORT not in refused.content.decode()
        journey.refresh_from_db()
        assert webhook_secrets.decrypt(journey.definition["steps"][0]["secret_enc"]) == FIRST

        # replaced, then activated: the version holds only the new secret, encrypted
        assert save(_webhook_step(url, secret=SECOND), action="activate").status_code == 302
        version = JourneyVersion.objects.get(journey=journey)
        assert webhook_secrets.decrypt(version.definition["steps"][0]["secret_enc"]) == SECOND
        assert FIRST not in _everything_stored() and SECOND not in _everything_stored()
        _pages_show_no_secret(clients, journey, customer, FIRST, SECOND)
        # a refused page re-renders the posted draft: still no secret in it
        bad = admin.post(edit_url, {"action": "activate", "definition": json.dumps(
            {"trigger": {"type": "segment_entered"}, "steps": [_webhook_step(url, secret=SECOND)]})})
        assert bad.status_code == 400 and SECOND not in bad.content.decode()

        run_until(start=NOON, until=NOON + timedelta(minutes=10))
    finally:
        server.shutdown()
        server.server_close()
    message = JourneyMessage.objects.get(channel="webhook")
    assert message.status == MessageStatus.SENT and _Receiver.rejected == 0
    assert _Receiver.verified == [message.idempotency_key]


def test_a_webhook_without_a_secret_cannot_be_activated(workspace):
    from siyu.core.errors import SiyuError
    from siyu.engagement.journeys import services

    journey = services.journey_create(workspace=workspace, name="无密钥", definition={
        "trigger": {"type": "event", "event_type": "page_view"},
        "steps": [_webhook_step("https://hooks.example/x")]})
    with pytest.raises(SiyuError) as refused:
        services.journey_activate(workspace=workspace, journey_id=journey.pk)
    assert refused.value.code == "journey_invalid" and "签名密钥" in refused.value.message_zh


def test_data_migration_encrypts_secrets_left_in_clear(workspace):
    migration = importlib.import_module("siyu.engagement.journeys.migrations.0002_encrypt_webhook_secrets")
    legacy = {"trigger": {"type": "event", "event_type": "page_view"},
              "steps": [_webhook_step("https://hooks.example/x", secret=FIRST, next="t"),
                        {"id": "t", "type": "task", "title": "回访"}]}
    journey = Journey.objects.create(workspace=workspace, name="旧", definition=legacy, version=1,
                                     created_at=NOON, updated_at=NOON)
    JourneyVersion.objects.create(journey=journey, version=1, definition=legacy, activated_at=NOON)
    migration.encrypt_secrets(django_apps, None)
    assert FIRST not in _everything_stored()
    journey.refresh_from_db()
    for definition in (journey.definition, JourneyVersion.objects.get(journey=journey).definition):
        assert webhook_secrets.step_secret(definition["steps"][0]) == FIRST
        assert definition["steps"][1] == legacy["steps"][1]
    migration.encrypt_secrets(django_apps, None)  # a second pass changes nothing
    journey.refresh_from_db()
    assert webhook_secrets.step_secret(journey.definition["steps"][0]) == FIRST
