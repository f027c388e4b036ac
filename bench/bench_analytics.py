"""Dashboard analytics at scale: rollup refresh and dashboard reads on a large synthetic workspace.

    .venv/bin/python bench/bench_analytics.py --engine postgresql --customers 1000000 --events 20000000 [--write-results]
    .venv/bin/python bench/bench_analytics.py --engine sqlite --customers 100000 --events 2000000

1. Creates a fresh database (PostgreSQL: ``siyu_bench_analytics`` on the server of SIYU_TEST_PG_URL;
   SQLite: a new WAL file in a temporary directory) and migrates it.
2. Loads customers (one identity each, arrivals spread over 180 days and the 13 SPEC T1 channels) and
   events (spread over the same 180 days, several types including non-interactions) with set-based
   INSERT … SELECT, then ANALYZE. The rows are synthetic: only their volume and spread matter here.
3. Times: the first (whole-history) refresh; an hourly refresh with nothing new; an hourly refresh
   after 1,000 late events for 30 old days and 50 merges; and each dashboard selector (median of 5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, now_utc, results_section_write  # noqa: E402

DAYS = 180
TYPES = ["page_view", "product_view", "page_view", "message_in", "article_read", "unsubscribe", "order_paid",
         "add_to_cart"]
PG_DB = "siyu_bench_analytics"


def database_prepare(engine: str) -> str:
    if engine == "sqlite":
        directory = tempfile.mkdtemp(prefix="siyu-bench-analytics-")
        os.environ["SIYU_DATA_DIR"] = directory
        return f"sqlite:///{directory}/bench.sqlite3"
    import psycopg

    server = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DB}"')
    parts = urlsplit(server)
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-analytics-"))
    return urlunsplit(parts._replace(path=f"/{PG_DB}"))


def load(engine: str, workspace_id: int, customers: int, events: int) -> None:
    from django.db import connection

    from siyu.core.channel_codes import CHANNELS

    codes = [channel.code for channel in CHANNELS]
    span = DAYS * 86400
    with connection.cursor() as cursor:
        if engine == "postgresql":
            series = "generate_series(1::bigint, %s::bigint) AS s(g)"
            moment = "now() - ((g * 7919) %% {span}) * interval '1 second'"
            channel = f"(ARRAY[{', '.join(repr(c) for c in codes)}])[1 + g %% {len(codes)}]"
            event_type = f"(ARRAY[{', '.join(repr(t) for t in TYPES)}])[1 + g %% {len(TYPES)}]"
            text = "g::text"
        else:
            series = "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %s) SELECT g FROM s)"
            moment = "datetime('now', '-' || ((g * 7919) %% {span}) || ' seconds')"
            channel = "CASE g %% {n} {cases} END".format(
                n=len(codes), cases=" ".join(f"WHEN {k} THEN '{c}'" for k, c in enumerate(codes)))
            event_type = "CASE g %% {n} {cases} END".format(
                n=len(TYPES), cases=" ".join(f"WHEN {k} THEN '{t}'" for k, t in enumerate(TYPES)))
            text = "CAST(g AS TEXT)"
        when = moment.format(span=span)
        cursor.execute(
            "INSERT INTO customers_customer (workspace_id, status, name_hash, phone_hash, gender, city, "
            "first_channel, first_seen_at, last_seen_at, attributes, created_at) "
            f"SELECT %s, 'active', '', '', '', '', {channel}, {when}, {when}, '{{}}', {when} FROM {series}",
            [workspace_id, customers])
        cursor.execute(
            "INSERT INTO customers_identity (workspace_id, customer_id, kind, namespace, value, first_seen_at, "
            "last_seen_at) SELECT workspace_id, id, 'openid', 'mp', 'o' || "
            + ("id::text" if engine == "postgresql" else "CAST(id AS TEXT)")
            + ", first_seen_at, first_seen_at FROM customers_customer WHERE workspace_id = %s",
            [workspace_id])
        cursor.execute("SELECT MIN(id) FROM customers_identity WHERE workspace_id = %s", [workspace_id])
        first_identity = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO customers_event (workspace_id, event_id, type, occurred_at, received_at, identity_id, "
            "channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term, properties) "
            f"SELECT %s, 'b' || {text}, {event_type}, {when}, {when}, "
            f"%s + ((g * 2654435761) %% %s), '', '', '', '', '', '', '{{}}' FROM {series}",
            [workspace_id, first_identity, customers, events])
        cursor.execute("ANALYZE")


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def median_time(function, **kwargs) -> float:
    return statistics.median(timed(function, **kwargs)[0] for _ in range(5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()

    os.environ["SIYU_DATABASE_URL"] = database_prepare(args.engine)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from siyu.analytics import selectors
    from siyu.analytics.services import analytics_refresh
    from siyu.core.services import workspace_create
    from siyu.customers.identity import customer_merge
    from siyu.customers.models import Customer, Event

    call_command("migrate", verbosity=0)
    workspace = workspace_create(slug="bench", name="Bench")
    load_seconds, _ = timed(load, args.engine, workspace.pk, args.customers, args.events)
    print(f"loaded {args.customers:,} customers / {args.events:,} events in {load_seconds:.1f} s", flush=True)

    lines = []
    full_seconds, report = timed(analytics_refresh, workspace=workspace)
    lines.append(f"| first refresh (whole history, {report.days_recomputed} days) | {full_seconds:.2f} s |")
    idle_seconds, report = timed(analytics_refresh, workspace=workspace, days=2)
    lines.append(f"| hourly refresh, nothing new ({report.days_recomputed} days) | {idle_seconds:.2f} s |")

    now = timezone.now()
    identity_ids = list(Event.objects.filter(workspace=workspace).values_list("identity_id", flat=True)[:1000])
    Event.objects.bulk_create([
        Event(workspace=workspace, event_id=f"late-{k}", type="review", occurred_at=now - timedelta(days=40 + k % 30),
              received_at=now, identity_id=identity) for k, identity in enumerate(identity_ids)])
    pairs = list(Customer.objects.filter(workspace=workspace).order_by("pk").values_list("pk", flat=True)[:100])
    for winner, loser in zip(pairs[::2], pairs[1::2], strict=True):
        customer_merge(workspace=workspace, winner_id=winner, loser_id=loser, reason="explicit")
    late_seconds, report = timed(analytics_refresh, workspace=workspace, days=2)
    event_days = sum((r.last - r.first).days + 1 for r in report.ranges)
    lines.append(f"| hourly refresh after 1,000 late events on 30 old days + 50 merges ({event_days} days recomputed "
                 f"whole, {report.days_recomputed - event_days} days active customers only) | {late_seconds:.2f} s |")
    for name, kwargs in [("dashboard_summary", {}), ("channel_matrix", {"months": 6}),
                         ("active_customers_daily", {"days": 30}), ("events_daily", {"days": 30})]:
        seconds = median_time(getattr(selectors, name), workspace=workspace, **kwargs)
        lines.append(f"| selector `{name}` (median of 5) | {seconds * 1000:.1f} ms |")

    body = "\n".join([
        f"Command: `.venv/bin/python bench/bench_analytics.py --engine {args.engine} --customers {args.customers} "
        f"--events {args.events} --write-results`",
        f"Machine: {machine()}. Date: {now_utc()}. Synthetic load (set-based INSERT … SELECT): "
        f"{load_seconds:.0f} s.", "",
        "| step | time |", "|---|---|", *lines])
    print(body)
    if args.write_results:
        scale = f"{args.customers:,} customers / {args.events:,} events"
        results_section_write(f"Analytics rollups on {args.engine} ({scale})", body)


if __name__ == "__main__":
    main()
