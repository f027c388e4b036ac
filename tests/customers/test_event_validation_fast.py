"""The hand-written fast paths of event validation answer exactly what the general code answers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.core.crypto import normalize_phone, phone_hash
from siyu.customers.event_validation import EventRejected, _identity, _utm_from_url


def reference_utm(url: str) -> dict[str, str]:
    query = parse_qs(urlsplit(url).query)
    return {key[4:]: query[key][0] for key in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
            if key in query}


URL_PIECES = st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "utm_x", "a",
                              "=", "&", "?", "#", "%20", "%E5%B0%8F", "+", " ", "xhs", "小红书", "/", ":", "//",
                              "https://shop.example.cn/p/1", "", ";", "\t", "utm_source=", "=v"])


@settings(max_examples=400, deadline=None)
@given(st.lists(URL_PIECES, max_size=14).map("".join))
def test_utm_from_url_matches_the_standard_library(url):
    assert _utm_from_url(url) == reference_utm(url)


@pytest.mark.parametrize("url", [
    "https://shop.example.cn/p/1?utm_source=xhs&utm_medium=social&utm_campaign=c1",
    "https://shop.example.cn/p/1?utm_source=a&utm_source=b#utm_medium=no",
    "https://shop.example.cn/p/1?utm_source=&utm_medium=m&utm_term",
    "https://shop.example.cn/p?x=1#frag?utm_source=no",
    "https://shop.example.cn/p?utm_campaign=%E5%8F%8C11&utm_content=a+b",
    " https://shop.example.cn/p?utm_source=spaced ",
])
def test_utm_examples(url):
    assert _utm_from_url(url) == reference_utm(url)


def test_unparseable_host_is_a_clear_rejection_not_a_crash():
    with pytest.raises(EventRejected) as rejected:
        _utm_from_url("https://[shop.example.cn/p?utm_source=x")
    assert rejected.value.code == "invalid_page_url"


IDENTITY = st.fixed_dictionaries(
    {"kind": st.sampled_from(["unionid", "openid", "external_userid", "phone", "device", "lead", "other", 3])},
    optional={"value": st.one_of(st.text(max_size=130), st.sampled_from(["13800138000", " o-1", "o-1 ", "", None]),
                                 st.integers()),
              "namespace": st.one_of(st.text(max_size=66), st.sampled_from(["", "mp", None]))},
)


def reference_identity(item):
    """The identity rules written out plainly (the validation before its fast paths)."""
    if not isinstance(item, dict):
        return ("invalid_identity", "identities[0]")
    kind, value, namespace = item.get("kind"), item.get("value"), item.get("namespace", "")
    if kind not in ("unionid", "openid", "external_userid", "phone", "device", "lead"):
        return ("invalid_identity", "identities[0]")
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        return ("invalid_identity", "identities[0]")
    if not isinstance(namespace, str) or len(namespace) > 64:
        return ("invalid_identity", "identities[0]")
    if kind in {"openid", "external_userid", "device", "lead"} and not namespace:
        return ("invalid_identity", "identities[0]")
    if kind == "phone":
        try:
            return ("phone", "", phone_hash(normalize_phone(value)))
        except ValueError:
            return ("invalid_phone", "identities[0]")
    return (kind, "" if kind == "unionid" else namespace, value.strip())


def _outcome(item, phones):
    try:
        return _identity(item, 0, phones)
    except EventRejected as rejected:
        return (rejected.code, rejected.field)


@settings(max_examples=500, deadline=None)
@given(IDENTITY)
def test_identity_fast_path_and_phone_memo_match_the_rules(item):
    phones: dict[str, str] = {}
    assert _outcome(item, phones) == reference_identity(item)
    assert _outcome(item, phones) == reference_identity(item)  # again, possibly from the batch's phone memo
    assert _outcome(item, None) == reference_identity(item)
