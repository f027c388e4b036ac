"""Identity resolution throughput (observations/s) on PostgreSQL, on a large and on a small workspace.

    .venv/bin/python bench/bench_identity.py [--customers 1000000] [--small 10000] [--batches 30] [--write-results]

1. (Re)creates the database ``siyu_bench_identity`` on the server of SIYU_TEST_PG_URL and migrates it with
   ``siyu migrate`` (SIYU_DATABASE_URL pointing at it).
2. Fills a small workspace (``--small`` customers) directly in SQL (INSERT … SELECT generate_series, the
   server-side equivalent of COPY): per customer a mini-program openid, and by id a unionid (60%), an
   official-account openid (50%), a phone hash (30%), a device (10%): 2.5 identities per customer.
3. Times ``identities_resolve`` on batches of 1000 observations, each inside its own transaction as
   ingestion calls it, with the mix: 70% known customers (openid, plus unionid when they have one), 20% new
   customers (new openid, half with a new unionid), 10% linking one known customer's official-account
   openid with another's unionid (a unionid merge each).
4. Fills the large workspace (``--customers``) the same way and repeats the measurement; prints both,
   the ratio large/small, and the PostgreSQL plan of the identity look-up on the large workspace.
``--write-results`` records the numbers, the command and the machine in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, now_utc, results_section_write  # noqa: E402

SECTION = "Identity resolution (bench/bench_identity.py)"


def database_recreate(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def workspace_fill(workspace_id: int, customers: int) -> tuple[int, int, float]:
    """Customers and their identities straight into the tables; returns (first id, last id, seconds)."""
    from django.db import connection

    started = time.perf_counter()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO customers_customer (workspace_id, status, name_hash, phone_hash, gender, city,
                first_channel, first_seen_at, last_seen_at, attributes, created_at)
            SELECT %s, 'active', '', '', '', '', 'wx_mini', %s + n * interval '17 seconds',
                   %s + n * interval '17 seconds', '{}'::jsonb, now()
            FROM generate_series(1, %s) AS n
            """,
            [workspace_id, base, base, customers],
        )
        cursor.execute("SELECT min(id), max(id) FROM customers_customer WHERE workspace_id = %s", [workspace_id])
        first, last = cursor.fetchone()
        layout = [
            ("openid", "wxmini", "'mini' || c.id", "TRUE"),
            ("unionid", "", "'u' || c.id", "c.id %% 5 IN (0, 1, 2)"),
            ("openid", "wxmp", "'mp' || c.id", "c.id %% 2 = 0"),
            ("phone", "", "md5('p' || c.id)", "c.id %% 10 IN (0, 3, 7)"),
            ("device", "ios", "'d' || c.id", "c.id %% 10 = 5"),
        ]
        for kind, namespace, value, condition in layout:
            cursor.execute(
                f"""
                INSERT INTO customers_identity (workspace_id, customer_id, kind, namespace, value,
                    first_seen_at, last_seen_at)
                SELECT c.workspace_id, c.id, %s, %s, {value}, c.first_seen_at, c.first_seen_at
                FROM customers_customer c WHERE c.workspace_id = %s AND {condition}
                """,
                [kind, namespace, workspace_id],
            )
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE customers_identity")
    return first, last, time.perf_counter() - started


class Mix:
    """Deterministic observation batches over customer ids [first, last]."""

    def __init__(self, first: int, last: int, seed: int):
        self.first, self.last = first, last
        self.rng = random.Random(seed)
        self.new = 0
        self.moment = datetime(2026, 6, 1, tzinfo=UTC)

    def customer(self, condition=lambda c: True) -> int:
        while True:
            candidate = self.rng.randint(self.first, self.last)
            if condition(candidate):
                return candidate

    def batch(self, size: int, tag: str):
        from siyu.customers.identity import Observation

        rng, observations = self.rng, []
        for _ in range(size):
            self.moment += timedelta(seconds=1)
            roll = rng.random()
            if roll < 0.7:
                c = self.customer()
                keys = [("openid", "wxmini", f"mini{c}")]
                if c % 5 in (0, 1, 2):
                    keys.append(("unionid", "", f"u{c}"))
            elif roll < 0.9:
                self.new += 1
                keys = [("openid", "wxmini", f"new-{tag}-{self.new}")]
                if rng.random() < 0.5:
                    keys.append(("unionid", "", f"nu-{tag}-{self.new}"))
            else:
                a = self.customer(lambda c: c % 2 == 0)
                b = self.customer(lambda c, a=a: c % 5 in (0, 1, 2) and c != a)
                keys = [("openid", "wxmp", f"mp{a}"), ("unionid", "", f"u{b}")]
            observations.append(Observation(keys, self.moment, "wx_mini"))
        return observations


def measure(workspace, first: int, last: int, batches: int, size: int, tag: str) -> dict:
    from django.db import connection, reset_queries, transaction

    from siyu.customers.identity import identities_resolve
    from siyu.customers.models import MergeRecord

    mix = Mix(first, last, seed=11)
    prepared = [mix.batch(size, tag) for _ in range(batches + 1)]
    merges_before = MergeRecord.objects.filter(workspace=workspace).count()
    with transaction.atomic():  # warm-up batch (connection, caches), not timed
        identities_resolve(workspace=workspace, observations=prepared[0])
    durations = []
    queries = 0
    for batch in prepared[1:]:
        connection.force_debug_cursor = True
        reset_queries()
        started = time.perf_counter()
        with transaction.atomic():
            identities_resolve(workspace=workspace, observations=batch)
        durations.append(time.perf_counter() - started)
        queries += len(connection.queries)
        connection.force_debug_cursor = False
    total = sum(durations)
    merges = MergeRecord.objects.filter(workspace=workspace).count() - merges_before
    return {"observations": batches * size, "seconds": total, "per_second": batches * size / total,
            "batch_ms_median": sorted(durations)[len(durations) // 2] * 1000,
            "queries_per_batch": queries / batches, "merges": merges}


def lookup_plan(workspace, first: int, last: int) -> str:
    from django.db import connection

    from siyu.customers.models import Identity

    rng = random.Random(3)
    values = sorted({f"mini{rng.randint(first, last)}" for _ in range(2500)})
    query = Identity.objects.filter(workspace=workspace, value__in=values).values_list(
        "id", "kind", "namespace", "value", "customer_id")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--pg-url", default=os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu"))
    parser.add_argument("--database", default="siyu_bench_identity")
    parser.add_argument("--write-results", action="store_true")
    args, _ = parser.parse_known_args()  # ./run bench passes every benchmark the same options

    url = database_recreate(args.pg_url, args.database)
    env = {**os.environ, "SIYU_DATABASE_URL": url, "SIYU_DATA_DIR": tempfile.mkdtemp(prefix="siyu-bench-ident-"),
           "DJANGO_SETTINGS_MODULE": "siyu.settings", "SIYU_DEBUG": "0", "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    siyu = Path(sys.executable).parent / "siyu"
    command = [str(siyu), "migrate", "--verbosity", "0"] if siyu.exists() else [
        sys.executable, "-m", "django", "migrate", "--verbosity", "0"]
    subprocess.run(command, check=True, env=env, cwd=ROOT)

    import django

    django.setup()
    from siyu.core.services import workspace_create

    results = {}
    for label, size in (("small", args.small), ("large", args.customers)):
        workspace = workspace_create(slug=f"bench-{label}", name=f"基准{label}")
        first, last, fill_seconds = workspace_fill(workspace.pk, size)
        print(f"[{label}] {size:,} customers + identities written in {fill_seconds:.1f} s", flush=True)
        result = measure(workspace, first, last, args.batches, args.batch_size, label)
        result.update(customers=size, fill_seconds=fill_seconds)
        results[label] = result
        print(f"[{label}] {result['per_second']:,.0f} observations/s  (median batch {result['batch_ms_median']:.0f} ms,"
              f" {result['queries_per_batch']:.0f} queries/batch, {result['merges']} merges)", flush=True)
        if label == "large":
            plan = lookup_plan(workspace, first, last)
    ratio = results["large"]["per_second"] / results["small"]["per_second"]
    uses_index = "customers_identity_workspace_id_value" in plan or "Index" in plan
    print(f"large/small throughput ratio: {ratio:.2f}")
    print("plan of the identity look-up (2500 values) on the large workspace:\n"
          + "\n".join(line[:160] for line in plan.splitlines()))

    if args.write_results:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = cursor.fetchone()[0]
        rows = "\n".join(
            f"| {label} | {r['customers']:,} | {r['fill_seconds']:.1f} s | {r['observations']:,} | "
            f"**{r['per_second']:,.0f}** | {r['batch_ms_median']:.0f} ms | {r['queries_per_batch']:.0f} | {r['merges']} |"
            for label, r in results.items()
        )
        scan = "\n".join(line for line in plan.splitlines() if "Scan" in line or "Execution" in line)
        body = f"""Command: `.venv/bin/python bench/bench_identity.py --customers {args.customers} --small {args.small} \
--batches {args.batches} --batch-size {args.batch_size} --write-results` (PostgreSQL {server}, dedicated database
`{args.database}`, {now_utc()}; machine: {machine()}).

`identities_resolve` on batches of {args.batch_size} observations, each batch in its own transaction as ingestion
calls it; mix per batch: 70% known customers (openid, plus unionid when they have one), 20% new customers,
10% linking one customer's official-account openid with another's unionid (one unionid merge each; a batch's
merges are applied together with a fixed number of queries). Workspaces filled directly in SQL (INSERT … SELECT
generate_series) with 2.5 identities per customer; the machine is shared with other work, so expect noise.

| workspace | customers | fill | observations timed | observations/s | median batch | queries/batch | merges |
|---|---|---|---|---|---|---|---|
{rows}

Ratio large/small throughput: **{ratio:.2f}**. The look-up of a batch's identities uses the (workspace, value)
index: {"yes" if uses_index else "NO"}:

```
{scan}
```
"""
        results_section_write(SECTION, body)
        print("written to bench/RESULTS.md")


if __name__ == "__main__":
    main()
