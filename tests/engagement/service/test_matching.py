"""Keyword rules (with regex limits) and FAQ retrieval quality on a small Chinese FAQ, without the database."""

from __future__ import annotations

import pytest

from siyu.core.errors import SiyuError
from siyu.engagement.service.matching import (
    Faq,
    FaqIndex,
    Rule,
    decide,
    regex_check,
    rule_check,
    rule_matching,
)
from siyu.engagement.service.text import ChineseTokenizer
from tests.engagement.service.support import FAQ


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    words = ChineseTokenizer(cache_dir=tmp_path_factory.mktemp("jieba"))
    faqs = [Faq(ident=number, question=entry["question"], answer=entry["answer"], variants=tuple(entry["variants"]),
                synonyms=tuple(entry["synonyms"])) for number, entry in enumerate(FAQ, start=1)]
    return FaqIndex(faqs, words)


@pytest.mark.parametrize("question, expected", [
    ("我想退货", 1), ("东西不满意能退款吗", 1), ("退换货怎么弄", 1),
    ("几天能发货", 2), ("快递到哪了，物流在哪查", 2), ("发货时间是多久", 2),
    ("会员积分能干嘛", 3), ("积分可以抵现金吗", 3),
    ("积分会过期吗", 4), ("积分的有效期", 4),
    ("怎么开通会员", 5),
])
def test_differently_phrased_questions_find_their_entry(index, question, expected):
    decision = decide(text=question, rules=[], index=index, threshold=0.45)
    assert decision.kind == "faq", (question, decision.tokens, [(h.faq.ident, h.confidence) for h in decision.candidates])
    assert decision.hit.faq.ident == expected
    assert decision.reply == FAQ[expected - 1]["answer"]


@pytest.mark.parametrize("question", ["今天天气不错", "你好", "发票怎么开", "？？？"])
def test_unrelated_questions_are_handed_off(index, question):
    decision = decide(text=question, rules=[], index=index, threshold=0.45)
    assert decision.kind == "handoff" and decision.reply == ""


def test_threshold_decides_between_answer_and_handoff(index):
    confidence = decide(text="我想退货", rules=[], index=index, threshold=0.0).hit.confidence
    assert decide(text="我想退货", rules=[], index=index, threshold=confidence).kind == "faq"
    assert decide(text="我想退货", rules=[], index=index, threshold=min(confidence + 0.01, 1.0)).kind == "handoff"


def test_keyword_rules_by_priority_before_the_faq(index):
    rules = [Rule(1, "退货", "contains", "退货请看这里", 0), Rule(2, "我想退货", "exact", "精确回复", 5),
             Rule(3, r"订单\s*\d{6,}", "regex", "订单查询", 1)]
    assert decide(text="我想退货", rules=rules, index=index, threshold=0.45).reply == "精确回复"
    assert decide(text="我要退货啊", rules=rules, index=index, threshold=0.45).reply == "退货请看这里"
    assert rule_matching(rules, "查 订单 1234567") .ident == 3
    assert rule_matching(rules, "") is None


@pytest.mark.parametrize("pattern", ["(a+)+$", r"(\w*x)*", "(a|aa){2,}+", r"(\d)\1", "(?=abc)", "x" * 201, "(unclosed"])
def test_unsafe_or_broken_regexes_are_refused(pattern):
    with pytest.raises(SiyuError) as refused:
        regex_check(pattern)
    assert refused.value.code == "service_rule_invalid" and refused.value.message_zh and refused.value.message_en


@pytest.mark.parametrize("kwargs", [{"pattern": "", "match": "contains", "reply": "x"},
                                    {"pattern": "a", "match": "fuzzy", "reply": "x"},
                                    {"pattern": "a", "match": "exact", "reply": ""},
                                    {"pattern": "a" * 101, "match": "exact", "reply": "x"}])
def test_bad_rules_are_refused(kwargs):
    with pytest.raises(SiyuError) as refused:
        rule_check(**kwargs)
    assert refused.value.code == "service_rule_invalid"
