"""Okapi BM25 ranking over tokenised documents — small, pure Python + numpy, no Django.

Why our own and not ``rank_bm25``: that package has had no release or maintenance since 2022, builds a
process pool when given a tokenizer, and offers no way to read the idf of a term (which the confidence
score below needs). The formula here is the same as ``rank_bm25.BM25Okapi`` (k1, b, and negative idf
floored at ``epsilon × average idf``), and ``tests/engagement/service/test_bm25.py`` checks that both give the
same scores on the same corpus; ``rank_bm25`` is a dev dependency used only there.

Confidence: BM25 scores are unbounded and depend on the corpus, so a per-workspace threshold needs a
normalised number. :meth:`BM25Index.confidence` is the idf-weighted share of the query's terms that the
document (or another phrasing of the same answer) contains, blended with the share of the document's terms the query covers (a one-word query
against a long question is less certain than an exact rephrasing). Both are in [0, 1].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

DEFAULT_K1 = 1.5
DEFAULT_B = 0.75
DEFAULT_EPSILON = 0.25
QUERY_WEIGHT = 0.75  # confidence = 0.75 × query coverage + 0.25 × document coverage


class BM25Index:
    """An index over ``documents`` (each a list of tokens). Build once per FAQ version, query many times."""

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = DEFAULT_K1, b: float = DEFAULT_B,
                 epsilon: float = DEFAULT_EPSILON) -> None:
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self.size = len(documents)
        self.frequencies: list[Counter[str]] = [Counter(document) for document in documents]
        self.lengths = np.array([len(document) for document in documents], dtype=float)
        self.average_length = float(self.lengths.mean()) if self.size else 0.0
        document_counts: Counter[str] = Counter()
        for counts in self.frequencies:
            document_counts.update(counts.keys())
        self.idf: dict[str, float] = {}
        if document_counts:
            raw = {term: math.log(self.size - count + 0.5) - math.log(count + 0.5)
                   for term, count in document_counts.items()}
            floor = self.epsilon * (sum(raw.values()) / len(raw))
            self.idf = {term: (floor if value < 0 else value) for term, value in raw.items()}
        # a term no document contains weighs like an average term: it may be a filler ("干嘛") or a new topic
        # ("发票"); the latter has no match anyway, the former should not sink a good one
        self.unseen_idf = (sum(self.idf.values()) / len(self.idf)) if self.idf else 1.0
        if self.average_length:
            self._norm = self.k1 * (1 - self.b + self.b * self.lengths / self.average_length)
        else:
            self._norm = np.full(self.size, self.k1)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for ``query`` (a repeated query term counts each time, as in Okapi)."""
        total = np.zeros(self.size)
        for term in query:
            idf = self.idf.get(term)
            if not idf:
                continue
            counts = np.array([counts.get(term, 0) for counts in self.frequencies], dtype=float)
            total += idf * (counts * (self.k1 + 1) / (counts + self._norm))
        return total

    def top(self, query: Sequence[str], n: int = 5) -> list[tuple[int, float]]:
        """The ``n`` best documents with a positive score, best first (ties: lower index first)."""
        if not self.size:
            return []
        scores = self.scores(query)
        order = sorted(range(self.size), key=lambda index: (-scores[index], index))
        return [(index, float(scores[index])) for index in order[:n] if scores[index] > 0]

    def _weight(self, term: str) -> float:
        return max(self.idf.get(term, self.unseen_idf), 0.0)

    def confidence(self, query: Sequence[str], document: int, *, related: Sequence[int] = ()) -> float:
        """How surely ``document`` answers ``query``, in [0, 1] (see the module docstring). ``related`` are
        other documents of the same answer (its other phrasings): query terms they hold count as covered."""
        asked = set(query)
        present = self.frequencies[document]
        if not asked or not present:
            return 0.0
        asked_weight = sum(self._weight(term) for term in asked)
        held_weight = sum(self._weight(term) for term in present)
        if asked_weight <= 0 or held_weight <= 0:
            return 0.0
        covered = set(present.keys())
        for other in related:
            covered.update(self.frequencies[other].keys())
        query_coverage = sum(self._weight(term) for term in asked & covered) / asked_weight
        document_coverage = sum(self._weight(term) for term in asked & present.keys()) / held_weight
        return round(QUERY_WEIGHT * query_coverage + (1 - QUERY_WEIGHT) * document_coverage, 4)
