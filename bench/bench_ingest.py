"""Event ingestion through the HTTP API into PostgreSQL, end to end, against PostgreSQL's own COPY.

    .venv/bin/python bench/bench_ingest.py --events 200000 [--workers 4] [--threads 1] [--clients 8] [--write-results]

1. (Re)creates the database ``siyu_bench_ingest`` on the server of SIYU_TEST_PG_URL and migrates it.
2. Starts gunicorn (the Django WSGI application, loaded and warmed once with ``--preload`` so no worker
   pays its first-request imports during the timed run; 4 workers × 1 thread by default: two threads of
   one process contend for the GIL) on a free loopback port against it.
3. Posts the events in batches of 1000 (pre-serialised, from client threads with keep-alive
   connections) and times from the first request to the last answer. Every event must be accepted.
   Then runs the last-seen job (siyu.customers.last_seen: the per-batch last-seen times folded into
   customers and identities) and adds its time: the HTTP rate counts that deferred work too.
   The server's task queue is Redis (the production setup on PostgreSQL) unless ``--queue sqlite``.
4. Reads the stored event rows back, empties the event table (fresh state, same indexes), and times
   ``COPY customers_event FROM STDIN`` of exactly those rows: the physical limit on this machine.
5. Optionally (``--sqlite N``) times the embedded path: events_ingest in-process on SQLite.
Prints events/s for each, the CPU per event of every process involved (gunicorn workers, their PostgreSQL
backends, the client, the last-seen job, COPY's backend; /proc user+system: what a shared machine disturbs
least) and three ratios to COPY: requests alone, requests + last-seen job, and end to end with the
background subscribers' queue; ``--write-results`` records them in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc, results_section_write  # noqa: E402

TYPES = [("page_view", 0.55), ("product_view", 0.25), ("add_to_cart", 0.08), ("article_read", 0.07),
         ("order_paid", 0.05)]
SOURCES = ["xhs", "douyin", "baidu", "wechat_mp", "taobao", "offline", "invite", ""]


def make_events(count: int, customers: int, seed: int = 7) -> list[dict]:
    """Deterministic, realistic events: several per customer, mixed identities, UTM on some."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(days=30)
    names, weights = zip(*TYPES, strict=True)
    events = []
    for number in range(count):
        customer = rng.randrange(customers)
        identities = [{"kind": "openid", "namespace": "wx-mini", "value": f"o{customer:08d}"}]
        if customer % 3 == 0:
            identities.append({"kind": "unionid", "value": f"u{customer:08d}"})
        if customer % 10 == 0:
            identities.append({"kind": "phone", "value": f"13{customer:09d}"})
        kind = rng.choices(names, weights)[0]
        properties: dict = {}
        if kind in {"product_view", "add_to_cart"}:
            properties = {"product_id": f"p{rng.randrange(500)}", "price_fen": rng.randrange(100, 99900)}
        elif kind == "article_read":
            properties = {"article_id": f"a{rng.randrange(80)}", "read_seconds": rng.randrange(5, 600)}
        elif kind == "order_paid":
            properties = {"order_id": f"ord{number}", "amount_fen": rng.randrange(1000, 500000)}
        else:
            properties = {"url": f"/p/{rng.randrange(1000)}", "title": "商品详情"}
        event = {
            "event_id": f"bench-{number:09d}",
            "type": kind,
            "occurred_at": (base + timedelta(seconds=number * 2592000 // max(count, 1))).isoformat(),
            "identities": identities,
            "properties": properties,
        }
        source = SOURCES[customer % len(SOURCES)]
        if source and number % 4 == 0:
            event["page_url"] = f"https://shop.example.cn/p/1?utm_source={source}&utm_medium=social&utm_campaign=c{customer % 9}"
        elif source:
            event["channel"] = source
        events.append(event)
    return events


def warmed_application():
    """The WSGI application with what Django and Siyu otherwise load on a worker's first request already
    loaded (URLconf and every view, the API schema, translation catalogues, task modules and domain-event
    subscriptions). gunicorn --preload calls this once in the master, so every forked worker starts warm:
    the first request of a cold worker cost ~1.5-3.5 s of CPU when measured, which on a 20k-event run
    was most of the difference between one and four workers."""
    from django.core.wsgi import get_wsgi_application
    from django.urls import get_resolver
    from django.utils import translation
    from django.utils.module_loading import autodiscover_modules

    from siyu.core.crypto import normalize_phone, phone_hash

    application = get_wsgi_application()
    get_resolver().url_patterns  # noqa: B018 (imports the URLconf and every view module)
    # The data key (phone hashes) is created on first use under the data directory; created here, once,
    # rather than by several workers at the same moment (siyu.core.keys.load_or_create_secret races then).
    phone_hash(normalize_phone("13800000000"))
    autodiscover_modules("tasks")
    for language in ("zh-hans", "en"):
        with translation.override(language):
            translation.gettext("Customers")
    return application


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (all its threads) from /proc; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(item) for item in listing.read().split()]
    except OSError:
        return []


def backends(url: str, database: str) -> list[int]:
    """PostgreSQL backend pids connected to the benchmark database (the server's persistent connections)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database])]


def database_recreate(admin_url: str, name: str, template: str = "") -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def post_all(port: int, secret: str, bodies: list[bytes], clients: int) -> tuple[float, dict[str, int]]:
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", "/api/v1/events/batch", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                errors.append(f"{response.status} {payload[:300]!r}")
                continue
            answer = orjson.loads(payload)
            with lock:
                for name in totals:
                    totals[name] += answer[name]
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    return elapsed, totals


def queue_drain() -> tuple[int, int, float]:
    """Run every task in the benchmark's own queue in this process (delayed ones too), timing it."""
    from django.db import connection
    from django.utils.module_loading import autodiscover_modules
    from huey.contrib.djhuey import HUEY

    autodiscover_modules("tasks")  # the task registry a worker has
    queued = HUEY.pending_count()
    executed = 0
    started = time.perf_counter()
    while (task := HUEY.dequeue()) is not None:
        task.eta = None  # a debounced or retried task: the drain runs it now
        HUEY.execute(task)
        executed += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return queued, executed, elapsed


def copy_baseline(url: str, table: str, columns: str) -> tuple[float, int, float]:
    """Read back what the API stored, empty the table, and time PostgreSQL's COPY of the same rows."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        data = bytearray()
        with conn.cursor().copy(f"COPY {table} ({columns}) TO STDOUT") as copy:
            for chunk in copy:
                data += chunk
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        conn.execute(f"TRUNCATE {table}")
        conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("CHECKPOINT")
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu_before = proc_cpu(backend)
        start = time.perf_counter()
        with conn.transaction(), conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            view = memoryview(data)
            for offset in range(0, len(view), 1 << 20):
                copy.write(view[offset:offset + (1 << 20)])
        elapsed = time.perf_counter() - start
        cpu = proc_cpu(backend) - cpu_before
        stored = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert stored == rows, (stored, rows)
    return elapsed, rows, cpu


def sqlite_child(count: int, batch: int) -> None:
    """Runs in its own process (Django settings bound to a fresh SQLite file): the embedded path."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from siyu.core.services import workspace_create
    from siyu.customers.ingestion import events_ingest

    workspace = workspace_create(slug="bench", name="Bench")
    events = orjson.loads(orjson.dumps(make_events(count, max(count // 10, 1), seed=11)))
    start = time.perf_counter()
    accepted = 0
    for offset in range(0, count, batch):
        result = events_ingest(workspace=workspace, events=events[offset:offset + batch])
        accepted += result.count("accepted")
    elapsed = time.perf_counter() - start
    assert accepted == count, accepted
    print(orjson.dumps({"elapsed": elapsed, "events": count}).decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=0, help="distinct customers (default events/10)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker (1: one request per process; two threads of one "
                             "process contend for the GIL, which cost ~50 %% more CPU per event when measured)")
    parser.add_argument("--clients", type=int, default=0, help="client threads (default 2 × workers)")
    parser.add_argument("--pg-url", default=os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu"))
    parser.add_argument("--database", default="siyu_bench_ingest")
    parser.add_argument("--template", default="",
                        help="create the database as a copy of this (already migrated, unused) one: saves the "
                             "migration time between runs; migrate still runs and must find nothing to do")
    parser.add_argument("--sqlite", type=int, default=20_000, help="events for the embedded SQLite number (0: skip)")
    parser.add_argument("--queue", choices=("redis", "sqlite"),
                        default="redis" if os.environ.get("SIYU_TEST_REDIS_URL") else "sqlite",
                        help="task queue of the server (production on PostgreSQL uses Redis; default redis when "
                             "SIYU_TEST_REDIS_URL is set). Subscribers of EVENTS_INGESTED enqueue work per batch.")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--sqlite-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sqlite_child:
        sqlite_child(args.events, args.batch)
        return
    customers = args.customers or max(args.events // 10, 1)
    clients = args.clients or 2 * args.workers

    url = database_recreate(args.pg_url, args.database, args.template)
    data_dir = tempfile.mkdtemp(prefix="siyu-bench-ingest-")
    env = {**os.environ, "SIYU_DATABASE_URL": url, "SIYU_DATA_DIR": data_dir, "DJANGO_SETTINGS_MODULE": "siyu.settings",
           "SIYU_DEBUG": "0", "SIYU_DB_CONN_MAX_AGE": "600",
           "PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "bench")))}
    queue_name = f"bench-ingest-{os.getpid()}"
    if args.queue == "redis":
        env.update(SIYU_REDIS_URL=os.environ["SIYU_TEST_REDIS_URL"], SIYU_QUEUE_NAME=queue_name)
    else:
        env.pop("SIYU_REDIS_URL", None)
    os.environ.update(env)
    subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity", "0"], check=True, env=env, cwd=ROOT)

    import django

    django.setup()
    from siyu.core.services import api_key_create, workspace_create
    from siyu.customers.models import Event

    workspace = workspace_create(slug="bench", name="Bench")
    secret = api_key_create(workspace=workspace, name="bench")[1]
    table = Event._meta.db_table
    from siyu.customers.ingestion import EVENT_COLUMNS

    columns = ", ".join(EVENT_COLUMNS)
    from django.db import connection

    connection.close()

    print(f"generating {args.events} events over {customers} customers …", flush=True)
    events = make_events(args.events, customers)
    bodies = [orjson.dumps({"events": events[offset:offset + args.batch]})
              for offset in range(0, len(events), args.batch)]
    del events

    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "bench_ingest:warmed_application()", "--preload", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
         "--worker-class", "gthread", "--threads", str(args.threads), "--keep-alive", "30", "--timeout", "300",
         "--log-level", "warning"],
        env=env, cwd=ROOT,
    )
    try:
        wait_listening(port, server)
        # Warm-up: one tiny batch per worker so imports and connections are not timed.
        warm = [orjson.dumps({"events": [{"event_id": f"warm-{n}", "type": "page_view",
                                          "occurred_at": datetime.now(UTC).isoformat(),
                                          "identities": [{"kind": "device", "namespace": "warm", "value": "w"}]}]})
                for n in range(args.workers * 4)]
        post_all(port, secret, warm, clients)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {table} WHERE event_id LIKE 'warm-%%'")
        load_before = load()
        # CPU seconds of every process doing the work (noise-robust, unlike wall time on a shared machine)
        workers = children(server.pid)
        pg_pids = backends(url, args.database)
        cpu_before = {pid: proc_cpu(pid) for pid in [*workers, *pg_pids]}
        client_before = time.process_time()
        print(f"posting {len(bodies)} batches of {args.batch} with {clients} client threads to gunicorn "
              f"({args.workers} workers) …", flush=True)
        http_elapsed, totals = post_all(port, secret, bodies, clients)
        client_cpu = time.process_time() - client_before
        new_pg = [pid for pid in backends(url, args.database) if pid not in cpu_before]
        worker_cpu = sum(proc_cpu(pid) - cpu_before[pid] for pid in workers)
        pg_cpu = sum(proc_cpu(pid) - cpu_before[pid] for pid in pg_pids) + sum(proc_cpu(pid) for pid in new_pg)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if totals["accepted"] != args.events:
        raise SystemExit(f"expected every event accepted, got {totals}")
    # Last-seen times are recorded per batch and folded in by a background job (siyu.customers.last_seen):
    # that work is part of ingesting these events, so it is timed here and counted in the HTTP rate.
    try:
        from siyu.customers.last_seen import last_seen_apply
    except ImportError:  # a tree from before the last-seen job (before/after comparisons)
        def last_seen_apply() -> int:
            return 0

    from django.db import connection as job_connection

    with job_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        job_backend = cursor.fetchone()[0]
    job_cpu_before, job_pg_before = time.process_time(), proc_cpu(job_backend)
    drain_started = time.perf_counter()
    touches = last_seen_apply()
    drain_elapsed = time.perf_counter() - drain_started
    job_cpu, job_pg_cpu = time.process_time() - job_cpu_before, proc_cpu(job_backend) - job_pg_before
    connection.close()
    # Work the ingestion queued for the background (domain-event subscribers, e.g. the one EVENTS_INGESTED
    # dispatcher per batch) is part of ingesting these events: drain the queue here, in this process and one
    # thread (a real worker runs several), and count that time in the end-to-end rate.
    queued, executed, queue_elapsed = queue_drain()
    print(f"{args.queue} task queue: {queued} tasks queued during the run; drained {executed} tasks "
          f"(with those they queued) in {queue_elapsed:.2f}s", flush=True)
    requests_rate = args.events / http_elapsed
    http_total = http_elapsed + drain_elapsed + queue_elapsed
    http_rate = args.events / http_total
    load_after = load()
    print(f"HTTP API: {args.events} events in {http_elapsed:.2f}s + last-seen job {drain_elapsed:.2f}s "
          f"({touches} batch touches) + background queue {queue_elapsed:.2f}s = {http_rate:,.0f} events/s end to end "
          f"(requests alone {requests_rate:,.0f}/s) ({load_before} before, {load_after} after)", flush=True)

    per_event = 1e6 / args.events
    print(f"CPU per event, requests: gunicorn workers {worker_cpu * per_event:.0f} µs, their PostgreSQL backends "
          f"{pg_cpu * per_event:.0f} µs, client {client_cpu * per_event:.0f} µs "
          f"({(worker_cpu + pg_cpu + client_cpu) / http_elapsed:.2f} CPUs busy on average); last-seen job: "
          f"Python {job_cpu * per_event:.0f} µs, PostgreSQL {job_pg_cpu * per_event:.0f} µs", flush=True)
    load_copy = load()
    copy_elapsed, rows, copy_cpu = copy_baseline(url, table, columns)
    copy_rate = rows / copy_elapsed
    ratio = http_rate / copy_rate
    requests_ratio = requests_rate / copy_rate
    ingest_rate = args.events / (http_elapsed + drain_elapsed)  # requests + ingestion's own deferred write
    ingest_ratio = ingest_rate / copy_rate
    print(f"COPY:     {rows} events in {copy_elapsed:.2f}s = {copy_rate:,.0f} events/s ({load_copy} before); "
          f"PostgreSQL backend CPU {copy_cpu * 1e6 / rows:.0f} µs/event")
    print(f"ratio HTTP / COPY = {requests_ratio:.3f} requests alone, {ingest_ratio:.3f} requests + last-seen job "
          f"({ingest_rate:,.0f} events/s), {ratio:.3f} end to end (+ background subscribers' queue)")

    sqlite_line = ""
    if args.sqlite:
        sqlite_dir = tempfile.mkdtemp(prefix="siyu-bench-ingest-sqlite-")
        child_env = {**env, "SIYU_DATABASE_URL": f"sqlite:///{sqlite_dir}/bench.db", "SIYU_DATA_DIR": sqlite_dir}
        out = subprocess.run([sys.executable, __file__, "--sqlite-child", "--events", str(args.sqlite),
                              "--batch", str(args.batch)], env=child_env, cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        measured = orjson.loads(out)
        sqlite_rate = measured["events"] / measured["elapsed"]
        sqlite_line = (f"- Embedded SQLite, `events_ingest` in-process (no HTTP), {measured['events']} events: "
                       f"**{sqlite_rate:,.0f} events/s**")
        print(f"SQLite embedded (in-process): {sqlite_rate:,.0f} events/s")

    if args.write_results:
        command = "`.venv/bin/python bench/bench_ingest.py " + " ".join(
            a for a in sys.argv[1:] if a != "--write-results") + " --write-results`"
        results_section_write("Event ingestion (HTTP API vs PostgreSQL COPY)", f"""
Command: {command}
Machine: {machine()}; PostgreSQL and the client on the same machine. Date: {now_utc()}.
Workload: {args.events} events over {customers} customers (openid on all, unionid on ⅓, phone on 1/10;
UTM/channel on most), batches of {args.batch}, gunicorn {args.workers} gthread workers × {args.threads} threads (--preload, warmed), {clients} client threads,
task queue {args.queue}.

- HTTP API end to end (auth, JSON, validation, dedup, identity resolution creating {customers} customers, insert,
  per-event answer, then the last-seen job and the drained background queue): **{http_rate:,.0f} events/s**
  ({http_elapsed:.1f} s + {drain_elapsed:.1f} s + {queue_elapsed:.1f} s for {executed} queued tasks); requests alone
  {requests_rate:,.0f} events/s
- PostgreSQL `COPY` of the same rows into the same (emptied) table: **{copy_rate:,.0f} events/s** ({copy_elapsed:.1f} s)
- **Ratio HTTP / COPY = {ingest_ratio:.2f}** requests + last-seen job (goal ≥ 0.5); requests alone
  {requests_ratio:.2f}; end to end with the background subscribers' queue {ratio:.2f}
- Machine load: HTTP run {load_before} before, {load_after} after; COPY {load_copy} before
{sqlite_line}
""")


if __name__ == "__main__":
    main()
