"""Segment evaluation at scale: a 3-condition segment with event windows, compiled by Siyu to one SQL query
on PostgreSQL, against the same query hand-written in DuckDB SQL over the same rows (the engine limit).

    .venv/bin/python bench/bench_segments.py [--database siyu_perf_sim] [--runs 5] [--write-results]

1. Reads the database made by ``siyu simulate`` (default ``siyu_perf_sim``: 1M customers / 19.66M events)
   in a READ ONLY session: nothing there is written. The schema's covering event index
   ``event_type_time_cover`` (customers migration 0004) must exist there; a database simulated before that
   migration gets it with
   ``CREATE INDEX CONCURRENTLY event_type_time_cover ON customers_event (workspace_id, type, occurred_at, identity_id)``
   (the bench says which event index the plan used).
2. Times ``segment_queryset(...).count()`` — exactly what the live count and a refresh run — on PostgreSQL
   (one warm-up, then the median of ``--runs``), and records ``EXPLAIN (ANALYZE, BUFFERS)``.
3. Copies the columns the query needs (customers: id, workspace, status, city; identities: id, customer;
   events: workspace, identity, type, occurred_at as epoch µs) into an in-memory DuckDB, then times the
   hand-written query (median of ``--runs``; loading is reported, not counted) and checks both counts agree.

"now" is one second after the newest event, so the windows are full of data however old the database is.

``--index-database NAME`` also times the same query on a copy of just the columns it reads plus the covering
event index the customers app would need (the simulator's database itself is never altered)::

    createdb siyu_segments_idx; create customers_customer(id, workspace_id, status, city),
    customers_identity(id, customer_id), customers_event(id, workspace_id, type, occurred_at, identity_id);
    COPY each from siyu_perf_sim; CREATE INDEX ON customers_identity (customer_id);
    CREATE INDEX ON customers_event (workspace_id, type, occurred_at) INCLUDE (identity_id); VACUUM ANALYZE
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc  # noqa: E402
from results_history import subsection_append  # noqa: E402

CITIES = ["上海", "北京", "深圳", "杭州"]
VIEW_DAYS = 30
PAID_DAYS = 30
VIEW_COUNT = 2


def definition() -> dict:
    return {"version": 1, "root": {"and": [
        {"field": "city", "op": "in", "value": CITIES},
        {"field": "event", "type": "product_view", "op": "gte", "count": VIEW_COUNT, "days": VIEW_DAYS},
        {"field": "event", "type": "order_paid", "op": "eq", "count": 0, "days": PAID_DAYS},
    ]}}


DUCKDB_SQL = """
SELECT count(*) FROM customer c
WHERE c.workspace_id = $ws AND c.status = 'active' AND c.city IN ('上海', '北京', '深圳', '杭州')
  AND c.id IN (SELECT i.customer_id FROM event e JOIN identity i ON i.id = e.identity_id
               WHERE e.workspace_id = $ws AND e.type = 'product_view' AND e.occurred_us >= $view_start
               GROUP BY i.customer_id HAVING count(*) >= $view_count)
  AND NOT EXISTS (SELECT 1 FROM event e JOIN identity i ON i.id = e.identity_id
                  WHERE i.customer_id = c.id AND e.workspace_id = $ws AND e.type = 'order_paid'
                    AND e.occurred_us >= $paid_start)
"""


def django_setup(database: str) -> None:
    server = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    base = server.rsplit("/", 1)[0]
    os.environ["SIYU_DATABASE_URL"] = f"{base}/{database}"
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-segments-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    import django

    django.setup()


def pg_measure(runs: int, workspace_id: int | None = None) -> dict:
    from django.db import connection, transaction

    from siyu.engagement.segments.compiler import segment_queryset
    from siyu.engagement.segments.services import QUERY_SETTINGS_POSTGRESQL, segment_count

    with connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        if workspace_id is None:
            cursor.execute("SELECT id FROM core_workspace WHERE slug = 'bench'")
            row = cursor.fetchone()
            workspace_id = row[0] if row else 1
        cursor.execute("SELECT max(occurred_at) FROM customers_event WHERE workspace_id = %s", [workspace_id])
        now = cursor.fetchone()[0] + timedelta(seconds=1)
        cursor.execute("SELECT count(*) FROM customers_customer WHERE workspace_id = %s", [workspace_id])
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'customers_event'")
        events = cursor.fetchone()[0]
    queryset = segment_queryset(workspace=workspace_id, definition=definition(), now=now)
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    timings = []
    count = segment_count(workspace=workspace_id, definition=definition(), now=now)  # warm-up
    for _ in range(runs):
        started = time.perf_counter()
        count = segment_count(workspace=workspace_id, definition=definition(), now=now)
        timings.append(time.perf_counter() - started)
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in QUERY_SETTINGS_POSTGRESQL:
            cursor.execute(statement)
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({sql}) matching", params)
        plan = "\n".join(line[0] for line in cursor.fetchall())
    return {"workspace_id": workspace_id, "now": now, "customers": customers, "events": events, "count": count,
            "timings": timings, "plan": plan}


def duckdb_measure(pg: dict, runs: int) -> dict:
    import duckdb
    from django.db import connection

    directory = Path(tempfile.mkdtemp(prefix="siyu-bench-segments-"))
    copies = {
        "customer": "SELECT id, workspace_id, status, city FROM customers_customer",
        "identity": "SELECT id, customer_id FROM customers_identity",
        "event": "SELECT workspace_id, identity_id, type, (extract(epoch FROM occurred_at) * 1000000)::bigint "
                 "FROM customers_event",
    }
    columns = {"customer": "id BIGINT, workspace_id BIGINT, status VARCHAR, city VARCHAR",
               "identity": "id BIGINT, customer_id BIGINT",
               "event": "workspace_id BIGINT, identity_id BIGINT, type VARCHAR, occurred_us BIGINT"}
    started = time.perf_counter()
    connection.ensure_connection()
    raw = connection.connection  # psycopg 3 connection under Django
    raw.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    for table, query in copies.items():
        with (open(directory / f"{table}.csv", "wb") as out, raw.cursor() as cursor,
              cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy):
            for chunk in copy:
                out.write(chunk)
    exported = time.perf_counter() - started
    db = duckdb.connect()
    db.execute(f"SET threads = {os.cpu_count() or 1}")
    started = time.perf_counter()
    for table, cols in columns.items():
        spec = ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in cols.split(", "))
        db.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv('{directory / (table + '.csv')}', "
                   f"header = false, columns = {{{spec}}})")
    loaded = time.perf_counter() - started
    for table in copies:
        (directory / f"{table}.csv").unlink()
    directory.rmdir()
    now_us = int(pg["now"].timestamp() * 1_000_000)
    params = {"ws": pg["workspace_id"], "view_start": now_us - VIEW_DAYS * 86_400_000_000,
              "paid_start": now_us - PAID_DAYS * 86_400_000_000, "view_count": VIEW_COUNT}
    count = db.execute(DUCKDB_SQL, params).fetchone()[0]  # warm-up
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        count = db.execute(DUCKDB_SQL, params).fetchone()[0]
        timings.append(time.perf_counter() - started)
    return {"count": count, "timings": timings, "exported": exported, "loaded": loaded}


def indexed_row(indexed: dict | None, duck_median: float) -> str:
    if indexed is None:
        return ""
    median = statistics.median(indexed["timings"])
    return (f"| PostgreSQL, same query, on a copy of the needed columns with index `customers_event (workspace_id, "
            f"type, occurred_at) INCLUDE (identity_id)` (ratio to DuckDB {median / duck_median:.1f}×) | "
            f"{indexed['count']:,} | {median:.3f} | {', '.join(f'{t:.3f}' for t in indexed['timings'])} |\n")


def indexed_plan(indexed: dict | None) -> str:
    if indexed is None:
        return ""
    return f"""
With the covering index (copy `{INDEX_COPY_NOTE}`):

```
{indexed['plan']}
```
"""


INDEX_COPY_NOTE = ("customers_customer(id, workspace_id, status, city), customers_identity(id, customer_id) + index on "
                   "customer_id, customers_event(id, workspace_id, type, occurred_at, identity_id) + the covering index, "
                   "VACUUM ANALYZE; the copied event heap is narrower than the original (no properties/utm columns)")
QUERY_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")  # as services.QUERY_SETTINGS_POSTGRESQL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="siyu_perf_sim")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--index-database", default="",
                        help="also time PostgreSQL on a copy of the needed columns with a covering event index "
                             "(made by --make-index-copy's SQL, see RESULTS)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    django_setup(args.database)
    load_before = load()
    pg = pg_measure(args.runs)
    pg_median = statistics.median(pg["timings"])
    covering = "used" if "event_type_time_cover" in pg["plan"] else "NOT used"
    print(f"PostgreSQL: {pg['count']} members of {pg['customers']:,} customers / ~{pg['events']:,} events; "
          f"median {pg_median:.3f}s of {[round(t, 3) for t in pg['timings']]}")
    print(pg["plan"])
    indexed = None
    if args.index_database:
        from django.db import connection

        connection.close()
        connection.settings_dict["NAME"] = args.index_database
        indexed = pg_measure(args.runs, workspace_id=pg["workspace_id"])
        print(f"PostgreSQL with covering index: {indexed['count']} members; median "
              f"{statistics.median(indexed['timings']):.3f}s of {[round(t, 3) for t in indexed['timings']]}")
        print(indexed["plan"])
        connection.close()
        connection.settings_dict["NAME"] = args.database
    if args.skip_duckdb:
        return
    duck = duckdb_measure(pg, args.runs)
    duck_median = statistics.median(duck["timings"])
    agree = duck["count"] == pg["count"]
    ratio = pg_median / duck_median
    print(f"DuckDB: {duck['count']} members; median {duck_median:.3f}s of {[round(t, 3) for t in duck['timings']]}; "
          f"export {duck['exported']:.1f}s, load {duck['loaded']:.1f}s; counts agree: {agree}; "
          f"PostgreSQL / DuckDB = {ratio:.1f}×")
    if not agree:
        raise SystemExit("counts differ: the two queries do not mean the same thing")
    if args.write_results:
        body = f"""Command: `.venv/bin/python bench/bench_segments.py --database {args.database} --runs {args.runs} --write-results`
({now_utc()}; {machine()}; {load_before} at the start, {load()} at the end). The database from `siyu simulate` read in a READ ONLY session:
{pg['customers']:,} customers, ~{pg['events']:,} events; "now" = newest event + 1 s.

Segment (3 conditions): city in {'/'.join(CITIES)} **and** `product_view` ≥ {VIEW_COUNT} times in the last
{VIEW_DAYS} days **and** no `order_paid` in the last {PAID_DAYS} days — `segment_queryset(...).count()`, which is what
the console's live count and `segment_refresh` run (compiled by `siyu/engagement/segments/compiler.py`).

| engine | members | median of {args.runs} (s) | runs (s) |
|---|---|---|---|
| PostgreSQL (Siyu's compiled query via `segment_count`: {'; '.join(QUERY_SETTINGS)}) | {pg['count']:,} | {pg_median:.3f} | {', '.join(f'{t:.3f}' for t in pg['timings'])} |
| DuckDB {__import__('duckdb').__version__} (hand-written SQL, in memory, {os.cpu_count()} threads) | {duck['count']:,} | {duck_median:.3f} | {', '.join(f'{t:.3f}' for t in duck['timings'])} |
{indexed_row(indexed, duck_median)}
PostgreSQL / DuckDB = **{ratio:.1f}×** (DuckDB load not counted: export {duck['exported']:.0f} s, load {duck['loaded']:.0f} s).
Counts agree.

PostgreSQL plan (`EXPLAIN (ANALYZE, BUFFERS)`, last run):

```
{pg['plan']}
```
{indexed_plan(indexed)}"""
        subsection_append("Segment evaluation (issue 5) — bench/bench_segments.py",
                          f"{now_utc()} — {pg['customers']:,} customers, covering index {covering}", body)
        print("bench/RESULTS.md updated")


if __name__ == "__main__":
    main()
