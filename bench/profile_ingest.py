"""In-process profile of ``events_ingest`` (no HTTP): where the time per event goes.

    SIYU_DATABASE_URL=postgres://…/siyu_x .venv/bin/python bench/profile_ingest.py --events 10000 [--customers 1000]

Migrates the database of SIYU_DATABASE_URL, creates a fresh workspace, ingests the benchmark's events
(bench_ingest.make_events) in batches of 1000 under cProfile and prints µs per event for the main phases.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")

PHASES = ("validate_event", "_existing_ids", "_known_identities", "identities_resolve", "_resolve_once",
          "_insert_events", "_copy_events", "touches_record", "last_seen_apply", "_touch_last_seen", "_touch_identities", "_identity_owners", "events_ingested",
          "_load_identities", "_lock_customers", "_customers_insert", "_identities_insert", "_apply_merges")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--top", type=int, default=0, help="also print the top N functions by own time")
    parser.add_argument("--timers", action="store_true",
                        help="time the phases with perf_counter wrappers instead of cProfile (less overhead)")
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench_ingest import make_events

    from siyu.core.services import workspace_create
    from siyu.customers.ingestion import events_ingest

    # warm-up in another workspace: imports, subscriber discovery and connections are not profiled
    warm = workspace_create(slug=f"warm-{uuid.uuid4().hex[:8]}", name="Warm-up")
    events_ingest(workspace=warm, events=orjson.loads(orjson.dumps(make_events(200, 20, seed=3))))
    workspace = workspace_create(slug=f"prof-{uuid.uuid4().hex[:8]}", name="Profile")
    if args.timers:
        _timers_run(args, workspace, events_ingest, make_events)
        return
    events = orjson.loads(orjson.dumps(make_events(args.events, args.customers or max(args.events // 10, 1))))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    accepted = 0
    for offset in range(0, len(events), args.batch):
        profiler.enable()
        result = events_ingest(workspace=workspace, events=events[offset:offset + args.batch])
        profiler.disable()
        accepted += result.count("accepted")
    elapsed = time.perf_counter() - started
    assert accepted == len(events), accepted
    stats = pstats.Stats(profiler)
    print(f"{len(events)} events in {elapsed:.2f} s = {len(events) / elapsed:,.0f} events/s "
          f"({elapsed / len(events) * 1e6:.0f} µs/event, with profiler overhead); load {os.getloadavg()}")
    for (filename, _, name), (_, _, _, cumulative, _) in sorted(stats.stats.items(), key=lambda item: -item[1][3]):
        if name in PHASES and "siyu" in filename:
            print(f"  {name:24s} {cumulative / len(events) * 1e6:8.1f} µs/event (cumulative)")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)


def _timers_run(args, workspace, events_ingest, make_events) -> None:
    """Wrap the phases of ingestion in perf_counter timers (module attributes looked up at call time)."""
    from siyu.customers import identity, ingestion

    spent: dict[str, float] = {}
    cpu_spent: dict[str, float] = {}

    def wrap(module, name):
        original = getattr(module, name)

        def timed(*a, **k):
            start = time.perf_counter()
            cpu_start = time.thread_time()
            try:
                return original(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
                cpu_spent[name] = cpu_spent.get(name, 0.0) + time.thread_time() - cpu_start
        setattr(module, name, timed)

    for name in ("validate_event", "_existing_ids", "_known_identities", "identities_resolve", "_insert_events",
                 "_copy_events", "touches_record", "_touch_last_seen", "_identity_owners", "events_ingested",
                 "event_catalogue_for", "_ingestion_lock"):
        if hasattr(ingestion, name):
            wrap(ingestion, name)
    for name in ("_customers_insert", "_identities_insert", "identities_touch", "_load_identities",
                 "_lock_customers", "_apply_merges"):
        if hasattr(identity, name):
            wrap(identity, name)
    events = orjson.loads(orjson.dumps(make_events(args.events, args.customers or max(args.events // 10, 1))))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()" if connection.vendor == "postgresql" else "SELECT 0")
        backend = cursor.fetchone()[0]
    backend_started = _backend_cpu(backend)
    started = time.perf_counter()
    cpu_started = time.process_time()
    for offset in range(0, len(events), args.batch):
        events_ingest(workspace=workspace, events=events[offset:offset + args.batch])
    try:
        from siyu.customers.last_seen import last_seen_apply
    except ImportError:  # a tree from before the last-seen job (before/after comparisons)
        last_seen_apply = None
    if last_seen_apply is not None:
        apply_started = time.perf_counter()
        apply_cpu = time.thread_time()
        last_seen_apply()  # the deferred last-seen work belongs to the cost of these events
        spent["last_seen_apply (after)"] = time.perf_counter() - apply_started
        cpu_spent["last_seen_apply (after)"] = time.thread_time() - apply_cpu
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    backend_cpu = _backend_cpu(backend) - backend_started
    print(f"{len(events)} events in {elapsed:.2f} s = {len(events) / elapsed:,.0f} events/s "
          f"({elapsed / len(events) * 1e6:.0f} µs/event); load {os.getloadavg()}")
    # CPU time is what the load of other work on the machine disturbs least.
    print(f"  CPU per event: this process {cpu / len(events) * 1e6:.0f} µs, its PostgreSQL backend "
          f"{backend_cpu / len(events) * 1e6:.0f} µs (user+system, /proc)")
    print(f"  {'phase':24s} {'wall':>8s} {'Python CPU':>11s}  (µs/event; nested phases are inside their callers)")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:24s} {seconds / len(events) * 1e6:8.1f} {cpu_spent.get(name, 0.0) / len(events) * 1e6:11.1f}")
    print(f"  {'(rest: commit, Python glue)':24s} "
          f"{(elapsed - sum(v for k, v in spent.items() if k not in ('last_seen_apply (after)', '_customers_insert', '_identities_insert', 'identities_touch', '_load_identities', '_lock_customers', '_apply_merges'))) / len(events) * 1e6:8.1f} µs/event")


def _backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (the PostgreSQL backend), 0 when not readable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
