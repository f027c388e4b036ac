"""What the bot answers, without the database: keyword rules first, then FAQ retrieval, else a handoff.

Keyword rules match ``exact`` / ``contains`` / ``regex``; the highest priority wins, then the oldest rule.
Regular expressions are operator input run on customer input, so they are limited before they are saved
(:func:`regex_check`): at most 200 characters, no back-references, no look-arounds, no quantified group
that itself contains a quantifier or an alternation (the catastrophic-backtracking shapes ``(a+)+``,
``(a|aa)+``), and they only ever see
the first 500 characters of a message.

FAQ retrieval ranks every phrasing of every entry (the question and its variants, each with the entry's
synonyms) with BM25 and takes the best phrasing per entry; the answer is used only when the normalised
confidence of the best entry reaches the workspace's threshold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from siyu.core.errors import SiyuError
from siyu.engagement.service.bm25 import BM25Index
from siyu.engagement.service.text import MAX_TEXT, ChineseTokenizer, normalise

MATCH_KINDS = ("exact", "contains", "regex")
REGEX_MAX = 200
KEYWORD_MAX = 100
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\\g<|\\k<")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_QUANTIFIER = re.compile(r"(?<!\\)(?:[*+]|\{\d*,?\d*\})")


@dataclass(frozen=True)
class Rule:
    ident: int
    pattern: str
    match: str  # exact | contains | regex
    reply: str
    priority: int = 0


@dataclass(frozen=True)
class Faq:
    ident: int
    question: str
    answer: str
    variants: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()


@dataclass
class FaqHit:
    faq: Faq
    score: float
    confidence: float
    phrasing: str


@dataclass
class Decision:
    kind: str  # keyword | faq | handoff
    reply: str = ""
    rule: Rule | None = None
    hit: FaqHit | None = None
    tokens: list[str] = field(default_factory=list)
    candidates: list[FaqHit] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        if self.kind == "keyword":
            return 1.0
        return self.hit.confidence if self.hit else None


def _refuse(zh: str, en: str) -> SiyuError:
    return SiyuError("service_rule_invalid", f"关键词规则无效：{zh}", f"Invalid keyword rule: {en}",
                     details={"field": "pattern"})


def _quantified_groups_nest(pattern: str) -> bool:
    """True when a group containing a quantifier is itself quantified, e.g. ``(a+)+`` or ``(\\w*x)*``."""
    stack: list[int] = []
    for index, char in enumerate(pattern):
        if char == "\\":
            continue
        if char == "(" and (index == 0 or pattern[index - 1] != "\\"):
            stack.append(index)
        elif char == ")" and (index == 0 or pattern[index - 1] != "\\") and stack:
            start = stack.pop()
            inner = pattern[start + 1:index]
            after = pattern[index + 1:index + 2]
            if after and after in "*+{?" and (_QUANTIFIER.search(inner) or "|" in inner):
                return True
    return False


def regex_check(pattern: str) -> re.Pattern[str]:
    """Compile an operator's regular expression within the safety limits, or refuse it with the reason."""
    if len(pattern) > REGEX_MAX:
        raise _refuse(f"正则表达式最多 {REGEX_MAX} 个字符", f"a regular expression is at most {REGEX_MAX} characters")
    if _BACKREFERENCE.search(pattern):
        raise _refuse("不支持反向引用", "back-references are not allowed")
    if _LOOKAROUND.search(pattern):
        raise _refuse("不支持前后断言（lookaround）", "look-arounds are not allowed")
    if _quantified_groups_nest(pattern):
        raise _refuse("不允许嵌套的重复（如 (a+)+），它可能让匹配极慢",
                      "nested repetition such as (a+)+ is not allowed: it can make matching extremely slow")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise _refuse(f"正则表达式语法错误（{error.msg}）", f"the regular expression does not compile ({error.msg})"
                      ) from error


def rule_check(*, pattern: str, match: str, reply: str) -> tuple[str, str, str]:
    """Validate a rule as the operator typed it; returns (pattern, match, reply) cleaned."""
    pattern = (pattern or "").strip()
    reply = (reply or "").strip()
    if match not in MATCH_KINDS:
        raise SiyuError("service_rule_invalid", "匹配方式只能是 精确 / 包含 / 正则", "Match must be exact, contains or regex",
                        details={"field": "match"})
    if not pattern:
        raise SiyuError("service_rule_invalid", "请填写关键词", "The keyword is required", details={"field": "pattern"})
    if match == "regex":
        regex_check(pattern)
    elif len(pattern) > KEYWORD_MAX:
        raise SiyuError("service_rule_invalid", f"关键词最多 {KEYWORD_MAX} 个字", f"A keyword is at most {KEYWORD_MAX} "
                        "characters", details={"field": "pattern"})
    if not reply or len(reply) > 2000:
        raise SiyuError("service_rule_invalid", "回复内容必填，最多 2000 字", "The reply is required (at most 2000 "
                        "characters)", details={"field": "reply"})
    return pattern, match, reply


def rule_matching(rules: Iterable[Rule], text: str) -> Rule | None:
    cleaned = normalise(text).strip()[:MAX_TEXT]
    if not cleaned:
        return None
    for rule in sorted(rules, key=lambda item: (-item.priority, item.ident)):
        if rule.match == "regex":
            try:
                if regex_check(rule.pattern).search(cleaned):
                    return rule
            except SiyuError:
                continue  # a rule saved before a limit was tightened never runs
            continue
        keyword = normalise(rule.pattern).strip()
        if keyword and ((rule.match == "exact" and cleaned == keyword)
                        or (rule.match == "contains" and keyword in cleaned)):
            return rule
    return None


class FaqIndex:
    """BM25 over every phrasing of every FAQ entry, built once per FAQ version."""

    def __init__(self, faqs: Sequence[Faq], tokenizer: ChineseTokenizer) -> None:
        self.tokenizer = tokenizer
        self.faqs = list(faqs)
        tokenizer.words_add(word for faq in self.faqs for word in faq.synonyms)
        self.owners: list[int] = []
        self.phrasings: list[str] = []
        documents: list[list[str]] = []
        for position, faq in enumerate(self.faqs):
            extra = [token for synonym in faq.synonyms for token in tokenizer.tokens(synonym)]
            for phrasing in (faq.question, *faq.variants):
                tokens = tokenizer.tokens(phrasing)
                if tokens:
                    documents.append(tokens + extra)
                    self.owners.append(position)
                    self.phrasings.append(phrasing)
        self.index = BM25Index(documents)
        self.siblings: dict[int, list[int]] = {}
        for document, position in enumerate(self.owners):
            self.siblings.setdefault(position, []).append(document)

    def search(self, text: str, *, limit: int = 5) -> tuple[list[str], list[FaqHit]]:
        """The query's tokens and the best entries (one hit per entry, its best phrasing), best first."""
        tokens = self.tokenizer.tokens(text)
        if not tokens or not self.index.size:
            return tokens, []
        best: dict[int, FaqHit] = {}
        for document, score in self.index.top(tokens, n=max(limit * 4, 20)):
            position = self.owners[document]
            confidence = self.index.confidence(tokens, document, related=self.siblings[position])
            known = best.get(position)
            if known is None or (score, confidence) > (known.score, known.confidence):
                best[position] = FaqHit(faq=self.faqs[position], score=round(score, 4), confidence=confidence,
                                        phrasing=self.phrasings[document])
        hits = sorted(best.values(), key=lambda hit: (-hit.score, -hit.confidence, hit.faq.ident))
        return tokens, hits[:limit]


def decide(*, text: str, rules: Iterable[Rule], index: FaqIndex, threshold: float) -> Decision:
    """Keyword rule, FAQ answer at or above ``threshold``, or a handoff to a person."""
    rule = rule_matching(rules, text)
    if rule is not None:
        return Decision(kind="keyword", reply=rule.reply, rule=rule, tokens=index.tokenizer.tokens(text))
    tokens, hits = index.search(text)
    if hits and hits[0].confidence >= threshold:
        return Decision(kind="faq", reply=hits[0].faq.answer, hit=hits[0], tokens=tokens, candidates=hits)
    return Decision(kind="handoff", hit=hits[0] if hits else None, tokens=tokens, candidates=hits)
