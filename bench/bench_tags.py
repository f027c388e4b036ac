"""Tagging at scale: bulk tagging of a filtered list and rule-tag refresh on a large synthetic workspace.

    .venv/bin/python bench/bench_tags.py --engine postgresql --customers 100000 [--write-results]
    .venv/bin/python bench/bench_tags.py --engine sqlite --customers 100000

Creates a fresh database (PostgreSQL: ``siyu_bench_tags`` on the server of SIYU_TEST_PG_URL; SQLite: a WAL
file in a temporary directory), loads customers (one identity each, a city) and about three events each
(product views and payments over 14 days), then times: bulk add of one tag to every customer, the same
again (nothing to add), bulk removal, a full rule-tag refresh (the daily job), and a refresh of
1,000 customers (what follows one ingested batch).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc, results_section_write  # noqa: E402

PG_DB = "siyu_bench_tags"


def database_prepare(engine: str, name: str = PG_DB) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='siyu-bench-tags-')}/bench.sqlite3"
    import psycopg

    base = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    with psycopg.connect(base.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--database", default=PG_DB, help="PostgreSQL database to (re)create")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    os.environ["SIYU_DATABASE_URL"] = database_prepare(args.engine, args.database)
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-data-"))
    os.environ["SIYU_TASKS_IMMEDIATE"] = "1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "siyu.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from siyu.core.services import workspace_create
    from siyu.customers.models import Customer, CustomerTag, Event, Identity
    from siyu.customers.tagging import (
        rule_tags_refresh,
        tag_create,
        tag_group_create,
        tags_bulk_add,
        tags_bulk_remove,
    )

    rng = random.Random(3)
    now = timezone.now()
    workspace = workspace_create(slug="bench", name="bench")
    cities = ["上海", "杭州", "北京", "成都"]
    Customer.objects.bulk_create(
        [Customer(workspace=workspace, first_seen_at=now, last_seen_at=now, city=rng.choice(cities))
         for _ in range(args.customers)], batch_size=5000)
    ids = list(Customer.objects.filter(workspace=workspace).values_list("pk", flat=True))
    Identity.objects.bulk_create(
        [Identity(workspace=workspace, customer_id=pk, kind="openid", namespace="wx", value=f"o{pk}",
                  first_seen_at=now, last_seen_at=now) for pk in ids], batch_size=5000)
    identity_ids = list(Identity.objects.filter(workspace=workspace).values_list("pk", flat=True))
    events = []
    for n, identity_id in enumerate(identity_ids):
        for k in range(rng.choice([1, 2, 3, 4, 5])):
            kind = "order_paid" if rng.random() < 0.2 else "product_view"
            events.append(Event(workspace=workspace, event_id=f"e{n}-{k}", type=kind, identity_id=identity_id,
                                occurred_at=now - timedelta(minutes=rng.randrange(14 * 1440)), received_at=now,
                                properties={"product_id": rng.choice(["p1", "p2"])}))
    Event.objects.bulk_create(events, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    group = tag_group_create(workspace=workspace, name="运营")
    manual = tag_create(workspace=workspace, group_id=group.pk, name="活动名单")
    rule = {"all": [{"event": "product_view", "min_count": 2, "within_days": 7, "where": {"product_id": "p1"}},
                    {"not": {"event": "order_paid", "within_days": 7}},
                    {"attribute": "city", "in": ["上海", "杭州"]}]}
    tag_create(workspace=workspace, group_id=group.pk, name="犹豫", kind="rule", rule=rule)
    CustomerTag.objects.filter(tag__kind="rule").delete()  # measure the refresh from nothing

    rows = []

    def timed(label, func):
        before = load()
        start = time.perf_counter()
        result = func()
        seconds = time.perf_counter() - start
        rows.append((label, seconds, result, before))
        print(f"{label}: {seconds:.2f}s -> {result} ({before})", flush=True)

    timed(f"tags_bulk_add, {len(ids):,} customers", lambda: tags_bulk_add(workspace=workspace, tag=manual,
                                                                          customer_ids=ids))
    timed("tags_bulk_add again (all present)", lambda: tags_bulk_add(workspace=workspace, tag=manual,
                                                                      customer_ids=ids))
    timed(f"tags_bulk_remove, {len(ids):,} customers", lambda: tags_bulk_remove(workspace=workspace, tag=manual,
                                                                                customer_ids=ids))
    timed("rule_tags_refresh, everyone (daily job)", lambda: rule_tags_refresh(workspace=workspace, now=now))
    sample = rng.sample(ids, min(1000, len(ids)))
    timed("rule_tags_refresh, 1,000 customers (one batch)",
          lambda: rule_tags_refresh(workspace=workspace, customer_ids=sample, now=now + timedelta(hours=1)))

    body = [f"Command: `.venv/bin/python bench/bench_tags.py --engine {args.engine} --customers {args.customers}"
            f" --write-results`", f"Machine: {machine()}; {now_utc()}; {len(events):,} events.", "",
            "| step | seconds | result | load before the step |", "|---|---|---|---|"]
    body += [f"| {label} | {seconds:.2f} | {result} | {before} |" for label, seconds, result, before in rows]
    print("\n".join(body))
    if args.write_results:
        results_section_write(f"Tagging ({args.engine})", "\n".join(body))


if __name__ == "__main__":
    main()
