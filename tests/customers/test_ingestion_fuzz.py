"""Random JSON thrown at the ingestion endpoint: never a 500, and only accepted events change anything."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.customers.models import Event
from tests.customers.test_ingestion_support import post, snapshot

pytestmark = pytest.mark.django_db

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_kinds = st.sampled_from(["unionid", "openid", "external_userid", "phone", "device", "lead", "email", ""])
_identity = st.fixed_dictionaries({"kind": _kinds, "value": _json | st.text(max_size=12)},
                                  optional={"namespace": _json | st.sampled_from(["mp", "wx", ""])})
_types = st.sampled_from(["page_view", "order_paid", "product_view", "add_to_cart", "nope", ""]) | _json
_times = st.one_of(
    st.datetimes(timezones=st.just(timezone.get_fixed_timezone(480))).map(lambda d: d.isoformat()),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.just("RECENT"), _json,
)
_event = st.fixed_dictionaries(
    {"event_id": st.from_regex(r"\A[a-z0-9]{1,8}\Z") | _json, "type": _types, "occurred_at": _times,
     "identities": st.lists(_identity, max_size=3) | _json},
    optional={"properties": st.dictionaries(st.sampled_from(["order_id", "amount_fen", "product_id", "url", "x"]),
                                            _json, max_size=3) | _json,
              "utm": st.dictionaries(st.sampled_from(["source", "medium", "campaign"]), _json, max_size=2) | _json,
              "page_url": _json | st.just("https://a.cn/?utm_source=xhs&utm_campaign=%00"),
              "channel": _json | st.sampled_from(["xhs", "抖音", " Store "])},
)
_body = st.one_of(_json, st.fixed_dictionaries({"events": st.lists(_event | _json, max_size=6) | _json}))


def _recent(value, now):
    if value == "RECENT":
        return (now - timedelta(minutes=5)).isoformat()
    if isinstance(value, dict):
        return {k: _recent(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [_recent(v, now) for v in value]
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=_body, mangle=st.sampled_from(["none", "truncate", "bytes"]))
def test_random_json_never_500_and_rejections_change_nothing(client, api_secret, body, mangle):
    raw = orjson.dumps(_recent(body, timezone.now()))
    if mangle == "truncate":
        raw = raw[: len(raw) // 2]
    elif mangle == "bytes":
        raw = raw + b"\xff"
    before = snapshot()
    count_before = Event.objects.count()
    response = post(client, api_secret, None, raw=raw)
    assert response.status_code < 500, response.content
    answer = response.json()
    if response.status_code != 200:
        assert answer["code"] and answer["message"] and answer["message_en"]
        assert snapshot() == before
        return
    assert answer["accepted"] + answer["duplicate"] + answer["rejected"] == len(answer["results"])
    assert Event.objects.count() == count_before + answer["accepted"]
    if answer["accepted"] == 0:
        assert snapshot() == before
    for result in answer["results"]:
        if result["status"] == "rejected":
            assert result["code"] and result["message"] and result["message_en"]
