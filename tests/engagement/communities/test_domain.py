"""Pure rules: spam detectors (property tests), activity ranges, the rhythm defaults, KOC score and cut."""

from __future__ import annotations

import math
import string

from hypothesis import given
from hypothesis import strategies as st

from siyu.engagement.communities import domain

chinese = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), max_size=30)


@given(prefix=chinese, suffix=chinese, digits=st.text(alphabet=string.digits, min_size=9, max_size=9),
       second=st.sampled_from("3456789"), sep=st.sampled_from(["", " ", "-"]))
def test_a_mobile_number_is_found_anywhere_in_chinese_text(prefix, suffix, digits, second, sep):
    number = "1" + second + digits[0] + sep + digits[1:5] + sep + digits[5:]
    assert domain.has_phone(f"{prefix}{number}{suffix}")
    assert domain.has_contact(f"{prefix}联系{number}{suffix}")


@given(text=chinese)
def test_plain_chinese_text_is_never_spam(text):
    assert not domain.has_link(text)
    assert not domain.has_phone(text)
    assert not domain.has_wechat_id(text)


@given(host=st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
       tld=st.sampled_from(["com", "cn", "net", "top", "vip"]), scheme=st.sampled_from(["", "http://", "https://"]),
       around=chinese)
def test_links_are_found_with_or_without_scheme(host, tld, scheme, around):
    assert domain.has_link(f"{around}{scheme}{host}.{tld}{around}")


def test_full_width_link_and_wechat_ids():
    assert domain.has_link("点这里 ｗｗｗ．ａｂｃ．ｃｏｍ 领券")
    assert domain.has_link("看mail.shop-abc.com.cn/x")
    assert domain.has_wechat_id("有需要加我微信：beauty_2024")
    assert domain.has_wechat_id("vx abc123456 私聊")
    assert not domain.has_wechat_id("微信支付很方便")
    assert not domain.has_phone("订单号 12345678901234")
    assert not domain.has_link("价格 3.5 元，满 99.9 包邮")


@given(words=st.lists(st.text(alphabet="代购刷单返利兼职", min_size=2, max_size=4), min_size=1, max_size=5),
       before=chinese, after=chinese, pick=st.integers(min_value=0))
def test_a_configured_keyword_in_the_text_is_always_hit(words, before, after, pick):
    word = words[pick % len(words)]
    assert domain.keyword_hit(before + word + after, words)


@given(text=st.text(min_size=1, max_size=20).filter(lambda t: t.strip()), times=st.integers(0, 6))
def test_repeat_count_counts_the_same_text_ignoring_spacing(text, times):
    earlier = [f" {text} "] * times + ["另一句话完全不同"]
    assert domain.repeat_count(text, earlier) == 1 + times + (text.strip() == "另一句话完全不同")


def test_violations_per_rule_kind():
    rules = [domain.RuleSpec("keyword", ("代购",)), domain.RuleSpec("link"), domain.RuleSpec("card"),
             domain.RuleSpec("contact"), domain.RuleSpec("repeat", threshold=3, window_seconds=600),
             domain.RuleSpec("flood", threshold=10, window_seconds=60)]
    assert domain.violations(domain.MessageView("今天天气不错"), rules) == []
    kinds = [kind for kind, _ in domain.violations(domain.MessageView("代购请看 www.x.com 电话13812345678"), rules)]
    assert kinds == ["keyword", "link", "contact"]
    assert [k for k, _ in domain.violations(domain.MessageView("", "miniprogram"), rules)] == ["card"]
    assert [k for k, _ in domain.violations(domain.MessageView("", "image", qr=True), rules)] == ["card"]
    assert [k for k, _ in domain.violations(domain.MessageView("好", recent_same_sender=("好", "好")), rules)] == ["repeat"]
    assert [k for k, _ in domain.violations(domain.MessageView("好", recent_same_sender=("好",)), rules)] == []
    assert [k for k, _ in domain.violations(domain.MessageView("嗨", count_in_flood_window=11), rules)] == ["flood"]
    assert domain.violations(domain.MessageView("嗨", count_in_flood_window=10), rules) == []


def test_expected_ranges_come_from_seed_002():
    assert domain.expected_range("welfare") == (50, 80)
    assert domain.expected_range("interest") == (150, 200)
    assert domain.expected_range("honor") == (80, 120)
    assert domain.expected_range("exchange") == (150, 200)
    assert domain.expected_range("vip", 10, None) == (10, 120)
    assert domain.activity_flag(49.9, 50, 80) == "below"
    assert domain.activity_flag(50, 50, 80) == "within"
    assert domain.activity_flag(80, 50, 80) == "within"
    assert domain.activity_flag(81, 50, 80) == "above"


def test_default_rhythm_has_3_daily_slots_and_one_theme_per_weekday():
    for kind in domain.EXPECTED_DAILY_MESSAGES:
        plan = domain.default_rhythm(kind)
        assert len([slot for slot in plan if slot.weekday == 7]) == 3  # seed 003: 3–5 a day
        assert sorted(slot.weekday for slot in plan if slot.weekday < 7) == list(range(7))
    assert any(slot.theme == "新人欢迎" for slot in domain.default_rhythm("newcomer"))


def test_contribution_score_caps_daily_messages_and_never_goes_negative():
    assert domain.contribution_score(domain.Contribution(messages_per_day=(100, 5))) == 35
    score = domain.contribution_score(domain.Contribution(messages_per_day=(2,), replies_given=1, replies_received=2,
                                                          invitations=1, orders=1, shares=1))
    assert score == 2 + 2 + 6 + 10 + 5 + 2
    assert domain.contribution_score(domain.Contribution(messages_per_day=(1,), violations=3)) == 0


def test_top_percent_includes_everyone_tied_with_the_last_place():
    scores = {1: 50, 2: 40, 3: 40, 4: 40, 5: 10, 6: 5, 7: 5, 8: 1, 9: 0, 10: 0}
    chosen = domain.top_percent(scores, 15)  # ceil(10 × 15%) = 2 places; 2, 3, 4 tie for second
    assert chosen == [(1, 50, 1), (2, 40, 2), (3, 40, 2), (4, 40, 2)]
    assert domain.top_percent({1: 0, 2: 0}, 15) == []
    assert domain.top_percent({}, 15) == []
    assert domain.top_percent({7: 3}, 10) == [(7, 3, 1)]


@given(scores=st.dictionaries(st.integers(1, 10_000), st.integers(0, 50), min_size=1, max_size=60),
       percent=st.integers(1, 50))
def test_top_percent_properties(scores, percent):
    chosen = domain.top_percent(scores, percent)
    ids = {customer_id for customer_id, _, _ in chosen}
    places = math.ceil(len(scores) * percent / 100)
    positive = sum(1 for score in scores.values() if score > 0)
    assert len(chosen) >= min(places, positive)
    if chosen:
        cutoff = min(score for _, score, _ in chosen)
        # Nobody outside scores at least the cutoff; nobody inside has 0.
        assert all(score < cutoff for customer_id, score in scores.items() if customer_id not in ids)
        assert cutoff > 0
        # Beyond the places, only ties of the cutoff are added.
        ordered = sorted(scores.values(), reverse=True)
        assert all(score == cutoff for score in ordered[places:len(chosen)])


def test_incentive_steps_and_periods():
    assert [domain.incentive_step(n) for n in (1, 2, 3, 7)] == [1, 2, 3, 3]
    assert domain.previous_period("2026-01") == "2025-12"
    assert domain.previous_period("2026-11") == "2026-10"
    assert domain.valid_period("2026-11") and not domain.valid_period("2026-13")
