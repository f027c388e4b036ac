"""Batch event ingestion (issue 2 §5): validate, deduplicate by event_id, resolve identities, store.

Answers per event: accepted, duplicate (stored before; nothing changed) or rejected with a reason.

Correctness under concurrency: a batch is one transaction. Events already stored are found first and
skip identity resolution entirely, so a replay changes no row. The insert itself is
``INSERT … ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING event_id``: when a concurrent
request stored one of our ids between our check and our insert, the whole batch is rolled back and
redone (the redo sees those ids as duplicates), so a lost race never leaves customers or identities
created for an event that was not accepted. Each id is accepted exactly once.

Speed: on PostgreSQL the rows go in by binary COPY into a temporary staging table and one
``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING``; no ORM object is built per event. SQLite uses
multi-row VALUES with the same ON CONFLICT clause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from siyu.core.domain_events import events_ingested
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.event_catalogue import BUILTIN_BY_NAME, EventType
from siyu.customers.event_validation import EventRejected, validate_event
from siyu.customers.identity import Observation, Resolution, identities_resolve, identities_touch, sort_keys
from siyu.customers.last_seen import touches_record
from siyu.customers.models import Customer, Event, EventDefinition, Identity

EVENT_COLUMNS = ("workspace_id", "event_id", "type", "occurred_at", "received_at", "identity_id", "channel",
                 "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "properties")
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
ATTEMPTS = 4


@dataclass(slots=True)
class EventOutcome:
    index: int
    event_id: str | None
    status: str  # accepted | duplicate | rejected
    code: str = ""
    message: str = ""
    message_en: str = ""
    field: str = ""
    customer_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "event_id": self.event_id, "status": self.status}
        if self.status == "rejected":
            body.update(code=self.code, message=self.message, message_en=self.message_en, field=self.field)
        if self.customer_id is not None:
            body["customer_id"] = self.customer_id
        return body


@dataclass
class BatchResult:
    outcomes: list[EventOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


class _RaceLost(Exception):
    """A concurrent request stored some of our event ids first; the batch is redone."""


def event_catalogue_for(workspace: Workspace) -> dict[str, EventType]:
    catalogue = dict(BUILTIN_BY_NAME)
    for definition in EventDefinition.objects.filter(workspace=workspace):
        catalogue[definition.name] = EventType(
            definition.name, definition.label or definition.name, definition.label or definition.name,
            {name: (spec.get("type", "string"), bool(spec.get("required"))) for name, spec in
             definition.properties.items()},
        )
    return catalogue


def events_ingest(*, workspace: Workspace, events: Any, now: datetime | None = None) -> BatchResult:
    if not isinstance(events, list):
        raise SiyuError("invalid_batch", "events 必须是数组", "events must be an array", status=400)
    if not events:
        raise SiyuError("empty_batch", "批次中没有事件", "the batch contains no events", status=400)
    limit = settings.SIYU_INGEST_MAX_EVENTS
    if len(events) > limit:
        raise SiyuError("batch_too_large", f"每批最多 {limit} 个事件", f"at most {limit} events per batch", status=413,
                        details={"max_events": limit, "received": len(events)})
    now = now or timezone.now()
    catalogue = event_catalogue_for(workspace)
    max_future = timedelta(seconds=settings.SIYU_INGEST_MAX_FUTURE_SECONDS)
    max_age = timedelta(days=settings.SIYU_INGEST_MAX_AGE_DAYS)

    result = BatchResult()
    valid: list[tuple[int, dict[str, Any]]] = []
    seen_ids: set[str] = set()
    phones: dict[str, str] = {}  # phone as sent → keyed hash, shared by the batch's events
    for index, raw in enumerate(events):
        event_id = raw.get("event_id") if isinstance(raw, dict) and isinstance(raw.get("event_id"), str) else None
        try:
            event = validate_event(raw, catalogue=catalogue, now=now, max_future=max_future, max_age=max_age,
                                   phones=phones)
        except EventRejected as rejected:
            result.outcomes.append(EventOutcome(index, event_id, "rejected", rejected.code, rejected.message_zh,
                                                rejected.message_en, rejected.field))
            continue
        if event["event_id"] in seen_ids:  # repeated inside the batch: the first one counts
            result.outcomes.append(EventOutcome(index, event_id, "duplicate"))
            continue
        seen_ids.add(event["event_id"])
        result.outcomes.append(EventOutcome(index, event_id, "accepted"))
        valid.append((index, event))

    if valid:
        stored = _store_with_retry(workspace, valid, now)
        for index, customer_id in stored.items():
            outcome = result.outcomes[index]
            if customer_id is None:
                outcome.status = "duplicate"
            else:
                outcome.customer_id = customer_id
    return result


def _retryable(error: DatabaseError) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES or "database is locked" in str(error)


def _store_with_retry(workspace: Workspace, valid: list[tuple[int, dict[str, Any]]],
                      now: datetime) -> dict[int, int | None]:
    """Optimistic first: concurrent batches of a workspace run side by side (shared lock). When one of
    them collides with another over a new identity or an event id, it is redone holding the workspace's
    ingestion lock exclusively, so it cannot collide again: progress is guaranteed, not just likely."""
    for attempt in range(ATTEMPTS):
        last = attempt == ATTEMPTS - 1
        exclusive = attempt > 0
        try:
            with transaction.atomic():
                _ingestion_lock(workspace.pk, exclusive=exclusive)
                return _store(workspace, valid, now, tolerate_race=last,
                              resolve_attempts=8 if exclusive else 2)
        except _RaceLost:
            continue
        except (OperationalError, IntegrityError) as error:
            if last or not (_retryable(error) or isinstance(error, IntegrityError)):
                raise
    raise AssertionError("unreachable")


INGEST_LOCK_CLASS = 0x5159  # first key of the advisory lock (workspace id is the second)


def _ingestion_lock(workspace_id: int, *, exclusive: bool) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite: writers are serialised by the database itself (BEGIN IMMEDIATE)
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with _pg_cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [INGEST_LOCK_CLASS, workspace_id])


def _store(workspace: Workspace, valid: list[tuple[int, dict[str, Any]]], now: datetime, *,
           tolerate_race: bool, resolve_attempts: int) -> dict[int, int | None]:
    ids = [event["event_id"] for _, event in valid]
    existing = _existing_ids(workspace.pk, ids)
    outcome: dict[int, int | None] = {}
    fresh: list[tuple[int, dict[str, Any]]] = []
    for index, event in valid:
        if event["event_id"] in existing:
            outcome[index] = None
        else:
            fresh.append((index, event))
    if not fresh:
        return outcome
    resolutions = _resolve(workspace, [event for _, event in fresh], attempts=resolve_attempts)
    rows = []
    for (_, event), resolution in zip(fresh, resolutions, strict=True):
        utm = event["utm"]
        rows.append((event["event_id"], event["type"], event["occurred_at"], resolution.identity_id,
                     event["channel"], utm["source"], utm["medium"], utm["campaign"], utm["content"], utm["term"],
                     event["properties_json"]))
    rows.sort(key=lambda row: row[0])  # one lock order for every writer: no deadlock between two batches
    on_postgres = connection.vendor == "postgresql"
    # PostgreSQL, optimistic: none of these ids was stored when we looked, so COPY them straight into the
    # event table. Only when a concurrent batch stored one meanwhile (unique violation) is the COPY undone
    # and the batch written by the INSERT … ON CONFLICT path, which tells which ids it wrote.
    inserted = _copy_events(workspace.pk, now, rows) if on_postgres else None
    if inserted is None:
        inserted = _insert_events(workspace.pk, now, rows)
    if len(inserted) != len(rows) and not tolerate_race:
        raise _RaceLost()
    latest: dict[int, datetime] = {}
    identity_latest: dict[int, datetime] = {}
    for (index, event), resolution in zip(fresh, resolutions, strict=True):
        if event["event_id"] not in inserted:
            outcome[index] = None
            continue
        outcome[index] = resolution.customer_id
        moment = event["occurred_at"]
        if resolution.customer_id not in latest or moment > latest[resolution.customer_id]:
            latest[resolution.customer_id] = moment
        # On PostgreSQL the identity the event is filed under carries the customer's last-seen time
        # to the job (which finds the customer through it, after any merge).
        for identity_id in (resolution.seen_identity_ids or [resolution.identity_id]) if on_postgres \
                else resolution.seen_identity_ids:
            if identity_id not in identity_latest or moment > identity_latest[identity_id]:
                identity_latest[identity_id] = moment
    if on_postgres:
        # One row for the batch; siyu.customers.last_seen folds it into identities and customers.
        touches_record(workspace.pk, identity_latest)
    else:
        _touch_last_seen(latest, identity_latest)
    # Delivered on commit: rule tags and rollups react to what arrived (nothing on rollback).
    events_ingested(workspace.pk, list(latest))
    return outcome


def _resolve(workspace: Workspace, events: list[dict[str, Any]], *, attempts: int) -> list[Resolution]:
    """Resolve each event's identities to (customer, identity filed under).

    Fast path, most traffic: every identity of the event is already known and all belong to one customer.
    The resolver would change nothing for it and answer (that customer, best-ranked key), so we answer
    that from one read. Everything else goes to identities_resolve, once per distinct set of identities
    (a browsing session of 30 page views is one observation, at its earliest time)."""
    known = _known_identities(workspace.pk, {key for event in events for key in event["keys"]})
    results: list[Resolution | None] = [None] * len(events)
    slow: list[int] = []
    # A customer's events carry the same identities: decide once per distinct list of keys.
    decided: dict[tuple, Resolution | None] = {}
    for position, event in enumerate(events):
        signature = tuple(event["keys"])
        if signature in decided:
            answer = decided[signature]
        else:
            keys = event["keys"]
            owners = {known[key][1] for key in keys if key in known}
            answer = None
            if len(owners) == 1 and all(key in known for key in keys):
                # every identity of the event was observed again (the slow path's resolver does this itself)
                answer = Resolution(customer_id=owners.pop(), identity_id=known[sort_keys(keys)[0]][0],
                                    seen_identity_ids=[known[key][0] for key in keys])
            decided[signature] = answer
        if answer is None:
            slow.append(position)
        else:
            results[position] = answer
    if not slow:
        return results  # type: ignore[return-value]

    group_of: list[int] = []
    groups: dict[frozenset, int] = {}
    observations: list[Observation] = []
    for position in slow:
        event = events[position]
        signature = frozenset(event["keys"])
        number = groups.get(signature)
        if number is None:
            number = groups[signature] = len(observations)
            observations.append(Observation(list(event["keys"]), event["occurred_at"], event["channel"],
                                            last_seen_at=event["occurred_at"]))
        else:
            observation = observations[number]
            if event["occurred_at"] < observation.occurred_at:
                # A new customer's first arrival is the earliest event: its time and its channel together.
                observation.occurred_at = event["occurred_at"]
                observation.channel = event["channel"]
            if event["occurred_at"] > observation.last_seen_at:
                observation.last_seen_at = event["occurred_at"]
        group_of.append(number)
    resolved = identities_resolve(workspace=workspace, observations=observations, attempts=attempts)
    for position, number in zip(slow, group_of, strict=True):
        results[position] = resolved[number]
    if len(slow) < len(events):
        # The slow path may have merged a customer the fast path answered with: re-read the owners.
        slow_positions = set(slow)
        fast_ids = {result.identity_id for position, result in enumerate(results)
                    if position not in slow_positions and result is not None}
        owner_now = _identity_owners(list(fast_ids))
        for result in results:
            if result is not None and result.identity_id in owner_now:
                result.customer_id = owner_now[result.identity_id]
    return results  # type: ignore[return-value]


def _known_identities(workspace_id: int, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(kind, namespace, value): (identity id, customer id)} for the keys already stored."""
    values = sorted({key[2] for key in keys})
    found: dict[tuple[str, str, str], tuple[int, int]] = {}
    if not values:
        return found
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Identity._meta.db_table)
        with _pg_cursor() as cursor:
            # The values travel as one JSON document: no per-element quoting in Python. A join, not
            # `value = ANY(ARRAY(subquery))`: with the array known only at run time PostgreSQL filtered the
            # workspace's rows by a linear search of the array (~30 ms for 900 values); the join hashes them.
            cursor.execute(f"SELECT i.kind, i.namespace, i.value, i.id, i.customer_id "
                           "FROM (SELECT DISTINCT jsonb_array_elements_text(%s::jsonb) AS value) AS v "
                           f"JOIN {table} AS i ON i.workspace_id = %s AND i.value = v.value",
                           [orjson.dumps(values).decode(), workspace_id], prepare=False)
            rows = cursor.fetchall()
    else:
        rows = []
        for start in range(0, len(values), 500):
            rows += Identity.objects.filter(workspace_id=workspace_id, value__in=values[start:start + 500]).values_list(
                "kind", "namespace", "value", "id", "customer_id")
    for kind, namespace, value, pk, customer_id in rows:
        if (kind, namespace, value) in keys:
            found[(kind, namespace, value)] = (pk, customer_id)
    return found


def _identity_owners(identity_ids: list[int]) -> dict[int, int]:
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute("SELECT id, customer_id FROM customers_identity "
                           "WHERE id = ANY(string_to_array(%s, ',')::bigint[])",
                           [",".join(str(pk) for pk in identity_ids)])
            return dict(cursor.fetchall())
    owners: dict[int, int] = {}
    for start in range(0, len(identity_ids), 500):
        owners.update(Identity.objects.filter(pk__in=identity_ids[start:start + 500])
                      .values_list("pk", "customer_id"))
    return owners


def _existing_ids(workspace_id: int, ids: list[str]) -> set[str]:
    table = connection.ops.quote_name(Event._meta.db_table)
    if connection.vendor == "postgresql":
        # event ids never contain a comma (EVENT_ID_RE): one text parameter instead of a 1000-element array.
        with _pg_cursor() as cursor:
            cursor.execute(f"SELECT event_id FROM {table} WHERE workspace_id = %s "
                           "AND event_id = ANY(string_to_array(%s, ','))", [workspace_id, ",".join(ids)])
            return {row[0] for row in cursor.fetchall()}
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found.update(Event.objects.filter(workspace_id=workspace_id, event_id__in=ids[start:start + 500])
                     .values_list("event_id", flat=True))
    return found


def _pg_cursor():
    """A plain (server-side binding) psycopg cursor on Django's connection, inside Django's transaction."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


STAGE_TYPES = ("text", "text", "timestamptz", "int8", "text", "text", "text", "text", "text", "text", "text")
STAGE_DDL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS siyu_event_stage (event_id text, type text, occurred_at timestamptz, "
    "identity_id bigint, channel text, utm_source text, utm_medium text, utm_campaign text, utm_content text, "
    "utm_term text, properties text) ON COMMIT DELETE ROWS; DELETE FROM siyu_event_stage"
)


def _insert_events(workspace_id: int, now: datetime, rows: list[tuple]) -> set[str]:
    """Insert rows (event_id, type, occurred_at, identity_id, channel, utm×5, properties JSON bytes); return
    the event ids actually inserted (not already present)."""
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = ", ".join(EVENT_COLUMNS)
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            # Binary COPY into a per-connection temporary table (emptied at commit), then one set-based
            # insert that skips ids stored concurrently and tells us which ones it wrote.
            cursor.execute(STAGE_DDL)
            with cursor.copy("COPY siyu_event_stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(STAGE_TYPES)
                for row in rows:
                    copy.write_row((*row[:-1], row[-1].decode()))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT %s, event_id, type, occurred_at, %s, identity_id, channel, "
                "utm_source, utm_medium, utm_campaign, utm_content, utm_term, properties::jsonb "
                "FROM siyu_event_stage ORDER BY event_id "
                "ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING event_id",
                [workspace_id, now],
            )
            return {row[0] for row in cursor.fetchall()}
    inserted: set[str] = set()
    received = connection.ops.adapt_datetimefield_value(now)
    placeholders = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            params: list[Any] = []
            for (event_id, event_type, occurred_at, identity_id, channel, *utm, properties) in chunk:
                params += [workspace_id, event_id, event_type, connection.ops.adapt_datetimefield_value(occurred_at),
                           received, identity_id, channel, *utm, properties.decode()]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(chunk))} "
                "ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING event_id",
                params,
            )
            inserted.update(row[0] for row in cursor.fetchall())
    return inserted


def _jsonb_dumper():
    """A binary COPY dumper for jsonb that sends the JSON text we already have (validation serialised it)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class JsonbText(Dumper):
        format = Format.BINARY

        def dump(self, obj: bytes) -> bytes:
            return b"\x01" + obj  # jsonb's binary input: version 1, then the text

    return JsonbText


class _JsonDocument(bytes):
    """Marker type the jsonb dumper is registered for on the COPY cursor (bytes are left alone)."""


EVENT_TYPES = ("int8", "text", "text", "timestamptz", "timestamptz", "int8", "text", "text", "text", "text", "text",
               "text", "jsonb")


def _copy_events(workspace_id: int, now: datetime, rows: list[tuple]) -> set[str] | None:
    """Binary COPY of the rows straight into the event table, in a savepoint. Returns the ids written (all
    of them), or None when an id was stored concurrently since we checked: the COPY is rolled back and
    the caller takes the ON CONFLICT path."""
    import psycopg

    table = connection.ops.quote_name(Event._meta.db_table)
    try:
        with transaction.atomic(savepoint=True), _pg_cursor() as cursor:
            dumper = _jsonb_dumper()
            dumper.oid = cursor.adapters.types["jsonb"].oid
            cursor.adapters.register_dumper(_JsonDocument, dumper)
            with cursor.copy(f"COPY {table} ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(EVENT_TYPES)
                write = copy.write_row
                for (event_id, event_type, occurred_at, identity_id, channel, source, medium, campaign, content,
                     term, properties) in rows:
                    write((workspace_id, event_id, event_type, occurred_at, now, identity_id, channel, source,
                           medium, campaign, content, term, properties))
    except psycopg.errors.UniqueViolation:
        return None
    return {row[0] for row in rows}


def _touch_last_seen(latest: dict[int, datetime], identities: dict[int, datetime]) -> None:
    """Move customers' and identities' last_seen_at forward (never back); rows already later are not written."""
    if not latest and not identities:
        return
    table = connection.ops.quote_name(Customer._meta.db_table)
    if connection.vendor == "postgresql":
        ordered = sorted(latest.items())
        seen = sorted(identities.items())
        with _pg_cursor() as cursor:
            # one statement for both tables; ids travel as comma-joined text (cheaper than array dumping)
            cursor.execute(
                f"WITH c AS (UPDATE {table} AS c SET last_seen_at = v.t "
                "FROM unnest(string_to_array(%s, ',')::bigint[], string_to_array(%s, ',')::timestamptz[]) AS v(id, t) "
                "WHERE c.id = v.id AND c.last_seen_at < v.t RETURNING 1) "
                "UPDATE customers_identity AS i SET last_seen_at = w.t "
                "FROM unnest(string_to_array(%s, ',')::bigint[], string_to_array(%s, ',')::timestamptz[]) AS w(id, t) "
                "WHERE i.id = w.id AND i.last_seen_at < w.t",
                [",".join(str(pk) for pk, _ in ordered), ",".join(moment.isoformat() for _, moment in ordered),
                 ",".join(str(pk) for pk, _ in seen), ",".join(moment.isoformat() for _, moment in seen)],
            )
        return
    identities_touch(identities)
    # SQLite: one UPDATE … FROM a VALUES list per 500 customers instead of one statement per customer.
    ordered = [(pk, connection.ops.adapt_datetimefield_value(moment)) for pk, moment in sorted(latest.items())]
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            cursor.execute(
                f"WITH v(id, t) AS (VALUES {', '.join(['(%s, %s)'] * len(chunk))}) "
                f"UPDATE {table} SET last_seen_at = v.t FROM v WHERE {table}.id = v.id AND {table}.last_seen_at < v.t",
                [value for row in chunk for value in row],
            )
