"""公众号 rules without the database: keyword matching, menu validation (WeChat's published limits, checked
before we call WeChat so the operator gets a clear answer), and the messaging limits of SPEC W6."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from siyu.core.errors import SiyuError

SHANGHAI = ZoneInfo("Asia/Shanghai")

# WeChat's limits (mp.weixin.qq.com developer documentation; the simulator enforces the same).
TEMP_QR_MAX_SECONDS = 2_592_000  # 30 days
TEMP_QR_MIN_SECONDS = 60
MASS_PER_DAY_SUBSCRIPTION = 1  # 订阅号: one mass send a day
MASS_PER_MONTH_SERVICE = 4  # 服务号: four a month
MASS_OPENIDS_MIN, MASS_OPENIDS_MAX = 2, 10_000  # message/mass/send
CUSTOM_WINDOW = timedelta(hours=48)  # customer-service messages only within 48 h of the user's last message
CUSTOM_PER_INTERACTION = 5  # and at most five of them per user message
TEXT_MAX = 2000
MENU_TOP_MAX, MENU_SUB_MAX = 3, 5


@dataclass(frozen=True)
class KeywordRule:
    keyword: str
    match: str  # exact | contains
    reply: str
    priority: int = 0
    ident: int = 0


def rule_matching(rules: Iterable[KeywordRule], text: str) -> KeywordRule | None:
    """The rule answering ``text``: highest priority first, then the earliest; exact beats contains only
    through priority (operators decide). Case and surrounding spaces do not matter."""
    cleaned = (text or "").strip().casefold()
    if not cleaned:
        return None
    for rule in sorted(rules, key=lambda item: (-item.priority, item.ident)):
        keyword = rule.keyword.strip().casefold()
        if not keyword:
            continue
        if (rule.match == "exact" and cleaned == keyword) or (rule.match == "contains" and keyword in cleaned):
            return rule
    return None


def _menu_error(zh: str, en: str, path: str) -> SiyuError:
    return SiyuError("menu_invalid", f"菜单不符合微信规则：{zh}", f"The menu breaks WeChat's rules: {en}",
                     details={"path": path})


def menu_validate(menu: Any) -> dict[str, Any]:
    """Check a menu ``{"button": [...]}`` against WeChat's rules; returns it normalised (only known keys)."""
    buttons = menu.get("button") if isinstance(menu, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MENU_TOP_MAX:
        raise _menu_error("一级菜单需 1–3 个", "it needs 1-3 top-level buttons", "button")
    clean = []
    for index, button in enumerate(buttons):
        path = f"button[{index}]"
        if not isinstance(button, dict):
            raise _menu_error("菜单项必须是对象", "each button must be an object", path)
        name = button.get("name")
        if not isinstance(name, str) or not 1 <= len(name.encode()) <= 16:
            raise _menu_error("一级菜单名称最多 16 字节（约 5 个汉字）",
                              "top-level names are at most 16 bytes (about 5 Chinese characters)", path + ".name")
        subs = button.get("sub_button") or []
        if subs:
            if not isinstance(subs, list) or len(subs) > MENU_SUB_MAX:
                raise _menu_error("二级菜单最多 5 个", "at most 5 sub-buttons", path + ".sub_button")
            items = []
            for sub_index, sub in enumerate(subs):
                sub_path = f"{path}.sub_button[{sub_index}]"
                if not isinstance(sub, dict):
                    raise _menu_error("菜单项必须是对象", "each button must be an object", sub_path)
                sub_name = sub.get("name")
                if not isinstance(sub_name, str) or not 1 <= len(sub_name.encode()) <= 60:
                    raise _menu_error("二级菜单名称最多 60 字节", "sub-button names are at most 60 bytes",
                                      sub_path + ".name")
                items.append({"name": sub_name, **_menu_action(sub, sub_path)})
            clean.append({"name": name, "sub_button": items})
        else:
            clean.append({"name": name, **_menu_action(button, path)})
    return {"button": clean}


def _menu_action(button: dict[str, Any], path: str) -> dict[str, str]:
    kind = button.get("type")
    if kind == "click":
        key = button.get("key")
        if not isinstance(key, str) or not 1 <= len(key.encode()) <= 128:
            raise _menu_error("click 菜单需要 1–128 字节的 key", "a click button needs a key of 1-128 bytes",
                              path + ".key")
        return {"type": "click", "key": key}
    if kind == "view":
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 1024:
            raise _menu_error("view 菜单需要 http(s) 链接（≤1024 字节）", "a view button needs an http(s) URL (≤1024 bytes)",
                              path + ".url")
        return {"type": "view", "url": url}
    raise _menu_error("类型只能是 click 或 view", "type must be click or view", path + ".type")


def mass_quota_check(*, account_type: str, earlier_sends: Sequence[datetime], now: datetime) -> None:
    """Refuse a mass send beyond the account's quota, saying what the rule is and when it frees up."""
    local = now.astimezone(SHANGHAI)
    sends = [moment.astimezone(SHANGHAI) for moment in earlier_sends]
    if account_type == "subscription":
        used = sum(1 for moment in sends if moment.date() == local.date())
        if used >= MASS_PER_DAY_SUBSCRIPTION:
            raise SiyuError("mass_quota_exhausted", "订阅号每天只能群发 1 次，今天的次数已用完，请明天（北京时间）再发",
                            "A subscription account may mass-send once a day; today's send is used. Try again "
                            "tomorrow (Beijing time)", status=429,
                            details={"rule": "subscription_daily", "limit": MASS_PER_DAY_SUBSCRIPTION, "used": used})
        return
    used = sum(1 for moment in sends if (moment.year, moment.month) == (local.year, local.month))
    if used >= MASS_PER_MONTH_SERVICE:
        raise SiyuError("mass_quota_exhausted", f"服务号每月只能群发 {MASS_PER_MONTH_SERVICE} 次，本月次数已用完，下月 1 日恢复",
                        f"A service account may mass-send {MASS_PER_MONTH_SERVICE} times a month; this month's "
                        "sends are used. They come back on the 1st", status=429,
                        details={"rule": "service_monthly", "limit": MASS_PER_MONTH_SERVICE, "used": used})


def mass_recipients_check(count: int) -> None:
    if count < MASS_OPENIDS_MIN:
        raise SiyuError("mass_too_few", "按用户群发至少需要 2 位已关注的用户",
                        "Mass send to chosen users needs at least 2 followers", details={"recipients": count})
    if count > MASS_OPENIDS_MAX:
        raise SiyuError("mass_too_many", "按用户群发每次最多 10,000 人；更多用户请选择「全部关注者」或按标签分批",
                        "Mass send to chosen users reaches at most 10,000 people per send; choose all followers "
                        "instead", details={"recipients": count, "limit": MASS_OPENIDS_MAX})


def custom_window_check(*, last_interaction_at: datetime | None, sent_since: int, now: datetime) -> None:
    """Customer-service messages: only within 48 hours of the user's last message, at most five per message."""
    if last_interaction_at is None or now - last_interaction_at > CUSTOM_WINDOW:
        raise SiyuError("custom_window_closed", "客服消息只能在用户最近一次互动后 48 小时内发送；请改用模板消息",
                        "Customer-service messages can only be sent within 48 hours of the user's last "
                        "interaction; use a template message instead", status=409)
    if sent_since >= CUSTOM_PER_INTERACTION:
        raise SiyuError("custom_count_exhausted", "用户每次互动后最多可收到 5 条客服消息，请等待用户再次互动",
                        "At most 5 customer-service messages per user interaction; wait until the user writes "
                        "again", status=409, details={"limit": CUSTOM_PER_INTERACTION})


def text_check(text: Any, *, field: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise SiyuError("text_required", "请填写消息内容", "Message text is required", details={"field": field})
    if len(text) > TEXT_MAX:
        raise SiyuError("text_too_long", f"消息内容最多 {TEXT_MAX} 字", f"Message text is at most {TEXT_MAX} characters",
                        details={"field": field})
    return text.strip()


def retry_delay(attempts: int, *, retry_after: float | None) -> float:
    """Seconds before retrying a rate-limited send: WeChat's reset when it says, else 1, 2, 4 … 60 minutes."""
    if retry_after:
        return max(float(retry_after), 1.0)
    return float(min(60 * 2 ** max(attempts - 1, 0), 3600))
