"""RFM layering at scale: lifetimes' RFM summary vs ours (read from the purchase rollup) on the same transactions,
the rollup's full rebuild from the orders table, the former plain SQL over the orders, and the full scoring job.

    .venv/bin/python bench/bench_rfm.py --customers 1000000 --orders 10000000 --events 2000000 \
        --database siyu_perf_rfm1m [--reuse] [--write-results]

1. Creates a fresh bench-only PostgreSQL database (``--database``, default ``siyu_perf_rfm``; server of
   SIYU_TEST_PG_URL) and migrates it; with ``--reuse`` an existing one is kept, data and all (migrated again).
2. Loads customers (one identity each, first seen over 3 years), paid orders over the last 2 years (some
   discounted, 2% partially and 1% fully refunded) and interaction/view events over 60 days, all with
   INSERT … SELECT generate_series, the tables' secondary indexes, unique and foreign-key constraints dropped
   during the load and recreated after, then ANALYZE. ``--load-only`` stops here.
3. Reads the purchases (the transactions ``rfm_summary`` summarises: paid or partially refunded, net amount)
   into pandas — not timed — and times, in the same run:
   - ``lifetimes.utils.summary_data_from_transaction_data`` (freq "D", days in Asia/Shanghai; only the call);
   - ``rollup_rebuild``: the purchase rollup rebuilt from the orders table into an empty table (one
     INSERT … SELECT … ON CONFLICT), then again with nothing changed (the daily consistency run);
   - ``rfm_summary``: the summary read from the rollup, rows into a Python dict;
   - ``rfm_summary_from_orders``: the former plain SQL over the orders table;
   and asserts that all numbers of all customers are identical to lifetimes'. Wall time and CPU time (this
   process + its PostgreSQL backend, from /proc; parallel query workers not included) are reported.
4. Times the full job ``rfm_recompute`` (scores upserted, three presets classified, moves recorded and
   published) on every customer.
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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a local process (None when /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(label: str, work):
    """Run ``work()``; returns (result, wall seconds, CPU seconds of this process + its PostgreSQL backend)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    before = (time.process_time(), cpu_seconds(backend), load())
    started = time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    backend_after = cpu_seconds(backend)
    cpu = time.process_time() - before[0]
    if before[1] is not None and backend_after is not None:
        cpu += backend_after - before[1]
    print(f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU ({before[2]})", flush=True)
    return result, wall, cpu, before[2]


def results_write(title: str, subsection: str, body: str) -> None:
    """This run as a dated subsection at the top of the section (replacing one of the same scale); earlier
    subsections stay below."""
    import re

    from common import RESULTS

    text = RESULTS.read_text() if RESULTS.exists() else ""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    previous = match.group(1).strip() if match else ""
    if previous and not previous.startswith("### "):
        previous = "### Before the purchase rollup (one SQL statement over the orders)\n\n" + previous
    scale = subsection.split(" — ")[0]
    kept = [part for part in re.split(r"(?=^### )", previous, flags=re.M)
            if part.strip() and not part.startswith(f"### {scale} — ")]
    results_section_write(title, f"### {subsection}\n\n{body.strip()}\n\n" + "".join(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database of a previous run")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--database", default=PG_DB, help=f"bench-only PostgreSQL database (default {PG_DB})")
    parser.add_argument("--load-only", action="store_true", help="stop after loading the data")
    parser.add_argument("--skip-job", action="store_true", help="leave out the full scoring job")
    args = parser.parse_args()
    globals()["PG_DB"] = args.database

    os.environ["SIYU_DATABASE_URL"] = database_prepare(reuse=args.reuse)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    import django

    django.setup()
    import numpy as np
    import pandas as pd
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from lifetimes.utils import summary_data_from_transaction_data

    from siyu.core.models import Workspace
    from siyu.core.services import workspace_create
    from siyu.core.timeutil import local_day
    from siyu.engagement.rfm.models import PurchaseRollup
    from siyu.engagement.rfm.rollup import rollup_rebuild
    from siyu.engagement.rfm.scoring import rfm_summary, rfm_summary_from_orders
    from siyu.engagement.rfm.services import rfm_recompute

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrated in {time.perf_counter() - started:.0f} s", flush=True)
    workspace = Workspace.objects.filter(slug="bench").first()
    load_seconds = earlier_load = None
    if workspace is None:
        workspace = workspace_create(slug="bench", name="Bench")
        started = time.perf_counter()
        data_load(workspace.pk, args.customers, args.orders, args.events)
        load_seconds = time.perf_counter() - started
        print(f"loaded {args.customers:,} customers / {args.orders:,} orders / {args.events:,} events in "
              f"{load_seconds:.0f} s", flush=True)
        with connection.cursor() as cursor:  # remembered for the runs that reuse the data
            cursor.execute(f"COMMENT ON TABLE commerce_orders_order IS 'bench load seconds: {load_seconds:.0f}'")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT obj_description('commerce_orders_order'::regclass, 'pg_class')")
            comment = cursor.fetchone()[0] or ""
        earlier_load = comment.removeprefix("bench load seconds: ") if comment.startswith("bench load") else None
        print(f"reusing the loaded data (loaded in {earlier_load or '?'} s)", flush=True)
    if args.load_only:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM customers_customer WHERE workspace_id = %s", [workspace.pk])
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT COUNT(*) FROM commerce_orders_order WHERE workspace_id = %s", [workspace.pk])
        orders = cursor.fetchone()[0]

    end_day = local_day(timezone.now())
    frame = transactions_read(workspace.pk)
    print(f"{len(frame):,} purchases read into pandas", flush=True)
    theirs, lifetimes_wall, lifetimes_cpu, lifetimes_load = timed("lifetimes", lambda: (
        summary_data_from_transaction_data(frame, "customer_id", "paid_at", monetary_value_col="amount_fen",
                                           observation_period_end=pd.Timestamp(end_day), freq="D")))
    theirs = theirs.sort_index()
    purchases, frame = len(frame), None  # free the memory

    def same_as_lifetimes(ours: dict, what: str) -> None:
        ids = np.fromiter(ours.keys(), dtype=np.int64, count=len(ours))
        values = np.array(list(ours.values()), dtype=np.float64)
        mine = pd.DataFrame(values, index=pd.Index(ids, name="customer_id"),
                            columns=["frequency", "recency", "T", "monetary_value"]).sort_index()
        assert mine.index.equals(theirs.index), f"{what}: different customers"
        mismatches = {column: int((mine[column].to_numpy() != theirs[column].to_numpy()).sum())
                      for column in mine.columns}
        assert not any(mismatches.values()), f"{what}: numbers differ: {mismatches}"
        print(f"{what}: identical, {len(mine):,} customers × 4 numbers", flush=True)

    PurchaseRollup.objects.filter(workspace=workspace).delete()  # a cold rebuild into an empty table
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {PurchaseRollup._meta.db_table}") if connection.connection.autocommit \
            else None
    written, rebuild_wall, rebuild_cpu, rebuild_load = timed(
        "rollup rebuild (empty table)", lambda: rollup_rebuild(workspace_id=workspace.pk))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {PurchaseRollup._meta.db_table}")
    rewritten, warm_wall, warm_cpu, warm_load = timed(
        "rollup rebuild (nothing changed)", lambda: rollup_rebuild(workspace_id=workspace.pk))
    ours, read_wall, read_cpu, read_load = timed(
        "rfm_summary from the rollup", lambda: rfm_summary(workspace_id=workspace.pk, observation_end=end_day))
    same_as_lifetimes(ours, "rfm_summary from the rollup")
    plain, plain_wall, plain_cpu, plain_load = timed(
        "rfm_summary_from_orders (plain SQL)",
        lambda: rfm_summary_from_orders(workspace_id=workspace.pk, observation_end=end_day))
    same_as_lifetimes(plain, "rfm_summary_from_orders")
    del plain

    job = None
    if not args.skip_job:
        with connection.cursor() as cursor:  # a first run every time, also on reused data (bench-only database)
            cursor.execute("TRUNCATE engagement_rfm_layerchange, engagement_rfm_customerscore")
        job, job_wall, job_cpu, job_load = timed("full scoring job rfm_recompute",
                                                 lambda: rfm_recompute(workspace=workspace))
        print(job, flush=True)

    def ratio(seconds: float, cpu: float) -> str:
        return f"{lifetimes_wall / seconds:.1f}× / {lifetimes_cpu / cpu:.1f}×"

    loaded = (f"loaded in {load_seconds:.0f} s (INSERT … SELECT generate_series, secondary indexes and "
              f"constraints dropped during the load and recreated after)" if load_seconds is not None
              else f"data of an earlier load reused (--reuse; that load took {earlier_load or '?'} s)")
    command = (f".venv/bin/python bench/bench_rfm.py --customers {args.customers} --orders {args.orders} "
               f"--events {args.events} --database {args.database}{' --reuse' if args.reuse else ''} --write-results")
    lines = [
        f"Command: `{command}`.",
        f"Machine: {machine()}, shared with other engineers. Date: {now_utc()}. Data: {customers:,} customers, "
        f"{orders:,} orders, {loaded}; {purchases:,} purchases (paid or partially refunded) by {len(ours):,} customers.",
        "",
        "| step | wall | CPU (process + PG backend) | ratio lifetimes / step (wall / CPU) | load average before |",
        "|---|---|---|---|---|",
        f"| `lifetimes.utils.summary_data_from_transaction_data` (freq D, only the call timed; data already in "
        f"pandas) | {lifetimes_wall:.2f} s | {lifetimes_cpu:.2f} s | 1× / 1× | {lifetimes_load} |",
        f"| **`rfm_summary` read from the purchase rollup**, rows into a Python dict | **{read_wall:.2f} s** | "
        f"{read_cpu:.2f} s | **{ratio(read_wall, read_cpu)}** | {read_load} |",
        f"| `rollup_rebuild`: full rebuild from the orders table into an empty rollup ({written:,} rows) | "
        f"{rebuild_wall:.2f} s | {rebuild_cpu:.2f} s | {ratio(rebuild_wall, rebuild_cpu)} | {rebuild_load} |",
        f"| `rollup_rebuild` again, nothing changed ({rewritten:,} rows written; the daily consistency run) | "
        f"{warm_wall:.2f} s | {warm_cpu:.2f} s | {ratio(warm_wall, warm_cpu)} | {warm_load} |",
        f"| `rfm_summary_from_orders`: the former plain SQL over the orders table | {plain_wall:.2f} s | "
        f"{plain_cpu:.2f} s | {ratio(plain_wall, plain_cpu)} | {plain_load} |",
    ]
    if job is not None:
        lines.append(f"| full job `rfm_recompute`: scores upserted for {job['scored']:,} customers, 3 presets "
                     f"classified, {sum(job['moves'].values()):,} moves recorded and published | {job_wall:.1f} s | "
                     f"{job_cpu:.1f} s | — | {job_load} |")
    lines += [
        "",
        f"Numbers identical: frequency, recency, T and monetary_value of all {len(ours):,} customers equal "
        "lifetimes' exactly, both from the rollup and from the plain SQL (asserted in the bench). Days are calendar "
        "days in Asia/Shanghai on both sides. The rollup is kept up to date per customer from the background "
        "delivery of orders.order_paid / order_refunded / order_cancelled (a few indexed statements per event), so "
        "reading it is the cost of a summary; the rebuild is the backfill and the daily consistency run.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_results:
        results_write("RFM layering (issue 5) — bench/bench_rfm.py",
                      f"{args.customers:,} customers / {args.orders:,} orders, purchase rollup — {now_utc()}", body)


if __name__ == "__main__":
    main()
