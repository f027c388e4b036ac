"""Journey fan-out: planning one message for 1M customers with caps, quiet hours and consent.

    .venv/bin/python bench/bench_journeys.py --customers 1000000 [--channel official_template] [--write-results]

``--channel``: official_template (公众号 template message, default), official_custom (公众号 customer-service
message: followers who wrote within 48 hours only — 10% wrote 49 hours ago), miniapp_subscribe (小程序
subscribe message: an openid of the mini-program) or wecom_mass (WeCom mass send, one per customer).

1. Recreates the PostgreSQL database ``siyu_perf_journeys`` (server of SIYU_TEST_PG_URL) and migrates it.
2. Generates in SQL (INSERT … SELECT generate_series): N customers, an openid each for one 公众号 and a
   Follower row (3% unfollowed), a withdrawn marketing consent for 2%, and — so the caps bite — a message
   already counted today for 5% of them (from an earlier journey). Then N runs of a journey entered at once,
   all due at its message step, at 23:00 Shanghai (quiet hours: every planned message is deferred).
3. Times ``fanout_due`` — the product's set-based planner the tick uses (chunks of 50,000 runs: lock runs
   with SKIP LOCKED, lock limiter rows, INSERT … SELECT outbox rows, step executions, next step) — and,
   for comparison, the per-run path (``run_advance``) on a sample of runs, both on the same data; CPU time
   of this process and of its PostgreSQL backend (from /proc; the server is local) per message planned.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc  # noqa: E402
from results_history import subsection_append  # noqa: E402

PG_DB = "siyu_perf_journeys"
TITLE = "Journey fan-out (issue 5) — bench/bench_journeys.py"
CHANNELS = ("official_template", "official_custom", "miniapp_subscribe", "wecom_mass")


def cpu_seconds(pid: int | None = None) -> float:
    """user + system CPU of a process (this one by default), from /proc."""
    with open(f"/proc/{pid or os.getpid()}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_prepare(reuse: bool) -> str:
    import psycopg

    server = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    if not reuse:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-journeys-"))
    return urlunsplit(urlsplit(server)._replace(path=f"/{PG_DB}"))


def insert_select(cursor, table: str, given: dict[str, str], source: str, params=()) -> int:
    """INSERT INTO table (given + every other NOT NULL column without a default, filled by type) SELECT …"""
    cursor.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
                   "AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'", [table])
    fill = {"text": "''", "character varying": "''", "integer": "0", "bigint": "0", "smallint": "0",
            "boolean": "false", "jsonb": "'{}'::jsonb", "timestamp with time zone": "now()", "date": "current_date",
            "bytea": "''::bytea", "numeric": "0"}
    columns = dict(given)
    for name, kind in cursor.fetchall():
        if name not in columns and name != "id":
            columns[name] = fill[kind]
    names = ", ".join(columns)
    values = ", ".join(columns.values())
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {values} FROM {source}", params)
    return cursor.rowcount


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000, help="runs planned one by one for the comparison")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the migrated database, empty it (TRUNCATE)")
    parser.add_argument("--channel", choices=CHANNELS, default="official_template")
    args = parser.parse_args()
    load_start = load()
    os.environ["SIYU_DATABASE_URL"] = database_prepare(args.reuse)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from siyu.core.services import workspace_create
    from siyu.core.timeutil import SHANGHAI
    from siyu.customers.models import ConsentRecord, Customer, Identity
    from siyu.engagement.journeys import engine, fanout, services
    from siyu.engagement.journeys.models import JourneyMessage, JourneyRun
    from siyu.engagement.segments.models import Segment
    from siyu.wechat.models import WeChatApp
    from siyu.wechat.official.models import Follower

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    if args.reuse:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE core_workspace CASCADE")
    migrate_s = time.perf_counter() - started
    now = datetime(2026, 11, 24, 23, 0, tzinfo=SHANGHAI)  # quiet hours: deferred to 08:00
    workspace = workspace_create(slug="perf-journeys", name="旅程压测")
    channel = args.channel
    kind = {"miniapp_subscribe": "miniapp", "wecom_mass": "work"}.get(channel, "official")
    app = WeChatApp.objects.create(workspace=workspace, kind=kind, appid="wxperfjourneys01", name="压测账号",
                                   secrets_enc=b"")
    n = args.customers
    started = time.perf_counter()
    with connection.cursor() as cursor:
        insert_select(cursor, Customer._meta.db_table, {
            "workspace_id": "%s", "status": "'active'", "first_seen_at": "now() - interval '30 days'",
            "last_seen_at": "now()", "attributes": "'{}'::jsonb", "created_at": "now()"},
            "generate_series(1, %s) AS g", [workspace.pk, n])
        cursor.execute(f"SELECT min(id) FROM {Customer._meta.db_table}")
        first_id = cursor.fetchone()[0]
        insert_select(cursor, Identity._meta.db_table, {
            "workspace_id": "%s", "customer_id": "c.id", "kind": "'openid'", "namespace": "%s",
            "value": "'o' || c.id", "first_seen_at": "now()", "last_seen_at": "now()"},
            f"{Customer._meta.db_table} c", [workspace.pk, app.appid])
        insert_select(cursor, Follower._meta.db_table, {
            "workspace_id": "%s", "app_id": "%s", "openid": "'o' || c.id", "subscribed": "mod(c.id, 100) >= 3",
            "customer_id": "c.id",
            # 90% wrote an hour ago (inside the 48-hour customer-service window), 10% 49 hours ago
            "last_interaction_at": "%s - CASE WHEN mod(c.id, 10) = 5 THEN interval '49 hours' ELSE interval '1 hour' END"},
            f"{Customer._meta.db_table} c", [workspace.pk, app.pk, now])
        insert_select(cursor, ConsentRecord._meta.db_table, {
            "workspace_id": "%s", "customer_id": "c.id", "purpose": "'marketing'", "granted": "false",
            "recorded_at": "now()"}, f"{Customer._meta.db_table} c WHERE mod(c.id, 50) = 7", [workspace.pk])
    segment = Segment.objects.create(workspace=workspace, name="全部", definition={})
    step = {"id": "m1", "type": "message", "channel": channel, "app_id": app.pk, "next": ""}
    if channel in ("official_template", "miniapp_subscribe"):
        step.update(template_id="TPL_sale", data={"first": "双十二预售开启"}, url="https://shop.example/s")
    else:
        step["text"] = "双十二预售开启，回复 TD 退订"
    earlier = services.journey_create(workspace=workspace, name="早先的旅程", now=now, definition={
        "trigger": {"type": "segment_entered", "segment_id": segment.pk, "include_existing": False},
        "steps": [{**step}]})
    services.journey_activate(workspace=workspace, journey_id=earlier.pk, now=now)
    journey = services.journey_create(workspace=workspace, name="双十二预告", now=now, definition={
        "trigger": {"type": "segment_entered", "segment_id": segment.pk, "include_existing": False},
        "steps": [step]})
    services.journey_activate(workspace=workspace, journey_id=journey.pk, now=now)
    with connection.cursor() as cursor:
        # 5% already had a message counted for tomorrow's day (the day deferred messages land on)
        insert_select(cursor, JourneyRun._meta.db_table, {
            "workspace_id": "%s", "journey_id": "%s", "version": "1", "customer_id": "c.id", "entry_key": "'once'",
            "status": "'completed'", "current_step": "''", "entered_at": "%s"},
            f"{Customer._meta.db_table} c WHERE mod(c.id, 20) = 3", [workspace.pk, earlier.pk, now])
        insert_select(cursor, JourneyMessage._meta.db_table, {
            "workspace_id": "%s", "journey_id": "%s", "run_id": "r.id", "step_id": "'m1'", "customer_id": "r.customer_id",
            "channel": "%s", "status": "'deferred'", "idempotency_key": "'old-' || r.id",
            "payload": "'{}'::jsonb", "due_at": "%s", "cap_day": "%s", "created_at": "%s"},
            f"{JourneyRun._meta.db_table} r WHERE r.journey_id = %s",
            [workspace.pk, earlier.pk, channel, now.replace(day=25, hour=8), now.replace(day=25).date(), now, earlier.pk])
        insert_select(cursor, JourneyRun._meta.db_table, {
            "workspace_id": "%s", "journey_id": "%s", "version": "1", "customer_id": "c.id", "entry_key": "'once'",
            "status": "'active'", "current_step": "'m1'", "next_at": "%s", "entered_at": "%s"},
            f"{Customer._meta.db_table} c", [workspace.pk, journey.pk, now, now])
        cursor.execute("ANALYZE")
    load_s = time.perf_counter() - started
    # the per-run path on a sample (same data; those runs are then done and the fan-out skips them)
    sample_ids = list(JourneyRun.objects.filter(journey=journey).order_by("pk").values_list("pk", flat=True)
                      [:args.sample])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    started, cpu_started, db_started = time.perf_counter(), cpu_seconds(), cpu_seconds(backend)
    for run_id in sample_ids:
        engine.run_advance(run_id=run_id, now=now)
    per_run_s = time.perf_counter() - started
    per_run_cpu = (cpu_seconds() - cpu_started, cpu_seconds(backend) - db_started)
    started, cpu_started, db_started = time.perf_counter(), cpu_seconds(), cpu_seconds(backend)
    planned = 0
    groups = fanout.fanout_groups(now=now)  # what fanout_due does, chunk by chunk with progress
    for journey_id, version, step_id, _count in groups:
        while True:
            chunk_started = time.perf_counter()
            done = fanout.fanout_chunk(journey_id=journey_id, version=version, step_id=step_id, now=now)
            planned += done
            print(f"chunk: {done} runs in {time.perf_counter() - chunk_started:.1f} s ({load()})", flush=True)
            if done < fanout.CHUNK:
                break
    fanout_s = time.perf_counter() - started
    fanout_cpu = (cpu_seconds() - cpu_started, cpu_seconds(backend) - db_started)
    statuses = dict(JourneyMessage.objects.filter(journey=journey).values_list("status")
                    .annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("pk")).order_by())
    # the exact check: customers holding more counted messages on the landing day than the channel's daily cap
    from django.db.models import Count

    from siyu.engagement.journeys.models import CAP_COUNTED
    from siyu.engagement.journeys.schedule import caps_for

    caps = caps_for(channel, None)
    over = (JourneyMessage.objects.filter(channel=channel, status__in=CAP_COUNTED, cap_day=now.replace(day=25).date())
            .values("customer_id").annotate(n=Count("pk")).filter(n__gt=caps["day"]).count())
    per_run_rate = len(sample_ids) / per_run_s
    rate = planned / fanout_s
    per_message = (1e3 * sum(fanout_cpu) / max(planned, 1), 1e3 * sum(per_run_cpu) / max(len(sample_ids), 1))
    lines = [
        f"Run {now_utc()} on {machine()}; {load()} (at the end; at the start: {load_start}).",
        f"Command: `.venv/bin/python bench/bench_journeys.py --customers {n} --channel {channel} --sample "
        f"{args.sample}{' --reuse' if args.reuse else ''}` (PostgreSQL database `{PG_DB}`).",
        "",
        f"- Data: {n:,} customers (first id {first_id}), one openid of the account + Follower each (3% unfollowed, "
        "10% last wrote 49 h ago), 2% withdrew marketing consent, 5% already hold a counted message for the day "
        f"the messages land on, {n:,} runs due at one `{channel}` message step at 23:00 Shanghai (quiet hours). "
        f"Load {load_s:.0f} s, migrate {migrate_s:.0f} s.",
        f"- **Set-based fan-out (`fanout_due`, chunks of {fanout.CHUNK:,}): {planned:,} runs planned in "
        f"{fanout_s:.1f} s = {rate:,.0f} messages planned/s.** CPU: Python {fanout_cpu[0]:.1f} s + PostgreSQL "
        f"backend {fanout_cpu[1]:.1f} s = {per_message[0]:.3f} ms per message "
        f"(= {1e3 / max(per_message[0], 1e-9):,.0f} messages per CPU-second).",
        f"- Per-run path (`run_advance`, one transaction per run) on the first {len(sample_ids):,} runs: "
        f"{per_run_s:.1f} s = {per_run_rate:,.0f} runs/s (fan-out is {rate / per_run_rate:,.0f}× faster); CPU "
        f"Python {per_run_cpu[0]:.1f} s + backend {per_run_cpu[1]:.1f} s = {per_message[1]:.2f} ms per run.",
        f"- Outcome of all {sum(statuses.values()):,} messages: "
        + ", ".join(f"{key} {value:,}" for key, value in sorted(statuses.items()))
        + f"; deferred to 08:00, none planned into quiet hours; customers over the daily cap "
        f"({caps['day']}/day, {caps['week']}/week): {over}.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_results:
        subsection_append(TITLE, f"{now_utc()} — {n:,} customers, {channel}", body)


if __name__ == "__main__":
    main()
