"""``siyu journeys_run --until 2026-12-01T10:00+08:00``: run journey time forward (demos and tests).

Ticks at every moment a run or a message falls due between now (or ``--from``) and ``--until``. Without
``--until`` it does one tick now, like the periodic task.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from siyu.engagement.journeys.runner import journeys_tick, run_until


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: 时间格式应为 ISO 8601 / use an ISO 8601 time, e.g. 2026-12-01T10:00+08:00") \
            from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        # a naive time is ambiguous (server clock? Shanghai?): say which zone
        raise CommandError(f"{option}: 时间需要带时区，例如 2026-12-01T10:00+08:00 / "
                           f"the time needs a UTC offset, e.g. 2026-12-01T10:00+08:00")
    return moment


class Command(BaseCommand):
    help = "Run journeys forward in time (date triggers, waits, messages, SLA escalation)."

    def add_arguments(self, parser):
        parser.add_argument("--until", help="ISO time with a UTC offset to run to, e.g. 2026-12-01T10:00+08:00")
        parser.add_argument("--from", dest="start", help="ISO time with a UTC offset to start from (default: now)")

    def handle(self, *args, until=None, start=None, **options):
        begin = _moment(start, "--from") if start else timezone.now()
        if until is None:
            totals = journeys_tick(now=begin)
        else:
            end = _moment(until, "--until")
            if end < begin:
                raise CommandError("--until 早于开始时间 / --until is before the start")
            totals = run_until(until=end, start=begin)
        self.stdout.write(" ".join(f"{key}={value}" for key, value in totals.items()))
