"""Last-seen times kept as per-batch aggregates on PostgreSQL: recorded with the batch, folded in by a job.

Updating ``last_seen_at`` of every customer and identity a batch touches was the largest cost of ingestion
(a new row version, sometimes an entry in each index, for ~900 customers and ~1,200 identities per
1,000 events). Instead, a batch records one ``LastSeenTouch`` row (identity id → latest time) in its own
transaction, and ``last_seen_apply`` folds pending rows in: identities move forward to their latest time,
customers to the latest time of the identities they own *when the job runs* — so a merge in between is
followed (the identities moved to the winner). Times only move forward, so applying rows in any order,
twice, or concurrently gives the same result. Readers see last-seen times after the job ran (the periodic
task in ``siyu.customers.tasks`` runs every minute); ``last_seen_pending`` tells whether some are waiting.
SQLite (embedded) keeps updating the rows in the batch itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from siyu.customers.models import LastSeenTouch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEADLOCK = {"40P01", "40001"}


def touches_record(workspace_id: int, seen: dict[int, datetime]) -> None:
    """Record one batch's identities and their latest times (call inside the batch's transaction)."""
    if not seen:
        return
    ids = sorted(seen)
    at = [(seen[pk] - _EPOCH) // timedelta(microseconds=1) for pk in ids]
    payload = orjson.dumps({"ids": ids, "at": at}).decode()
    table = connection.ops.quote_name(LastSeenTouch._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (workspace_id, seen, created_at) VALUES (%s, %s, %s)",
                       [workspace_id, payload, timezone.now()])


def last_seen_pending(*, workspace_id: int | None = None) -> bool:
    rows = LastSeenTouch.objects.all()
    if workspace_id is not None:
        rows = rows.filter(workspace_id=workspace_id)
    return rows.exists()


def last_seen_apply(*, rows_per_round: int = 500, attempts: int = 5) -> int:
    """Fold every pending touch into identities and customers; returns the number of touch rows applied.

    Each round claims up to ``rows_per_round`` rows (``FOR UPDATE SKIP LOCKED``: concurrent runs share the
    work instead of waiting), applies them and deletes them in one transaction. A round that deadlocks
    with ingestion (both lock customers and identities) is rolled back and tried again; its rows stay
    pending until then, so nothing is lost."""
    applied = 0
    while True:
        for attempt in range(attempts):
            try:
                count = _apply_round(rows_per_round)
                break
            except OperationalError as error:
                if attempt == attempts - 1 or getattr(error.__cause__, "sqlstate", None) not in _DEADLOCK:
                    raise
        applied += count
        if count < rows_per_round:
            return applied


def _apply_round(limit: int) -> int:
    table = connection.ops.quote_name(LastSeenTouch._meta.db_table)
    with transaction.atomic():
        with connection.cursor() as cursor:
            skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
            cursor.execute(f"SELECT id, seen FROM {table} ORDER BY id LIMIT %s{skip_locked}", [limit])
            claimed = cursor.fetchall()
        if not claimed:
            return 0
        latest: dict[int, int] = {}
        for _, seen in claimed:
            document = orjson.loads(seen)
            for pk, moment in zip(document["ids"], document["at"], strict=True):
                if moment > latest.get(pk, -1 << 62):
                    latest[pk] = moment
        identity_times = {pk: _EPOCH + timedelta(microseconds=moment) for pk, moment in latest.items()}
        _fold(identity_times)
        touch_ids = [pk for pk, _ in claimed]
        with connection.cursor() as cursor:
            for start in range(0, len(touch_ids), 500):
                chunk = touch_ids[start:start + 500]
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
        return len(claimed)


def _fold(identity_times: dict[int, datetime]) -> None:
    """Move identities and their current customers forward (customers first: the lock order of the
    identity resolver, which locks customers before it moves identities)."""
    from siyu.customers.identity import identities_touch
    from siyu.customers.models import Customer, Identity

    ids = sorted(identity_times)
    owners: dict[int, int] = {}
    if connection.vendor == "postgresql" and ids:
        # ids as one JSON document: the ORM's `pk IN (…)` builds one parameter per id in Python
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, customer_id FROM customers_identity WHERE id IN "
                           "(SELECT jsonb_array_elements_text(%s::jsonb)::bigint)", [orjson.dumps(ids).decode()])
            owners.update(cursor.fetchall())
    else:
        for start in range(0, len(ids), 5000):
            owners.update(Identity.objects.filter(pk__in=ids[start:start + 5000]).values_list("pk", "customer_id"))
    customer_times: dict[int, datetime] = {}
    for pk, customer_id in owners.items():
        moment = identity_times[pk]
        if customer_id not in customer_times or moment > customer_times[customer_id]:
            customer_times[customer_id] = moment
    ordered = sorted(customer_times.items())
    if ordered:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE customers_customer AS c SET last_seen_at = v.t FROM (SELECT (r->>0)::bigint AS id, "
                    "(r->>1)::timestamptz AS t FROM jsonb_array_elements(%s::jsonb) AS r) AS v "
                    "WHERE c.id = v.id AND c.last_seen_at < v.t", [orjson.dumps(ordered).decode()])
        else:
            for pk, moment in ordered:
                Customer.objects.filter(pk=pk, last_seen_at__lt=moment).update(last_seen_at=moment)
    identities_touch({pk: identity_times[pk] for pk in owners})
