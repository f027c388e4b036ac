"""The per-customer purchase rollup (``PurchaseRollup``) behind ``rfm_summary``.

A *purchase* is what ``rfm_summary`` counts: an order with ``paid_at`` set and payment status paid or partially
refunded, amount ``paid_fen − refunded_fen``, on its calendar day in Asia/Shanghai, under the order's own
customer. Per customer the rollup keeps the first and last buying day, the number of buying days, the total
amount and the first day's amount — lifetimes' frequency, recency, T and monetary value follow exactly.

Two ways to write it, both computing rows from the orders table (never by increments, so replays are harmless):

- ``rollup_refresh``: some customers, after an order of theirs was paid, refunded or cancelled (background
  subscriber in ``rfm.tasks``);
- ``rollup_rebuild``: a whole workspace in one ``INSERT … SELECT … ON CONFLICT`` (backfill, management command
  ``rfm_rollup_rebuild``, the daily consistency run).

Concurrency (PostgreSQL): a refresh holds its workspace's advisory lock in shared mode and each customer's in
exclusive mode (ids in order) before it reads the orders, a rebuild holds the workspace's lock exclusively.
READ COMMITTED takes each statement's snapshot after the locks are granted, so the last writer of a row has
seen every order change committed before it started, and every order change is followed (after its commit) by
a refresh: the row ends up right whatever the interleaving. SQLite has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from siyu.commerce.orders.models import Order
from siyu.engagement.rfm.models import PurchaseRollup

PURCHASE_STATUSES = ("paid", "partially_refunded")
PACK = 1 << 40  # a customer-day's amount stays below 2^40 fen (¥10 billion)
LOCK_WORKSPACE = 0x52464D57  # advisory lock key spaces ("RFMW", "RFMC")
LOCK_CUSTOMER = 0x52464D43
REBUILD_WORK_MEM = "512MB"  # PostgreSQL, for the rebuild's transaction only


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def day_sql(column: str) -> str:
    """Days since 1970-01-01 in Asia/Shanghai (UTC+8 all year, no daylight saving since 1991) of a timestamp."""
    if _postgres():
        return f"(({column} AT TIME ZONE 'UTC' + INTERVAL '8 hours')::date - DATE '1970-01-01')"
    return f"CAST(julianday(date({column}, '+8 hours')) - 2440587.5 AS INTEGER)"


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(int(pk)) for pk in ids)


def purchase_days_sql(where: str) -> str:
    """Buying days of the orders matching ``where`` (alias o): one row per (customer, workspace, day) with the
    day's amount as bigint — the one definition of a purchase, shared by the rollup and ``rfm_summary_from_orders``
    (PostgreSQL's SUM(bigint) is numeric, slow to aggregate again)."""
    orders = Order._meta.db_table
    statuses = ", ".join(f"'{status}'" for status in PURCHASE_STATUSES)
    return f"""
        SELECT o.customer_id AS customer_id, o.workspace_id AS workspace_id, {day_sql("o.paid_at")} AS day,
            CAST(SUM(o.paid_fen - o.refunded_fen) AS bigint) AS fen
        FROM {orders} o
        WHERE o.paid_at IS NOT NULL AND o.payment_status IN ({statuses}) AND {where}
        GROUP BY o.customer_id, o.workspace_id, {day_sql("o.paid_at")}
    """


def _fresh_sql(where: str) -> str:
    """Rollup rows computed from the orders matching ``where`` (alias o): buying days, then customers. The
    first day's amount without a second pass: MIN(day · 2^40 + fen) is the first day's pair. Sums are cast
    back to bigint."""
    return f"""
        SELECT customer_id, workspace_id, MIN(day) AS first_day, MAX(day) AS last_day, COUNT(*) AS days,
            CAST(SUM(fen) AS bigint) AS total_fen, MIN(day * {PACK} + fen) % {PACK} AS first_day_fen
        FROM ({purchase_days_sql(where)}) AS days
        GROUP BY customer_id, workspace_id
    """


def _upsert_sql(fresh: str) -> str:
    table = PurchaseRollup._meta.db_table
    columns = ("first_day", "last_day", "days", "total_fen", "first_day_fen")
    sets = ", ".join(f"{column} = excluded.{column}" for column in columns)
    changed = " OR ".join(f"{table}.{column} <> excluded.{column}" for column in columns)
    return f"""
        INSERT INTO {table} (customer_id, workspace_id, {", ".join(columns)})
        SELECT customer_id, workspace_id, {", ".join(columns)} FROM ({fresh}) AS fresh WHERE true
        ON CONFLICT (customer_id) DO UPDATE SET {sets} WHERE {changed}
    """


def rollup_refresh(*, workspace_id: int, customer_ids: Iterable[int]) -> int:
    """Recompute these customers' rows from the orders table (a customer without purchases loses its row).
    Idempotent; safe to run concurrently with itself and with ``rollup_rebuild``. Returns rows written."""
    ids = sorted({int(pk) for pk in customer_ids})
    if not ids:
        return 0
    table = PurchaseRollup._meta.db_table
    id_list = _ids(ids)
    with transaction.atomic(), connection.cursor() as cursor:
        if _postgres():
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [LOCK_WORKSPACE, int(workspace_id) % 2147483647])
            # One key per customer (ids folded into 31 bits: a collision only serialises two refreshes), taken in
            # key order so that refreshes of several customers never deadlock each other.
            cursor.execute("SELECT COUNT(pg_advisory_xact_lock(%s, k)) FROM (SELECT DISTINCT "
                           "(id %% 2147483647)::integer AS k FROM unnest(%s::bigint[]) AS ids(id) ORDER BY 1) AS keys",
                           [LOCK_CUSTOMER, ids])
        where = f"o.workspace_id = {int(workspace_id)} AND o.customer_id IN ({id_list})"
        cursor.execute(_upsert_sql(_fresh_sql(where)))
        written = max(cursor.rowcount, 0)
        cursor.execute(f"DELETE FROM {table} WHERE customer_id IN ({id_list}) AND customer_id NOT IN "
                       f"(SELECT customer_id FROM ({_fresh_sql(where)}) AS fresh)")
        return written + max(cursor.rowcount, 0)


def rollup_rebuild(*, workspace_id: int) -> int:
    """Recompute the workspace's whole rollup from the orders table in one set-based pass (rows that did not
    change are not rewritten; rows of customers without purchases are deleted). Returns rows written."""
    table = PurchaseRollup._meta.db_table
    fresh = _fresh_sql(f"o.workspace_id = {int(workspace_id)}")
    with transaction.atomic(), connection.cursor() as cursor:
        if _postgres():
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_WORKSPACE, int(workspace_id) % 2147483647])
            # Grouping every purchase by customer-day: enough memory for the hash tables not to spill to disk,
            # and no JIT compilation (seconds of CPU for a plan that is plain hashing).
            cursor.execute(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'")
            cursor.execute("SET LOCAL jit = off")
            # One statement: the fresh rows computed once, upserted, and the stale rows deleted (the DELETE sees
            # the table as it was before the upsert).
            cursor.execute(f"""
                WITH fresh AS MATERIALIZED ({fresh}),
                upserted AS ({_upsert_sql("SELECT * FROM fresh")} RETURNING 1),
                deleted AS (DELETE FROM {table} r WHERE r.workspace_id = {int(workspace_id)}
                            AND NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.customer_id = r.customer_id)
                            RETURNING 1)
                SELECT (SELECT COUNT(*) FROM upserted) + (SELECT COUNT(*) FROM deleted)
            """)
            return int(cursor.fetchone()[0])
        cursor.execute(_upsert_sql(fresh))
        written = max(cursor.rowcount, 0)
        cursor.execute(f"DELETE FROM {table} WHERE workspace_id = {int(workspace_id)} AND customer_id NOT IN "
                       f"(SELECT customer_id FROM ({fresh}) AS fresh)")
        return written + max(cursor.rowcount, 0)
