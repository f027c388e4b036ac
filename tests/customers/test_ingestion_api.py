"""The batch ingestion API over HTTP (Django test client), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from siyu.customers import ingestion
from siyu.customers.last_seen import last_seen_apply
from siyu.customers.models import Customer, Event, Identity
from tests.customers.test_ingestion_support import URL, assert_error, event, post, snapshot

pytestmark = pytest.mark.django_db


def test_accepts_and_answers_per_event(client, api_secret, recent, workspace):
    response = post(client, api_secret, {"events": [
        event("e1", recent),
        event("e2", recent, type="order_paid", properties={"order_id": "o1", "amount_fen": 1990},
              identities=[{"kind": "openid", "namespace": "mp", "value": "o-1"},
                          {"kind": "phone", "value": "138 0013 8000"}]),
    ]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 0)
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]
    assert body["results"][0]["customer_id"] == body["results"][1]["customer_id"]
    stored = Event.objects.get(event_id="e2")
    assert stored.workspace_id == workspace.pk and stored.type == "order_paid"
    assert stored.properties == {"order_id": "o1", "amount_fen": 1990}
    assert stored.occurred_at == recent.replace(microsecond=recent.microsecond)
    customer = Customer.objects.get()
    assert customer.pk == body["results"][0]["customer_id"]
    assert customer.last_seen_at == recent
    phone = Identity.objects.get(kind="phone")
    assert "13800138000" not in phone.value  # stored as keyed hash only


def test_replayed_batch_is_idempotent_and_changes_no_row(client, api_secret, recent):
    batch = {"events": [event("r1", recent), event("r2", recent - timedelta(minutes=5), identities=[
        {"kind": "unionid", "value": "u-9"}, {"kind": "openid", "namespace": "mp", "value": "o-9"}])]}
    first = post(client, api_secret, batch).json()
    assert first["accepted"] == 2
    before = snapshot()
    replay = post(client, api_secret, batch)
    assert replay.status_code == 200
    body = replay.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (0, 2, 0)
    assert {r["status"] for r in body["results"]} == {"duplicate"}
    assert snapshot() == before


def test_replay_with_different_identities_still_changes_nothing(client, api_secret, recent):
    post(client, api_secret, {"events": [event("x1", recent)]})
    before = snapshot()
    other = event("x1", recent, identities=[{"kind": "unionid", "value": "someone-else"}])
    assert post(client, api_secret, {"events": [other]}).json()["duplicate"] == 1
    assert snapshot() == before


def test_duplicate_ids_inside_one_batch(client, api_secret, recent):
    body = post(client, api_secret, {"events": [event("d1", recent), event("d1", recent), event("d2", recent)]}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate", "accepted"]
    assert Event.objects.filter(event_id="d1").count() == 1


def test_lost_race_is_redone_without_side_effects(client, api_secret, recent, monkeypatch):
    """A concurrent request stores our id between our check and our insert: the batch is redone and the
    event reported as a duplicate, and the identities of the losing copy create no customer."""
    post(client, api_secret, {"events": [event("race", recent)]})
    before = snapshot()
    real = ingestion._existing_ids
    calls = []

    def blind_first_time(workspace_id, ids):
        calls.append(ids)
        return set() if len(calls) == 1 else real(workspace_id, ids)

    monkeypatch.setattr(ingestion, "_existing_ids", blind_first_time)
    body = post(client, api_secret, {"events": [
        event("race", recent, identities=[{"kind": "unionid", "value": "loser"}])]}).json()
    assert body["duplicate"] == 1 and len(calls) == 2
    assert snapshot() == before


@pytest.mark.parametrize("raw, code", [
    (b"{not json", "malformed_json"),
    (b"", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b'{"events": [1e999]}', "malformed_json"),
    (b"[]", "invalid_batch"),
    (b'"events"', "invalid_batch"),
    (b"42", "invalid_batch"),
    (b"null", "invalid_batch"),
    (b'{"evts": []}', "invalid_batch"),
    (b'{"events": {"event_id": "a"}}', "invalid_batch"),
    (b'{"events": "a"}', "invalid_batch"),
    (b'{"events": null}', "invalid_batch"),
    (b'{"events": []}', "empty_batch"),
])
def test_bad_bodies_are_refused_and_change_nothing(client, api_secret, raw, code):
    before = snapshot()
    assert_error(post(client, api_secret, None, raw=raw), 400, code)
    assert snapshot() == before


def test_too_many_events_is_413(client, api_secret, recent, settings):
    settings.SIYU_INGEST_MAX_EVENTS = 3
    before = snapshot()
    body = assert_error(post(client, api_secret, {"events": [event(f"m{n}", recent) for n in range(4)]}),
                        413, "batch_too_large")
    assert body["details"] == {"max_events": 3, "received": 4}
    assert snapshot() == before
    assert post(client, api_secret, {"events": [event(f"m{n}", recent) for n in range(3)]}).json()["accepted"] == 3


def test_too_many_bytes_is_413(client, api_secret, recent, settings):
    settings.SIYU_INGEST_MAX_BYTES = 2000
    before = snapshot()
    big = {"events": [event("b1", recent, properties={"title": "x" * 1000}),
                      event("b2", recent, properties={"title": "y" * 1000})]}
    assert_error(post(client, api_secret, big), 413, "batch_too_large")
    assert snapshot() == before


def _bad_events(now):
    ok = event("ok", now - timedelta(hours=1))
    with_ = lambda **changes: {**ok, **changes}  # noqa: E731
    without = lambda name: {k: v for k, v in ok.items() if k != name}  # noqa: E731
    return [
        ("not an object", ["a", "list"], "invalid_event"),
        ("event_id missing", without("event_id"), "invalid_event_id"),
        ("event_id a number", with_(event_id=12), "invalid_event_id"),
        ("event_id too long", with_(event_id="e" * 65), "invalid_event_id"),
        ("event_id with space", with_(event_id="a b"), "invalid_event_id"),
        ("event_id with comma", with_(event_id="a,b"), "invalid_event_id"),
        ("unknown type", with_(type="no_such_type"), "unknown_event_type"),
        ("type a list", with_(type=["page_view"]), "unknown_event_type"),
        ("timestamp missing", without("occurred_at"), "invalid_timestamp"),
        ("timestamp garbage", with_(occurred_at="yesterday"), "invalid_timestamp"),
        ("timestamp bool", with_(occurred_at=True), "invalid_timestamp"),
        ("timestamp huge epoch", with_(occurred_at=10**17), "invalid_timestamp"),
        ("future", with_(occurred_at=(now + timedelta(days=2)).isoformat()), "timestamp_in_future"),
        ("far future", with_(occurred_at="9999-12-31T23:59:59+00:00"), "timestamp_in_future"),
        ("ancient", with_(occurred_at="1999-01-01T00:00:00+08:00"), "timestamp_too_old"),
        ("year one", with_(occurred_at="0001-01-01T00:00:00"), "timestamp_too_old"),
        ("identities missing", without("identities"), "missing_identity"),
        ("identities not a list", with_(identities={"kind": "openid"}), "missing_identity"),
        ("identities empty", with_(identities=[]), "missing_identity"),
        ("identity not an object", with_(identities=["o-1"]), "invalid_identity"),
        ("identity kind unknown", with_(identities=[{"kind": "email", "value": "a@b"}]), "invalid_identity"),
        ("identity value a number", with_(identities=[{"kind": "unionid", "value": 5}]), "invalid_identity"),
        ("identity value blank", with_(identities=[{"kind": "unionid", "value": "  "}]), "invalid_identity"),
        ("openid without namespace", with_(identities=[{"kind": "openid", "value": "o"}]), "invalid_identity"),
        ("bad phone", with_(identities=[{"kind": "phone", "value": "12"}]), "invalid_phone"),
        ("properties a list", with_(properties=[1, 2]), "invalid_properties"),
        ("properties a string", with_(properties="{}"), "invalid_properties"),
        ("property wrong type", with_(type="order_paid", properties={"order_id": "o", "amount_fen": "19.90"}),
         "invalid_property"),
        ("negative money", with_(type="order_paid", properties={"order_id": "o", "amount_fen": -1}),
         "invalid_property"),
        ("bool as integer", with_(type="add_to_cart", properties={"product_id": "p", "quantity": True}),
         "invalid_property"),
        ("missing required property", with_(type="order_paid", properties={"order_id": "o"}), "missing_property"),
        ("properties too large", with_(properties={"blob": "x" * 9000}), "properties_too_large"),
        ("NUL in properties", with_(properties={"title": "a\x00b"}), "invalid_character"),
        ("NUL in utm", with_(utm={"source": "a\x00"}), "invalid_character"),
        ("utm not an object", with_(utm="xhs"), "invalid_utm"),
        ("utm value a number", with_(utm={"source": 3}), "invalid_utm"),
        ("utm too long", with_(utm={"source": "s" * 65}), "invalid_utm"),
        ("page_url a number", with_(page_url=7), "invalid_page_url"),
        ("channel a number", with_(channel=7), "invalid_channel"),
    ]


def test_each_bad_event_is_rejected_with_a_reason_and_the_rest_is_kept(client, api_secret, now):
    cases = _bad_events(now)
    batch = []
    for number, (_, raw, _) in enumerate(cases):
        if isinstance(raw, dict) and "event_id" in raw and raw["event_id"] == "ok":
            raw = {**raw, "event_id": f"bad-{number}"}
        batch.append(raw)
    batch.append(event("good", now - timedelta(minutes=1)))
    before_customers = Customer.objects.count()
    response = post(client, api_secret, {"events": batch})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rejected"] == len(cases) and body["accepted"] == 1
    for (label, _, code), result in zip(cases, body["results"], strict=False):
        assert result["status"] == "rejected", label
        assert result["code"] == code, (label, result)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in result["message"]), label
        assert result["message_en"].isascii(), label
    assert list(Event.objects.values_list("event_id", flat=True)) == ["good"]
    assert Customer.objects.count() == before_customers + 1


@pytest.mark.parametrize("headers", [
    {},
    {"HTTP_AUTHORIZATION": "Bearer sk_nope.nothing"},
    {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
    {"HTTP_AUTHORIZATION": "Bearer "},
])
def test_unauthenticated_is_refused_and_changes_nothing(client, recent, workspace, headers):
    before = snapshot()
    response = post(client, None, {"events": [event("u1", recent)]}, **headers)
    assert_error(response, 401, "unauthorized")
    assert snapshot() == before


def test_revoked_key_is_refused(client, api_secret, recent):
    from siyu.core.models import ApiKey

    ApiKey.objects.update(revoked_at=timezone.now())
    before = snapshot()
    assert_error(post(client, api_secret, {"events": [event("v1", recent)]}), 401, "unauthorized")
    assert snapshot() == before


def test_workspaces_are_independent(client, api_secret, other_workspace, workspace, recent):
    from siyu.core.services import api_key_create

    other_secret = api_key_create(workspace=other_workspace, name="b")[1]
    a = post(client, api_secret, {"events": [event("same", recent)]}).json()
    a_rows = list(Event.objects.filter(workspace=workspace).values_list())
    a_customers = list(Customer.objects.filter(workspace=workspace).values_list())
    # B sends the same event id and the same identity: B's own event and customer, A untouched and unseen.
    b = post(client, other_secret, {"events": [event("same", recent)]}).json()
    assert b["accepted"] == 1 and b["duplicate"] == 0
    assert b["results"][0]["customer_id"] != a["results"][0]["customer_id"]
    assert list(Event.objects.filter(workspace=workspace).values_list()) == a_rows
    assert list(Customer.objects.filter(workspace=workspace).values_list()) == a_customers
    assert Event.objects.filter(workspace=other_workspace, event_id="same").count() == 1
    assert Identity.objects.get(workspace=other_workspace).customer.workspace_id == other_workspace.pk
    # B's replay is B's duplicate; A's replay is A's.
    assert post(client, other_secret, {"events": [event("same", recent)]}).json()["duplicate"] == 1
    assert post(client, api_secret, {"events": [event("same", recent)]}).json()["duplicate"] == 1


def test_utm_from_object_and_page_url_and_channel_normalised(client, api_secret, recent):
    batch = {"events": [
        event("u-url", recent, page_url="https://shop.example.cn/p?utm_source=xhs&utm_medium=note"
              "&utm_campaign=spring&utm_content=c1&utm_term=%E9%9D%A2%E9%9C%9C"),
        event("u-obj", recent, utm={"source": "抖音", "medium": "video", "campaign": "618"}),
        event("u-both", recent, page_url="https://a.cn/?utm_source=baidu&utm_campaign=old",
              utm={"campaign": "new"}),
        event("u-channel", recent, channel="企业微信", utm={"source": "zhihu"}),
        event("u-custom", recent, channel="  MyOwnKOL "),
        event("u-none", recent),
    ]}
    assert post(client, api_secret, batch).json()["accepted"] == 6
    rows = {row.event_id: row for row in Event.objects.all()}
    url = rows["u-url"]
    assert (url.utm_source, url.utm_medium, url.utm_campaign, url.utm_content, url.utm_term) == (
        "xhs", "note", "spring", "c1", "面霜")
    assert url.channel == "xiaohongshu"
    assert (rows["u-obj"].utm_source, rows["u-obj"].utm_medium, rows["u-obj"].utm_campaign) == ("抖音", "video", "618")
    assert rows["u-obj"].channel == "douyin"
    assert (rows["u-both"].utm_source, rows["u-both"].utm_campaign, rows["u-both"].channel) == ("baidu", "new", "search")
    assert rows["u-channel"].channel == "wecom" and rows["u-channel"].utm_source == "zhihu"
    assert rows["u-custom"].channel == "myownkol"
    assert rows["u-none"].channel == "" and rows["u-none"].utm_source == ""
    assert Customer.objects.get().first_channel == "xiaohongshu"


def test_openapi_documents_the_batch_endpoint(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"][URL]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["events"]
    item = body["properties"]["events"]["items"]
    assert {"event_id", "type", "occurred_at", "identities"} <= set(item["required"])
    assert {"200", "400", "401", "413"} <= set(operation["responses"])
    assert operation["security"]


def test_event_types_lists_the_catalogue(client, api_secret):
    response = client.get("/api/v1/event-types", HTTP_AUTHORIZATION=f"Bearer {api_secret}")
    names = {item["name"] for item in response.json()}
    assert {"page_view", "order_paid"} <= names
    assert client.get("/api/v1/event-types").status_code == 401


def test_epoch_millis_and_naive_times(client, api_secret, now):
    moment = now - timedelta(hours=2)
    body = post(client, api_secret, {"events": [
        {**event("ms", moment), "occurred_at": int(moment.timestamp() * 1000)},
        {**event("naive", moment), "occurred_at": moment.astimezone(timezone.get_fixed_timezone(480))
         .replace(tzinfo=None).isoformat()},
    ]}).json()
    assert body["accepted"] == 2, body
    stored = dict(Event.objects.values_list("event_id", "occurred_at"))
    assert abs(stored["ms"] - moment) < timedelta(milliseconds=1)
    assert stored["naive"] == moment  # naive times are Beijing time
    assert orjson.loads(orjson.dumps(body))["results"][0]["customer_id"]


def test_known_identities_follow_a_merge_made_earlier_in_the_same_batch(client, api_secret, recent):
    first = post(client, api_secret, {"events": [
        event("k1", recent - timedelta(minutes=30), identities=[{"kind": "openid", "namespace": "mp", "value": "o-A"}]),
        event("k2", recent - timedelta(minutes=20), identities=[{"kind": "unionid", "value": "U"}]),
    ]}).json()
    older, younger = (r["customer_id"] for r in first["results"])
    assert older != younger
    body = post(client, api_secret, {"events": [
        event("k3", recent, identities=[{"kind": "unionid", "value": "U"},
                                         {"kind": "openid", "namespace": "mp", "value": "o-A"}]),
        event("k4", recent, identities=[{"kind": "unionid", "value": "U"}]),  # all known: fast path
    ]}).json()
    assert [r["customer_id"] for r in body["results"]] == [older, older]
    assert Customer.objects.get(pk=younger).merged_into_id == older
    assert Event.objects.get(event_id="k4").identity_id == Identity.objects.get(kind="unionid").pk
    last_seen_apply()  # last-seen times are folded in by the background job on PostgreSQL
    assert Customer.objects.get(pk=older).last_seen_at == recent


def test_new_customer_first_channel_is_that_of_its_earliest_event(client, api_secret, recent):
    later = event("late", recent, channel="douyin")
    earlier = event("early", recent - timedelta(hours=2), channel="xiaohongshu")
    response = post(client, api_secret, {"events": [later, earlier]})  # later one listed first
    assert response.json()["accepted"] == 2
    customer = Customer.objects.get()
    assert customer.first_channel == "xiaohongshu"
    assert customer.first_seen_at == recent - timedelta(hours=2)


def test_identities_last_seen_moves_forward_when_observed_again_never_back(client, api_secret, recent):
    mp = {"kind": "openid", "namespace": "mp", "value": "o-seen"}
    union = {"kind": "unionid", "value": "u-seen"}
    t0 = recent - timedelta(hours=3)
    # new customer: both identities created with their first and last time in the batch
    post(client, api_secret, {"events": [event("s1", t0 + timedelta(minutes=10), identities=[mp, union]),
                                         event("s2", t0, identities=[mp, union]),
                                         event("s3", t0 + timedelta(minutes=20), identities=[mp])]})
    openid, unionid = Identity.objects.get(value="o-seen"), Identity.objects.get(value="u-seen")
    assert (openid.first_seen_at, openid.last_seen_at) == (t0, t0 + timedelta(minutes=20))
    assert (unionid.first_seen_at, unionid.last_seen_at) == (t0, t0 + timedelta(minutes=10))
    customer = Customer.objects.get(pk=openid.customer_id)
    assert (customer.first_seen_at, customer.last_seen_at) == (t0, t0 + timedelta(minutes=20))
    # known identities (fast path): every identity of the event moves forward, an older event moves nothing
    post(client, api_secret, {"events": [event("s4", t0 + timedelta(hours=1), identities=[union, mp]),
                                         event("s5", t0 + timedelta(minutes=1), identities=[union])]})
    last_seen_apply()  # on PostgreSQL the batch recorded the times; the job folds them in
    openid.refresh_from_db()
    unionid.refresh_from_db()
    assert openid.last_seen_at == unionid.last_seen_at == t0 + timedelta(hours=1)
    assert openid.first_seen_at == unionid.first_seen_at == t0
    # slow path (a new identity joins): the known ones move forward too
    post(client, api_secret, {"events": [event("s6", t0 + timedelta(hours=2), identities=[
        mp, {"kind": "openid", "namespace": "mini", "value": "o-seen-mini"}])]})
    last_seen_apply()
    openid.refresh_from_db()
    unionid.refresh_from_db()
    assert openid.last_seen_at == t0 + timedelta(hours=2)
    assert unionid.last_seen_at == t0 + timedelta(hours=1)
    mini = Identity.objects.get(value="o-seen-mini")
    assert mini.customer_id == openid.customer_id and mini.first_seen_at == mini.last_seen_at == t0 + timedelta(hours=2)
    assert Customer.objects.get(pk=openid.customer_id).last_seen_at == t0 + timedelta(hours=2)
    # a replay (duplicates) changes nothing
    before = snapshot()
    post(client, api_secret, {"events": [event("s6", t0 + timedelta(hours=5), identities=[mp])]})
    assert snapshot() == before
