"""Pure community rules (no ORM, tested in microseconds): spam detectors, activity ranges per group type,
the default weekly rhythm, the KOC contribution score and the top-percent cut with ties.

Numbers are the product defaults from the seeds:
- seed 002 §六: 福利驱动型 50–80 messages a day, 兴趣导向型 150–200, 荣誉激励型 80–120; KOC are the top
  10%–15% by contribution, with three incentive steps 内容共创 → 福利优先 → 商业分成.
- seed 003 §3.3: groups 新人群 / VIP群 / 活动群 / 交流群 with fixed daily and weekly rhythms (话题讨论、
  用户晒单、投票活动); §2.2: a group gets 3–5 pieces of content a day.
Seed 003's four kinds carry no numbers of their own; each takes the range of the seed 002 kind it is run
like: 新人群 and 活动群 are driven by welfare (first-order gifts, campaign offers), 交流群 by shared
interest, VIP群 by honour and exclusivity.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import time

# Expected messages per day by type: (min, max).
EXPECTED_DAILY_MESSAGES: dict[str, tuple[int, int]] = {
    "welfare": (50, 80), "interest": (150, 200), "honor": (80, 120),
    "newcomer": (50, 80), "campaign": (50, 80), "exchange": (150, 200), "vip": (80, 120),
}

DEFAULT_KOC_PERCENT = 15  # seed 002: the top 10%–15%
KOC_PERCENT_RANGE = (1, 50)
DEFAULT_STEP_POINTS = (200, 500, 1000)  # 内容共创, 福利优先, 商业分成
STEP_NAMES = {1: ("内容共创", "Content co-creation"), 2: ("福利优先", "Priority benefits"),
              3: ("商业分成", "Revenue share")}


def expected_range(community_type: str, minimum: int | None = None, maximum: int | None = None) -> tuple[int, int]:
    low, high = EXPECTED_DAILY_MESSAGES.get(community_type, (50, 80))
    return (low if minimum is None else minimum, high if maximum is None else maximum)


def activity_flag(daily_average: float, low: int, high: int) -> str:
    """"below", "within" or "above" the expected range of daily messages."""
    if daily_average < low:
        return "below"
    if daily_average > high:
        return "above"
    return "within"


# --- spam detectors ---------------------------------------------------------------------------------------

_FULLWIDTH = str.maketrans({chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)})


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, NFKC: "ＷＷＷ．" and "www." look the same to the detectors."""
    return unicodedata.normalize("NFKC", (text or "").translate(_FULLWIDTH)).lower()


# Lookarounds instead of \b: a Chinese character is a word character, so "看abc.com" has no \b before "abc".
_URL = re.compile(r"(https?://|www\.)\S+|(?<![a-z0-9.-])[a-z0-9][a-z0-9-]{0,62}(?:\.[a-z0-9-]{1,63})*"
                  r"\.(com|cn|net|org|top|xyz|cc|vip|shop|io|me|co)(\.[a-z]{2})?(?![a-z0-9-])(/\S*)?")
_PHONE = re.compile(r"(?<!\d)1[3-9]\d(?:[\s-]?\d){8}(?!\d)")
_WECHAT_ID = re.compile(r"(微信号?|weixin|wechat|vx|wx|v信|薇信|威信|加v|加微)\s*[:：号是]?\s*([a-z][-_a-z0-9]{5,19})")
CARD_TYPES = frozenset({"card", "miniprogram", "weapp", "qrcode", "link_card"})


def has_link(text: str) -> bool:
    return bool(_URL.search(normalize(text)))


def has_phone(text: str) -> bool:
    return bool(_PHONE.search(normalize(text)))


def has_wechat_id(text: str) -> bool:
    return bool(_WECHAT_ID.search(normalize(text)))


def has_contact(text: str) -> bool:
    return has_phone(text) or has_wechat_id(text)


def is_card(msg_type: str, *, qr: bool = False) -> bool:
    """QR-code images and mini-program / business cards (the bridge marks images it found a QR code in)."""
    return qr or (msg_type or "").lower() in CARD_TYPES


def keyword_hit(text: str, keywords: Iterable[str]) -> str:
    """The first configured keyword found in the text ("" when none)."""
    body = normalize(text)
    for word in keywords:
        word_norm = normalize(str(word)).strip()
        if word_norm and word_norm in body:
            return str(word)
    return ""


def repeat_count(text: str, earlier_texts: Sequence[str]) -> int:
    """How many times this sender has now said the same thing (this message included)."""
    key = re.sub(r"\s+", "", normalize(text))
    if not key:
        return 0
    return 1 + sum(1 for earlier in earlier_texts if re.sub(r"\s+", "", normalize(earlier)) == key)


@dataclass(frozen=True)
class RuleSpec:
    kind: str
    keywords: tuple[str, ...] = ()
    threshold: int = 0
    window_seconds: int = 0


@dataclass(frozen=True)
class MessageView:
    text: str
    msg_type: str = "text"
    qr: bool = False
    recent_same_sender: tuple[str, ...] = ()  # the sender's texts within the repeat window
    count_in_flood_window: int = 1  # the sender's messages within the flood window, this one included


def _match(message: MessageView, rule: RuleSpec) -> str | None:
    """What of the message breaks the rule, or None."""
    excerpt = message.text[:80]
    if rule.kind == "keyword":
        return keyword_hit(message.text, rule.keywords) or None
    if rule.kind == "link":
        return excerpt if has_link(message.text) else None
    if rule.kind == "card":
        return message.msg_type if is_card(message.msg_type, qr=message.qr) else None
    if rule.kind == "contact":
        return excerpt if has_contact(message.text) else None
    if rule.kind == "repeat":
        hit = rule.threshold and repeat_count(message.text, message.recent_same_sender) >= rule.threshold
        return excerpt if hit else None
    if rule.kind == "flood":
        hit = rule.threshold and message.count_in_flood_window > rule.threshold
        return str(message.count_in_flood_window) if hit else None
    return None


def violations(message: MessageView, rules: Iterable[RuleSpec]) -> list[tuple[str, str]]:
    """(kind, excerpt of what matched) for each rule the message breaks."""
    found = []
    for rule in rules:
        excerpt = _match(message, rule)
        if excerpt is not None:
            found.append((rule.kind, excerpt))
    return found


DEFAULT_KEYWORDS = ("代购", "刷单", "兼职日结", "私聊我", "加我好友", "低价出", "返利", "赌", "贷款", "色情")
DEFAULT_RULES: tuple[tuple[str, dict], ...] = (
    ("keyword", {"keywords": list(DEFAULT_KEYWORDS), "actions": ["warn", "tag"]}),
    ("link", {"actions": ["warn"]}),
    ("card", {"actions": ["warn"]}),
    ("contact", {"actions": ["warn", "tag"]}),
    ("repeat", {"threshold": 3, "window_seconds": 600, "actions": ["warn"]}),
    ("flood", {"threshold": 10, "window_seconds": 60, "actions": ["warn"]}),
)
DEFAULT_GROUP_RULES_TEXT = (
    "1. 友善交流，不发布违法、低俗及攻击性内容；\n2. 禁止发广告、链接、二维码、小程序卡片及个人联系方式；\n"
    "3. 禁止刷屏和重复发送相同内容；\n4. 多次违规将被移出本群。")


# --- weekly rhythm ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotSpec:
    weekday: int  # 0 Monday … 6 Sunday, 7 every day
    at: time
    theme: str
    content: str
    action: str = "task"


_DAILY = (
    SlotSpec(7, time(9, 0), "早安资讯", "发布今日早安问候与一条品牌/行业资讯"),
    SlotSpec(7, time(12, 30), "干货分享", "分享一条产品使用技巧或知识干货"),
    SlotSpec(7, time(20, 0), "晚间互动", "发起一个轻松话题，回复群成员提问"),
)
_WEEK_BASE = {
    0: ("话题讨论", "周一话题：发起本周讨论话题，邀请成员参与"),
    1: ("知识分享", "周二知识课：图文或短视频讲解一个使用场景"),
    2: ("会员福利", "周三福利日：发放群专属优惠券或限时秒杀"),
    3: ("用户晒单", "周四晒单：邀请成员晒单分享使用体验，优质晒单奖励积分"),
    4: ("投票活动", "周五投票：新品/口味/款式投票，收集成员意见"),
    5: ("抽奖活动", "周六抽奖：群内抽奖，提升活跃"),
    6: ("周度回顾", "周日回顾：总结本周精彩内容，表彰活跃成员与KOC"),
}
_WEEK_BY_TYPE = {
    "newcomer": {0: ("新人欢迎", "周一：欢迎本周新成员，介绍群规与新人福利"),
                 2: ("首单礼", "周三：推送新人首单优惠，引导完成首单")},
    "vip": {2: ("新品优先体验", "周三：VIP 新品优先体验/预售"), 5: ("专属顾问答疑", "周六：专属顾问在线答疑")},
    "campaign": {1: ("活动预告", "周二：预告本周活动与规则"), 3: ("限时秒杀", "周四：限时秒杀/拼团开团")},
    "exchange": {2: ("经验交流", "周三：成员经验交流专场")},
    "welfare": {1: ("折扣发放", "周二：发放折扣券"), 3: ("限时特价", "周四：限时特价商品")},
    "interest": {2: ("主题讨论", "周三：兴趣主题深度讨论"), 5: ("知识问答", "周六：有奖知识问答")},
    "honor": {2: ("等级头衔", "周三：公布成员等级头衔与专属徽章"), 5: ("高端新品品鉴", "周六：高端新品品鉴")},
}


def default_rhythm(community_type: str) -> list[SlotSpec]:
    """Three content slots every day (seed 003: 3–5 a day) plus one themed activity each weekday at 19:30."""
    week = {**_WEEK_BASE, **_WEEK_BY_TYPE.get(community_type, {})}
    themed = [SlotSpec(day, time(19, 30), theme, content) for day, (theme, content) in sorted(week.items())]
    return [*_DAILY, *themed]


# --- KOC ----------------------------------------------------------------------------------------------------

# Contribution score of one member over a period (documented in the console):
#   1 × messages (at most 30 a day count, so flooding earns nothing)
# + 2 × replies they gave + 3 × replies their messages received
# + 10 × members they invited + 5 × orders paid + 2 × shares − 10 × violations; never below 0.
WEIGHTS = {"messages": 1, "replies_given": 2, "replies_received": 3, "invitations": 10, "orders": 5, "shares": 2,
           "violations": -10}
DAILY_MESSAGE_CAP = 30


@dataclass(frozen=True)
class Contribution:
    messages_per_day: tuple[int, ...] = ()
    replies_given: int = 0
    replies_received: int = 0
    invitations: int = 0
    orders: int = 0
    shares: int = 0
    violations: int = 0


def contribution_score(c: Contribution) -> int:
    messages = sum(min(count, DAILY_MESSAGE_CAP) for count in c.messages_per_day)
    total = (WEIGHTS["messages"] * messages + WEIGHTS["replies_given"] * c.replies_given
             + WEIGHTS["replies_received"] * c.replies_received + WEIGHTS["invitations"] * c.invitations
             + WEIGHTS["orders"] * c.orders + WEIGHTS["shares"] * c.shares + WEIGHTS["violations"] * c.violations)
    return max(0, total)


def top_percent(scores: dict[int, int], percent: int) -> list[tuple[int, int, int]]:
    """The KOC: (customer_id, score, rank) of the top ``percent`` of members by score.

    The cut is ceil(members × percent / 100) places; members tied with the last place are all in (a tie
    is not broken by accident of ordering), and a score of 0 never makes anyone a KOC. Rank is
    competition ranking (1, 2, 2, 4).
    """
    if not scores or percent <= 0:
        return []
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    places = max(1, math.ceil(len(ordered) * percent / 100))
    cutoff = ordered[min(places, len(ordered)) - 1][1]
    chosen: list[tuple[int, int, int]] = []
    rank = 0
    previous = None
    for position, (customer_id, score) in enumerate(ordered, start=1):
        if score < cutoff or score <= 0:
            break
        if score != previous:
            rank, previous = position, score
        chosen.append((customer_id, score, rank))
    return chosen


def incentive_step(consecutive_periods: int) -> int:
    """KOC for 1 period: step 1 (内容共创); 2 in a row: step 2 (福利优先); 3 or more: step 3 (商业分成)."""
    return max(1, min(3, consecutive_periods))


def previous_period(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def valid_period(text: str) -> bool:
    return bool(_PERIOD.match(text or ""))
