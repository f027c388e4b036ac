"""RFM layering at scale: our SQL RFM summary vs lifetimes on the same transactions, and the full scoring job.

    .venv/bin/python bench/bench_rfm.py --customers 1000000 --orders 10000000 [--events 2000000] [--write-results]

1. Creates a fresh PostgreSQL database ``siyu_perf_rfm`` (server of SIYU_TEST_PG_URL) and migrates it.
2. Loads customers (one identity each, first seen over 3 years), paid orders over the last 2 years (some
   discounted, 2% partially and 1% fully refunded) and interaction/view events over 60 days, all with
   INSERT … SELECT generate_series, then ANALYZE.
3. Reads the purchases (the transactions ``rfm_summary`` summarises: paid or partially refunded, net amount)
   into pandas — not timed — and times ``lifetimes.utils.summary_data_from_transaction_data`` (freq "D",
   days in Asia/Shanghai) against ``siyu.engagement.rfm.scoring.rfm_summary`` (one SQL statement, rows into
   a Python dict); asserts every number is identical and prints the ratio.
4. Times the full job ``rfm_recompute`` (scores upserted, three presets classified, moves recorded and
   published) on every customer, then a second run with nothing changed (no moves).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc, results_section_write  # noqa: E402

PG_DB = "siyu_perf_rfm"
ORDER_DAYS = 730
EVENT_TYPES = ["product_view", "message_in", "page_view", "article_read", "product_view", "share", "check_in"]


def database_prepare(*, reuse: bool) -> str:
    import psycopg

    server = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB]).fetchone()
        if reuse and exists:
            os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-rfm-"))
            return urlunsplit(urlsplit(server)._replace(path=f"/{PG_DB}"))
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DB}"')
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-rfm-"))
    return urlunsplit(urlsplit(server)._replace(path=f"/{PG_DB}"))


LOADED_TABLES = ("customers_customer", "customers_identity", "commerce_orders_order", "customers_event")


def secondary_drop(cursor, table: str) -> list[str]:
    """Drop the table's secondary indexes, unique and foreign-key constraints (not its primary key nor its
    CHECKs) before a bulk load; returns the statements that recreate them (bench-only database)."""
    cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC, conname", [table])
    constraints = cursor.fetchall()
    cursor.execute("SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                   "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass AND NOT x.indisprimary "
                   "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid "
                   "AND c.conrelid = x.indrelid)", [table])
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in indexes] + [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for name, definition in constraints]


def data_load(workspace_id: int, customers: int, orders: int, events: int) -> None:
    from django.db import connection

    series = "generate_series(1::bigint, %s::bigint) AS s(g)"
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET synchronous_commit = off")
        recreate = [statement for table in LOADED_TABLES for statement in secondary_drop(cursor, table)]
        cursor.execute(
            "INSERT INTO customers_customer (workspace_id, status, name_hash, phone_hash, gender, city, first_channel,"
            " first_seen_at, last_seen_at, attributes, created_at) SELECT %s, 'active', '', '', '', '', 'bench', "
            "now() - ((g * 7919) %% (3 * 365 * 86400)) * interval '1 second', now(), '{}', now() FROM " + series,
            [workspace_id, customers])
        cursor.execute("SELECT MIN(id) FROM customers_customer WHERE workspace_id = %s", [workspace_id])
        first_customer = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO customers_identity (workspace_id, customer_id, kind, namespace, value, first_seen_at, "
            "last_seen_at) SELECT workspace_id, id, 'openid', 'mp', 'o' || id::text, first_seen_at, first_seen_at "
            "FROM customers_customer WHERE workspace_id = %s", [workspace_id])
        cursor.execute("SELECT MIN(id) FROM customers_identity WHERE workspace_id = %s", [workspace_id])
        first_identity = cursor.fetchone()[0]
        # Orders: customers drawn by a multiplicative hash (about 10 each, many on the same day now and then),
        # amounts ¥10–¥510, a quarter discounted, 2% partially and 1% fully refunded.
        cursor.execute(f"""
            INSERT INTO commerce_orders_order (workspace_id, customer_id, number, order_status, payment_status,
                fulfilment_status, subtotal_fen, discount_fen, points_used, points_fen, shipping_fen, total_fen,
                paid_fen, refunded_fen, price_explanation, coupon_ids, source, buyer_note, remark, pay_expires_at,
                transaction_id, paid_at, carrier, tracking_number, cancel_reason, created_at, updated_at)
            SELECT %s, %s + ((g * 2654435761) %% %s), 'B' || g::text,
                CASE WHEN g %% 100 = 7 THEN 'cancelled' ELSE 'completed' END,
                CASE WHEN g %% 100 = 7 THEN 'refunded' WHEN g %% 50 = 3 THEN 'partially_refunded' ELSE 'paid' END,
                'delivered', amount + discount, discount, 0, 0, 0, amount, amount,
                CASE WHEN g %% 100 = 7 THEN amount WHEN g %% 50 = 3 THEN amount / 2 ELSE 0 END,
                '{{}}', '[]', 'h5', '', '', paid_at + interval '30 minutes', 'T' || g::text, paid_at, '', '', '',
                paid_at, paid_at
            FROM (SELECT g, 1000 + (g * 7793) %% 50000 AS amount, CASE WHEN g %% 4 = 0 THEN 500 ELSE 0 END AS discount,
                         now() - ((g * 104729) %% ({ORDER_DAYS} * 86400)) * interval '1 second' AS paid_at
                  FROM {series}) AS x
        """, [workspace_id, first_customer, customers, orders])
        types = "ARRAY[" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + "]"
        cursor.execute(f"""
            INSERT INTO customers_event (workspace_id, event_id, type, occurred_at, received_at, identity_id, channel,
                utm_source, utm_medium, utm_campaign, utm_content, utm_term, properties)
            SELECT %s, 'e' || g::text, ({types})[1 + g %% {len(EVENT_TYPES)}],
                now() - ((g * 7919) %% (60 * 86400)) * interval '1 second', now(),
                %s + ((g * 2246822519) %% %s), '', '', '', '', '', '', '{{}}' FROM {series}
        """, [workspace_id, first_identity, customers, events])
        started = time.perf_counter()
        for statement in recreate:
            cursor.execute(statement)
        print(f"indexes and constraints recreated in {time.perf_counter() - started:.0f} s", flush=True)
        cursor.execute("ANALYZE")


def transactions_read(workspace_id: int):
    """The purchases as lifetimes wants them: customer, Shanghai wall-clock time, net amount (fen)."""
    import pandas as pd
    from django.db import connection

    buffer = io.BytesIO()
    raw = connection.connection  # psycopg 3
    with raw.cursor() as cursor, cursor.copy(
            "COPY (SELECT customer_id, (EXTRACT(EPOCH FROM paid_at) * 1000000)::bigint, paid_fen - refunded_fen "
            f"FROM commerce_orders_order WHERE workspace_id = {int(workspace_id)} AND paid_at IS NOT NULL "
            "AND payment_status IN ('paid', 'partially_refunded')) TO STDOUT WITH (FORMAT csv)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    frame = pd.read_csv(buffer, names=["customer_id", "paid_us", "amount_fen"], dtype="int64")
    frame["paid_at"] = (pd.to_datetime(frame.pop("paid_us"), unit="us", utc=True)
                        .dt.tz_convert("Asia/Shanghai").dt.tz_localize(None))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database of a previous run")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--database", default=PG_DB, help=f"bench-only PostgreSQL database (default {PG_DB})")
    parser.add_argument("--load-only", action="store_true", help="stop after loading the data")
    args = parser.parse_args()
    globals()["PG_DB"] = args.database

    os.environ["SIYU_DATABASE_URL"] = database_prepare(reuse=args.reuse)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    import django

    django.setup()
    import numpy as np
    import pandas as pd
    from django.core.management import call_command
    from django.utils import timezone
    from lifetimes.utils import summary_data_from_transaction_data

    from siyu.core.models import Workspace
    from siyu.core.services import workspace_create
    from siyu.core.timeutil import local_day
    from siyu.engagement.rfm.scoring import rfm_summary
    from siyu.engagement.rfm.services import rfm_recompute

    call_command("migrate", verbosity=0)
    workspace = Workspace.objects.filter(slug="bench").first()
    load_seconds = 0.0
    if workspace is None:
        workspace = workspace_create(slug="bench", name="Bench")
        started = time.perf_counter()
        data_load(workspace.pk, args.customers, args.orders, args.events)
        load_seconds = time.perf_counter() - started
    print(f"loaded {args.customers:,} customers / {args.orders:,} orders / {args.events:,} events in "
          f"{load_seconds:.0f} s", flush=True)
    if args.load_only:
        return

    end_day = local_day(timezone.now())
    frame = transactions_read(workspace.pk)
    print(f"{len(frame):,} purchases read into pandas", flush=True)
    started = time.perf_counter()
    theirs = summary_data_from_transaction_data(frame, "customer_id", "paid_at", monetary_value_col="amount_fen",
                                                observation_period_end=pd.Timestamp(end_day), freq="D")
    lifetimes_seconds = time.perf_counter() - started
    print(f"lifetimes: {lifetimes_seconds:.2f} s", flush=True)
    load_at_sql = load()
    started = time.perf_counter()
    ours = rfm_summary(workspace_id=workspace.pk, observation_end=end_day)
    sql_seconds = time.perf_counter() - started
    print(f"SQL rfm_summary: {sql_seconds:.2f} s", flush=True)

    ids = np.fromiter(ours.keys(), dtype=np.int64, count=len(ours))
    values = np.array(list(ours.values()), dtype=np.float64)
    mine = pd.DataFrame(values, index=pd.Index(ids, name="customer_id"),
                        columns=["frequency", "recency", "T", "monetary_value"]).sort_index()
    theirs = theirs.sort_index()
    assert mine.index.equals(theirs.index), "different customers"
    mismatches = {column: int((mine[column].to_numpy() != theirs[column].to_numpy()).sum()) for column in mine.columns}
    assert not any(mismatches.values()), f"numbers differ: {mismatches}"
    print(f"identical: {len(mine):,} customers × 4 numbers, ratio {lifetimes_seconds / sql_seconds:.1f}×", flush=True)

    # The same statement with an index the orders table does not have (yet): customers' purchases in order,
    # covering the amounts, so PostgreSQL reads them presorted (index-only scan, no big sort).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX IF NOT EXISTS bench_order_rfm ON commerce_orders_order "
                       "(workspace_id, customer_id, paid_at) INCLUDE (paid_fen, refunded_fen, payment_status)")
        cursor.execute("VACUUM ANALYZE commerce_orders_order") if connection.connection.autocommit else None
    started = time.perf_counter()
    indexed = rfm_summary(workspace_id=workspace.pk, observation_end=end_day)
    indexed_seconds = time.perf_counter() - started
    assert indexed == ours
    print(f"SQL rfm_summary with the covering index: {indexed_seconds:.2f} s, ratio "
          f"{lifetimes_seconds / indexed_seconds:.1f}×", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX bench_order_rfm")

    job_started = time.perf_counter()
    first = rfm_recompute(workspace=workspace)
    job_seconds = time.perf_counter() - job_started
    print(f"full job: {job_seconds:.1f} s {first}", flush=True)
    started = time.perf_counter()
    second = rfm_recompute(workspace=workspace)
    rerun_seconds = time.perf_counter() - started
    print(f"re-run, nothing changed: {rerun_seconds:.1f} s {second}", flush=True)

    moves = first["moves"]
    body = "\n".join([
        f"Command: `.venv/bin/python bench/bench_rfm.py --customers {args.customers} --orders {args.orders} "
        f"--events {args.events} --write-results` (PostgreSQL database `{PG_DB}`).",
        f"Machine: {machine()}, shared with other engineers ({load_at_sql} when the SQL summary ran). "
        f"Date: {now_utc()}. Synthetic load (INSERT … SELECT generate_series): {load_seconds:.0f} s; "
        f"{len(frame):,} purchases (paid or partially refunded) by {len(mine):,} customers.", "",
        "| step | time |", "|---|---|",
        f"| `lifetimes.utils.summary_data_from_transaction_data` (freq D, only the call timed; data already in "
        f"pandas) | {lifetimes_seconds:.2f} s |",
        f"| `rfm_summary` — the same summary in one SQL statement, rows into a Python dict | {sql_seconds:.2f} s |",
        f"| **ratio lifetimes / SQL** | **{lifetimes_seconds / sql_seconds:.1f}×** |",
        f"| `rfm_summary` with a covering index on orders (workspace, customer, paid_at) INCLUDE (amounts, "
        f"status) — not in the schema, created by the bench | {indexed_seconds:.2f} s "
        f"(ratio {lifetimes_seconds / indexed_seconds:.1f}×) |",
        f"| full job `rfm_recompute`: scores upserted for {first['scored']:,} customers, 3 presets classified, "
        f"{sum(moves.values()):,} first placements recorded and published | {job_seconds:.1f} s |",
        f"| same job again, nothing changed ({sum(second['moves'].values())} moves) | {rerun_seconds:.1f} s |",
        "",
        f"Numbers identical: frequency, recency, T and monetary_value of all {len(mine):,} customers equal "
        "lifetimes' exactly (asserted in the bench). Days are calendar days in Asia/Shanghai on both sides.",
    ])
    print(body)
    if args.write_results:
        results_section_write("RFM layering (issue 5) — bench/bench_rfm.py", body)


if __name__ == "__main__":
    main()
