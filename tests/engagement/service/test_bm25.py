"""The tokenizer and our BM25 against rank_bm25.BM25Okapi (the reference, imported only here)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from siyu.engagement.service.bm25 import BM25Index
from siyu.engagement.service.text import ChineseTokenizer
from tests.engagement.service.support import FAQ


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return ChineseTokenizer(cache_dir=tmp_path_factory.mktemp("jieba"))


def corpus(tokenizer):
    return [tokenizer.tokens(text) for entry in FAQ for text in (entry["question"], *entry["variants"])]


def test_tokens_drop_punctuation_and_stopwords_and_learn_words(tokenizer, tmp_path):
    assert tokenizer.tokens("请问，怎么申请退货退款？？") == ["申请", "退货", "退款"]
    assert tokenizer.tokens("  ！！ ") == [] and tokenizer.tokens("") == []
    assert tokenizer.tokens("ＡＢＣ积分") == ["abc", "积分"]  # full width folded, lower-cased
    before = tokenizer.tokens("玻尿酸精华液怎么用")
    assert "玻尿酸精华液" not in before
    assert tokenizer.words_add(["玻尿酸精华液", "玻尿酸精华液"]) == 1
    assert tokenizer.words_add(["玻尿酸精华液"]) == 0
    assert "玻尿酸精华液" in tokenizer.tokens("玻尿酸精华液怎么用")


def test_jieba_cache_goes_to_the_given_directory(tmp_path):
    words = ChineseTokenizer(cache_dir=tmp_path / "cache")
    assert not words.loaded
    words.tokens("发货")
    assert words.loaded and (tmp_path / "cache" / "jieba.cache").exists()


def test_scores_equal_rank_bm25_on_the_faq_corpus(tokenizer):
    documents = corpus(tokenizer)
    ours, reference = BM25Index(documents), BM25Okapi(documents)
    for query in ["退货", "积分 抵扣 会员", "什么时候发货", "快递 物流 积分 积分", "天气"]:
        tokens = tokenizer.tokens(query)
        assert np.allclose(ours.scores(tokens), reference.get_scores(tokens), rtol=1e-9, atol=1e-12), query


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from("甲乙丙丁戊己庚辛壬癸"), min_size=1, max_size=8), min_size=1, max_size=12),
       st.lists(st.sampled_from("甲乙丙丁戊子丑"), min_size=1, max_size=5),
       st.floats(0.5, 2.0), st.floats(0.0, 1.0))
def test_scores_equal_rank_bm25_on_random_corpora(documents, query, k1, b):
    ours, reference = BM25Index(documents, k1=k1, b=b), BM25Okapi(documents, k1=k1, b=b)
    assert np.allclose(ours.scores(query), reference.get_scores(query), rtol=1e-9, atol=1e-12)


def test_confidence_is_normalised(tokenizer):
    documents = corpus(tokenizer)
    index = BM25Index(documents)
    exact = index.confidence(documents[0], 0)
    assert exact == 1.0
    assert index.confidence(["天气"], 0) == 0.0
    partial = index.confidence(["退货", "天气"], 0)
    assert 0 < partial < 1


def test_pure_modules_import_no_django():
    code = ("import sys; import siyu.engagement.service.bm25, siyu.engagement.service.text, "
            "siyu.engagement.service.matching; print(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
