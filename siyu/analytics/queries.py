"""The analytics query layer: the set-based SQL that rolls events and customers up into DailyMetric.

Every difference between database engines lives in ``Dialect`` below, so another engine (a columnar
or distributed one reading the same append-only event table) is one more subclass, not a rewrite.

Day boundaries are Asia/Shanghai days. PostgreSQL converts with ``AT TIME ZONE 'Asia/Shanghai'``;
SQLite has no time zones, so it shifts the stored UTC time by a fixed +8 hours. That is exact for
Shanghai: China has had no daylight saving time since 1991, long before any data Siyu holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from siyu.analytics.models import DailyMetric, Metric
from siyu.core.timeutil import start_of_local_day
from siyu.customers.event_catalogue import BUILTIN
from siyu.customers.models import Customer, CustomerStatus, Event, Identity

# Event types that are not interactions (SPEC A1). Workspace-defined types count as interactions,
# as the catalogue's default says.
NON_INTERACTION_TYPES: tuple[str, ...] = tuple(sorted(t.name for t in BUILTIN if not t.interaction))


class Dialect:
    """What differs between engines. Subclasses override; the SQL in this module uses only these."""

    name = "base"

    def local_day(self, column: str) -> str:
        """SQL expression: the Asia/Shanghai calendar day of a stored (UTC) timestamp column."""
        raise NotImplementedError

    def session_setup(self) -> list[str]:
        """Statements run at the start of a refresh transaction (tuning that must not leak out of it)."""
        return []

    def upsert(self, key: Sequence[str], update: Sequence[str]) -> str:
        # Standard on PostgreSQL and SQLite >= 3.24 alike.
        sets = ", ".join(f"{column} = excluded.{column}" for column in update)
        return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"

    def __init__(self, connection: BaseDatabaseWrapper):
        self.connection = connection

    def datetime_param(self, value: datetime) -> Any:
        # Django's own adaptation: UTC text for SQLite, the aware datetime for PostgreSQL.
        return self.connection.ops.adapt_datetimefield_value(value)

    def date_param(self, value: date) -> Any:
        return self.connection.ops.adapt_datefield_value(value)

    def date_result(self, value: Any) -> date:
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


class PostgresDialect(Dialect):
    name = "postgresql"

    def local_day(self, column: str) -> str:
        return f"(({column}) AT TIME ZONE 'Asia/Shanghai')::date"

    def session_setup(self) -> list[str]:
        # A whole-history rollup sorts millions of (day, customer) pairs: keep that in memory.
        return ["SET LOCAL work_mem = '256MB'"]


class SqliteDialect(Dialect):
    name = "sqlite"

    def local_day(self, column: str) -> str:
        # Stored as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'; Shanghai is UTC+8 all year.
        return f"date({column}, '+8 hours')"


DIALECTS: dict[str, type[Dialect]] = {"postgresql": PostgresDialect, "sqlite": SqliteDialect}


def dialect_for(using: str = "default") -> Dialect:
    connection = connections[using]
    try:
        return DIALECTS[connection.vendor](connection)
    except KeyError:
        raise NotImplementedError(f"analytics has no SQL dialect for {connection.vendor}") from None


@dataclass(frozen=True)
class DayRange:
    """Inclusive range of Shanghai days."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return start_of_local_day(self.first)

    @property
    def end(self) -> datetime:
        return start_of_local_day(self.last + timedelta(days=1))


def day_ranges(days: Iterable[date]) -> list[DayRange]:
    """Collapse a set of days into the fewest contiguous ranges."""
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1].last + timedelta(days=1) == day:
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges


_ROLLUP = DailyMetric._meta.db_table
_CUSTOMER = Customer._meta.db_table
_EVENT = Event._meta.db_table
_IDENTITY = Identity._meta.db_table
_KEY = ("workspace_id", "metric", "day", "dimension")
_COLUMNS = "workspace_id, day, metric, dimension, value, run"


class RollupQueries:
    """The statements one refresh runs, for one workspace and one refresh run number."""

    def __init__(self, *, workspace_id: int, run: int, using: str = "default"):
        self.workspace_id = workspace_id
        self.run = run
        self.using = using
        self.dialect = dialect_for(using)

    def prepare(self) -> None:
        for statement in self.dialect.session_setup():
            self._execute(statement, [])

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    # --- new customers: always recomputed whole (merges change which customers are live) ---------------
    def new_customers_all(self) -> int:
        day = self.dialect.local_day("c.first_seen_at")
        sql = (
            f"INSERT INTO {_ROLLUP} ({_COLUMNS}) "
            f"SELECT c.workspace_id, {day}, %s, c.first_channel, COUNT(*), %s FROM {_CUSTOMER} c "
            f"WHERE c.workspace_id = %s AND c.status = %s "
            f"GROUP BY c.workspace_id, {day}, c.first_channel "
            f"{self.dialect.upsert(_KEY, ('value', 'run'))}"
        )
        written = self._execute(sql, [Metric.NEW_CUSTOMERS.value, self.run, self.workspace_id,
                                      CustomerStatus.ACTIVE.value])
        self._execute(f"DELETE FROM {_ROLLUP} WHERE workspace_id = %s AND metric = %s AND run <> %s",
                      [self.workspace_id, Metric.NEW_CUSTOMERS.value, self.run])
        return written

    # --- events and active customers: recomputed per range of days ----------------------------------
    def events_for_days(self, days: DayRange) -> int:
        day = self.dialect.local_day("e.occurred_at")
        sql = (
            f"INSERT INTO {_ROLLUP} ({_COLUMNS}) "
            f"SELECT e.workspace_id, {day}, %s, e.type, COUNT(*), %s FROM {_EVENT} e "
            f"WHERE e.workspace_id = %s AND e.occurred_at >= %s AND e.occurred_at < %s "
            f"GROUP BY e.workspace_id, {day}, e.type "
            f"{self.dialect.upsert(_KEY, ('value', 'run'))}"
        )
        return self._execute(sql, [Metric.EVENTS.value, self.run, self.workspace_id,
                                   self.dialect.datetime_param(days.start), self.dialect.datetime_param(days.end)])

    def active_customers_for_days(self, days: DayRange) -> int:
        day = self.dialect.local_day("e.occurred_at")
        excluded = ""
        if NON_INTERACTION_TYPES:
            excluded = f"AND e.type NOT IN ({', '.join(['%s'] * len(NON_INTERACTION_TYPES))}) "
        # identity.customer_id is always a live customer: a merge moves the loser's identities.
        sql = (
            f"INSERT INTO {_ROLLUP} ({_COLUMNS}) "
            f"SELECT e.workspace_id, {day}, %s, '', COUNT(DISTINCT i.customer_id), %s FROM {_EVENT} e "
            f"JOIN {_IDENTITY} i ON i.id = e.identity_id "
            f"WHERE e.workspace_id = %s AND e.occurred_at >= %s AND e.occurred_at < %s {excluded}"
            f"GROUP BY e.workspace_id, {day} "
            f"{self.dialect.upsert(_KEY, ('value', 'run'))}"
        )
        return self._execute(sql, [Metric.ACTIVE_CUSTOMERS.value, self.run, self.workspace_id,
                                   self.dialect.datetime_param(days.start), self.dialect.datetime_param(days.end),
                                   *NON_INTERACTION_TYPES])

    def drop_stale(self, days: DayRange, metrics: Sequence[str]) -> int:
        """Rows in a recomputed range that this run did not write describe data that is gone."""
        return self._execute(
            f"DELETE FROM {_ROLLUP} WHERE workspace_id = %s AND metric IN ({', '.join(['%s'] * len(metrics))}) "
            f"AND day >= %s AND day <= %s AND run <> %s",
            [self.workspace_id, *metrics, self.dialect.date_param(days.first), self.dialect.date_param(days.last),
             self.run],
        )

    # --- which days need recomputing ----------------------------------------------------------------
    def days_of_events_after(self, event_id: int) -> set[date]:
        """Shanghai days of events stored after a watermark id (late arrivals for old days included)."""
        day = self.dialect.local_day("e.occurred_at")
        rows = self._fetch(f"SELECT DISTINCT {day} FROM {_EVENT} e WHERE e.id > %s AND e.workspace_id = %s",
                           [event_id, self.workspace_id])
        return {self.dialect.date_result(row[0]) for row in rows}

    def days_of_customers_events(self, customer_ids: Sequence[int]) -> set[date]:
        """Shanghai days on which any of these customers had an event (their active counts may change)."""
        day = self.dialect.local_day("e.occurred_at")
        found: set[date] = set()
        ids = sorted(set(customer_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._fetch(
                f"SELECT DISTINCT {day} FROM {_EVENT} e JOIN {_IDENTITY} i ON i.id = e.identity_id "
                f"WHERE e.workspace_id = %s AND i.customer_id IN ({', '.join(['%s'] * len(chunk))})",
                [self.workspace_id, *chunk],
            )
            found.update(self.dialect.date_result(row[0]) for row in rows)
        return found

    def event_day_span(self) -> DayRange | None:
        # MIN/MAX of the timestamp use the (workspace, occurred_at) index; the day is computed after.
        first_day = self.dialect.local_day("MIN(e.occurred_at)")
        last_day = self.dialect.local_day("MAX(e.occurred_at)")
        rows = self._fetch(f"SELECT {first_day}, {last_day} FROM {_EVENT} e WHERE e.workspace_id = %s",
                           [self.workspace_id])
        first, last = rows[0]
        if first is None:
            return None
        return DayRange(self.dialect.date_result(first), self.dialect.date_result(last))

    def last_event_id(self) -> int:
        # Global maximum (a primary-key lookup): every event of every workspace up to it has been seen.
        return self._fetch(f"SELECT COALESCE(MAX(id), 0) FROM {_EVENT}", [])[0][0]
