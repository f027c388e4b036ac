import orjson
import pytest

from siyu.customers.models import Event

pytestmark = pytest.mark.django_db


def post(client, secret, body):
    return client.post("/api/v1/events/batch", data=orjson.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {secret}")


def event(event_id, at, **extra):
    return {"event_id": event_id, "type": "page_view", "occurred_at": at.isoformat(),
            "identities": [{"kind": "openid", "namespace": "mp", "value": "o-1"}], **extra}


def test_accepts_and_deduplicates(client, api_secret, recent):
    first = post(client, api_secret, {"events": [event("e1", recent), event("e2", recent)]})
    assert first.status_code == 200, first.content
    assert first.json()["accepted"] == 2
    replay = post(client, api_secret, {"events": [event("e1", recent), event("e2", recent)]})
    assert replay.json()["duplicate"] == 2 and replay.json()["accepted"] == 0
    assert Event.objects.count() == 2


def test_rejects_unknown_type_and_keeps_the_rest(client, api_secret, recent):
    bad = event("e3", recent, type="no_such_type")
    response = post(client, api_secret, {"events": [bad, event("e4", recent)]})
    body = response.json()
    assert body["results"][0]["status"] == "rejected"
    assert body["results"][0]["code"] == "unknown_event_type"
    assert body["results"][1]["status"] == "accepted"
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e4"]


def test_unauthenticated_is_refused(client, recent):
    response = client.post("/api/v1/events/batch", data=orjson.dumps({"events": [event("e5", recent)]}),
                           content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert Event.objects.count() == 0
