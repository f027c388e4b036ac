"""The bot's per-process state: one jieba tokenizer (cache under SIYU_DATA_DIR) and one FAQ index per
workspace, rebuilt when the workspace's FAQ or product names change (checked by a cheap version query)."""

from __future__ import annotations

import threading

from django.conf import settings
from django.db.models import Count, Max

from siyu.commerce.catalog.models import Product
from siyu.engagement.service.matching import Faq, FaqIndex, Rule
from siyu.engagement.service.models import FaqEntry, KeywordRule
from siyu.engagement.service.text import ChineseTokenizer

_tokenizer: ChineseTokenizer | None = None
_indexes: dict[int, tuple[tuple, FaqIndex]] = {}
_lock = threading.Lock()
PRODUCT_WORDS_MAX = 2000


def tokenizer() -> ChineseTokenizer:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                _tokenizer = ChineseTokenizer(cache_dir=settings.DATA_DIR / "jieba")
    return _tokenizer


def _version(workspace_id: int) -> tuple:
    faq = FaqEntry.objects.filter(workspace_id=workspace_id, enabled=True).aggregate(n=Count("pk"),
                                                                                     at=Max("updated_at"))
    products = Product.objects.filter(workspace_id=workspace_id).aggregate(n=Count("pk"), top=Max("pk"))
    return faq["n"], faq["at"], products["n"], products["top"]


def faq_index(*, workspace_id: int) -> FaqIndex:
    """The workspace's FAQ index (cached per process until an entry or a product changes)."""
    version = _version(workspace_id)
    cached = _indexes.get(workspace_id)
    if cached is not None and cached[0] == version:
        return cached[1]
    words = tokenizer()
    titles = Product.objects.filter(workspace_id=workspace_id).values_list("title", flat=True)[:PRODUCT_WORDS_MAX]
    words.words_add(title for title in titles if len(title) <= 12)  # short product names, not marketing titles
    faqs = [Faq(ident=row.pk, question=row.question, answer=row.answer, variants=tuple(row.variants or ()),
                synonyms=tuple(row.synonyms or ()))
            for row in FaqEntry.objects.filter(workspace_id=workspace_id, enabled=True).order_by("pk")]
    index = FaqIndex(faqs, words)
    _indexes[workspace_id] = (version, index)
    return index


def keyword_rules(*, workspace_id: int) -> list[Rule]:
    return [Rule(ident=row.pk, pattern=row.pattern, match=row.match, reply=row.reply, priority=row.priority)
            for row in KeywordRule.objects.filter(workspace_id=workspace_id, enabled=True)]
