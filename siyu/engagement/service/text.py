"""Chinese tokenising for the service bot (pure, no Django): jieba, loaded lazily once per process.

jieba builds its prefix dictionary on first use (about a second) and caches it on disk; the cache goes to
the directory the caller names (the app passes ``SIYU_DATA_DIR/jieba``), never to a shared /tmp. Words the
operators care about — FAQ synonyms, product names — are added to the dictionary so that "会员积分" or
"玻尿酸精华" stay one token instead of being split by the statistical model.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# Function words and fillers that say nothing about which question was asked.
STOPWORDS = frozenset(["的", "了", "吗", "呢", "吧", "啊", "呀", "哦", "嘛", "么", "啦", "哈", "嗯", "是", "在", "我", "你", "您", "他", "她", "它", "我们", "你们", "这", "那", "这个", "那个", "就", "都", "也", "还", "和", "与", "及", "或", "请问", "请", "问", "一下", "怎么", "怎样", "如何", "怎么样", "什么", "为什么", "为何", "能", "能否", "可以", "可不可以", "会", "要", "想", "需要", "有", "没有", "没", "吗", "多少", "几", "哪", "哪里", "哪儿", "谢谢", "你好", "您好", "在吗", "亲", "客服", "一个", "个", "把", "被", "给", "让", "对", "从", "到", "又", "再", "呗", "啥", "咋", "么样", "该", "应该", "干嘛", "咋办", "到底", "一直", "还是", "哪", "在哪"])
MAX_TEXT = 500  # longer messages are cut: a customer question is never a novel, and jieba's cost grows with it
_PUNCTUATION = re.compile(r"^[\W_]+$", re.UNICODE)
# "怎么弄" / "如何办" / "咋整": a question word plus a light verb is a filler as a whole
_QUESTION_FILLER = re.compile(r"^(怎么|怎样|如何|咋)(弄|办|整|搞|做|回事)?$")


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), lower-case, at most ``MAX_TEXT`` characters."""
    return unicodedata.normalize("NFKC", text or "")[:MAX_TEXT].casefold()


class ChineseTokenizer:
    """A jieba tokenizer of its own (not jieba's global one), initialised on first use, thread-safe."""

    def __init__(self, *, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)
        self._jieba = None
        self._lock = threading.Lock()
        self._added: set[str] = set()

    def _engine(self):
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    import logging

                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    self.cache_dir.mkdir(parents=True, exist_ok=True)
                    engine = jieba.Tokenizer()
                    engine.tmp_dir = str(self.cache_dir)
                    engine.cache_file = "jieba.cache"
                    engine.initialize()
                    self._jieba = engine
        return self._jieba

    @property
    def loaded(self) -> bool:
        return self._jieba is not None

    def words_add(self, words: Iterable[str]) -> int:
        """Teach the dictionary these words (once each per process); returns how many were new."""
        fresh = []
        for word in words:
            cleaned = normalise(word).strip()
            if 1 < len(cleaned) <= 30 and cleaned not in self._added and not any(ch.isspace() for ch in cleaned):
                fresh.append(cleaned)
        if not fresh:
            return 0
        engine = self._engine()
        added = 0
        with self._lock:
            for word in fresh:
                if word not in self._added:
                    engine.add_word(word, freq=None)
                    self._added.add(word)
                    added += 1
        return added

    def tokens(self, text: str) -> list[str]:
        """Content tokens of ``text``: jieba's words without punctuation, spaces and stopwords."""
        cleaned = normalise(text)
        if not cleaned.strip():
            return []
        words = self._engine().lcut(cleaned, HMM=True)
        return [word for word in (item.strip() for item in words)
                if word and word not in STOPWORDS and not _PUNCTUATION.match(word)
                and not _QUESTION_FILLER.match(word)]
