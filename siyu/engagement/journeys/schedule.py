"""Time rules of journeys (pure, no ORM): waits, quiet hours and the frequency-cap windows, in Asia/Shanghai.

Default caps (per customer, per channel): marketing through a 公众号 template message at most 1 a day and 3 a
week. Template messages are meant for service notices — WeChat withdraws templates used for marketing that
followers complain about — and seed 002 puts a healthy private-domain rhythm at about 12 touches a month
(≈3 a week across channels). Customer-service messages only reach people who wrote within 48 hours, so they
may be a little more frequent (2/day, 5/week); 小程序订阅消息 need a fresh authorisation per message anyway
(1/day, 3/week); WeCom mass sends also count against WeCom's own monthly limit, enforced by the adapter.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from siyu.core.timeutil import SHANGHAI

DEFAULT_CAPS: dict[str, dict[str, int]] = {
    "official_template": {"day": 1, "week": 3},
    "official_custom": {"day": 2, "week": 5},
    "miniapp_subscribe": {"day": 1, "week": 3},
    "wecom_mass": {"day": 1, "week": 3},
}
DEFAULT_QUIET = ("22:00", "08:00")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def is_hhmm(text: str) -> bool:
    return bool(_HHMM.fullmatch(text))


def parse_hhmm(text: str) -> time:
    hours, minutes = str(text).split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(moment: datetime, *, start: str = DEFAULT_QUIET[0], end: str = DEFAULT_QUIET[1]) -> bool:
    local = moment.astimezone(SHANGHAI).time()
    begin, finish = parse_hhmm(start), parse_hhmm(end)
    if begin == finish:
        return False
    if begin < finish:
        return begin <= local < finish
    return local >= begin or local < finish  # spans midnight


def after_quiet_hours(moment: datetime, *, start: str = DEFAULT_QUIET[0], end: str = DEFAULT_QUIET[1]) -> datetime:
    """``moment`` itself when outside quiet hours, else the end of the quiet period (deferred, not dropped)."""
    if not in_quiet_hours(moment, start=start, end=end):
        return moment
    local = moment.astimezone(SHANGHAI)
    finish = parse_hhmm(end)
    candidate = datetime.combine(local.date(), finish, tzinfo=SHANGHAI)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), finish, tzinfo=SHANGHAI)
    return candidate


def wait_until(moment: datetime, step: dict) -> datetime:
    """When a wait step started at ``moment`` is over."""
    until = step.get("until")
    if not until:
        return moment + timedelta(minutes=int(step["minutes"]))
    local = moment.astimezone(SHANGHAI)
    at = parse_hhmm(until["time"])
    weekday = until.get("weekday")
    candidate = datetime.combine(local.date(), at, tzinfo=SHANGHAI)
    if weekday in (None, ""):
        return candidate if candidate > local else candidate + timedelta(days=1)
    days = (int(weekday) - local.weekday()) % 7
    candidate += timedelta(days=days)
    return candidate if candidate > local else candidate + timedelta(days=7)


def cap_window(day: date) -> tuple[date, date]:
    """The rolling week a message on ``day`` counts against (that day and the six before)."""
    return day - timedelta(days=6), day


def caps_for(channel: str, overrides: dict | None) -> dict[str, int]:
    caps = dict(DEFAULT_CAPS.get(channel, {"day": 1, "week": 3}))
    if overrides and isinstance(overrides.get(channel), dict):
        caps.update({key: int(value) for key, value in overrides[channel].items() if key in ("day", "week")})
    return caps


def allowed(*, day_count: int, week_counts: dict[date, int], day: date, caps: dict[str, int]) -> bool:
    """May one more message go out on ``day``? ``week_counts`` holds the counted messages per day around it.

    A message placed on ``day`` must keep every rolling week that contains it within the weekly cap (days
    later in the week may already hold deferred messages), and the day within the daily cap.
    """
    if day_count >= caps["day"]:
        return False
    for end in (day + timedelta(days=offset) for offset in range(7)):
        start = end - timedelta(days=6)
        if sum(count for when, count in week_counts.items() if start <= when <= end) >= caps["week"]:
            return False
    return True
