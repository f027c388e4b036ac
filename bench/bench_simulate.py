"""Benchmark: time and peak memory of ``siyu simulate`` into PostgreSQL (issue 2: 1M customers / 20M events).

Creates (drops first) a dedicated database, migrates it, then runs ``siyu simulate`` as a child process and
reports wall time, rows/s, the child's peak RSS and what landed in the database.

    .venv/bin/python bench/bench_simulate.py --customers 1000000 --events-per-customer 20
    .venv/bin/python bench/bench_simulate.py --customers 100000          # smaller run, for extrapolation
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=int(os.environ.get("SIYU_BENCH_SIM_CUSTOMERS", "100000")))
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--events-per-customer", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu"))
    parser.add_argument("--database", default="siyu_bench_sim")
    parser.add_argument("--bulk", choices=("auto", "yes", "no"), default="auto",
                        help="siyu simulate --bulk / --no-bulk (auto: the command decides)")
    args, _ = parser.parse_known_args()

    admin_url = args.pg_url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    bench_url = urlunparse(urlparse(admin_url)._replace(path="/" + args.database))
    data_dir = Path(os.environ.get("SIYU_DATA_DIR", ROOT / "var" / "bench"))
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SIYU_DATABASE_URL": bench_url, "SIYU_DATA_DIR": str(data_dir)}
    siyu = [sys.executable, "-m", "siyu.cli"]
    subprocess.run([*siyu, "migrate", "--skip-checks", "-v0"], env=env, check=True, cwd=ROOT)

    command = [*siyu, "simulate", "--workspace", "bench", "--customers", str(args.customers), "--months",
               str(args.months), "--seed", str(args.seed), "--events-per-customer", str(args.events_per_customer),
               "--truth", str(data_dir / f"{args.database}-truth.json")]
    if args.bulk != "auto":
        command.append("--bulk" if args.bulk == "yes" else "--no-bulk")
    load_start = os.getloadavg()
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT)
    peak = 0
    proc = psutil.Process(child.pid)
    loads = []
    while child.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        loads.append(os.getloadavg()[0])
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"simulate failed with exit code {child.returncode}")
    maxrss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    with psycopg.connect(bench_url) as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM customers_{table}").fetchone()[0]
                  for table in ("customer", "identity", "event", "consentrecord", "customertag")}
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]

    memory = psutil.virtual_memory().total / 2**30
    print()
    print(f"### simulate {args.customers:,} customers ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"- machine: {os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.platform()}, "
          f"load average (1 min) at start {load_start[0]:.1f}, mean {sum(loads) / max(1, len(loads)):.1f}, "
          f"max {max(loads, default=0):.1f}, at end {os.getloadavg()[0]:.1f}")
    print(f"- command: `{' '.join(['siyu', *command[3:]])}` into PostgreSQL (database {args.database})")
    print(f"- wall time: {elapsed:.1f} s; {counts['customer'] / elapsed:,.0f} customers/s; "
          f"{counts['event'] / elapsed:,.0f} events/s")
    print(f"- peak RSS of the simulate process: {max(peak / 2**20, maxrss_mb):,.0f} MiB")
    print(f"- rows: {', '.join(f'{k} {v:,}' for k, v in counts.items())}; database size {size}")


if __name__ == "__main__":
    main()
