"""Pure rules of the membership activities (no ORM): check-in streak bonuses, lottery odds, task periods.

Tested in microseconds; the services in ``checkin``, ``lottery`` and ``missions`` apply them to the database.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import date

DEFAULT_STREAK_BONUS = {"7": 20, "30": 100}
MAX_STREAK_BONUS_DAYS = 366


def streak_after(*, last_day: date | None, last_streak: int, today: date) -> int:
    """The streak today's check-in makes: yesterday's plus one, else a fresh start at one."""
    if last_day is not None and (today - last_day).days == 1:
        return last_streak + 1
    return 1


def streak_bonus(bonus_by_day: Mapping[str, int] | None, streak: int) -> int:
    """Bonus points on the day a streak reaches one of the configured lengths (0 otherwise)."""
    for days, bonus in (bonus_by_day or {}).items():
        if str(days).isdigit() and int(days) == streak:
            return max(0, int(bonus))
    return 0


def streak_bonus_parse(text: str) -> dict[str, int]:
    """"7:20, 30:100" → {"7": 20, "30": 100}; raises ValueError on anything else."""
    result: dict[str, int] = {}
    for part in (text or "").replace("，", ",").split(","):
        part = part.strip()
        if not part:
            continue
        days, _, bonus = part.partition(":")
        days, bonus = days.strip(), bonus.strip()
        if not days.isdigit() or not bonus.isdigit():
            raise ValueError(part)
        if not 1 <= int(days) <= MAX_STREAK_BONUS_DAYS or int(bonus) > 100_000:
            raise ValueError(part)
        result[str(int(days))] = int(bonus)
    return result


def lottery_pick(weights: Sequence[tuple[int, int]], rng: random.Random) -> int | None:
    """Pick one id from ``(id, weight)`` pairs with probability weight / total weight (None if none can win)."""
    candidates = [(key, weight) for key, weight in weights if weight > 0]
    total = sum(weight for _, weight in candidates)
    if total <= 0:
        return None
    roll = rng.randrange(total)
    for key, weight in candidates:
        if roll < weight:
            return key
        roll -= weight
    return candidates[-1][0]  # unreachable: roll < total


def task_period(kind: str, today: date) -> str:
    """新手 tasks have one period ("once"); 日常 tasks one per Shanghai day."""
    return "once" if kind == "newbie" else today.isoformat()
