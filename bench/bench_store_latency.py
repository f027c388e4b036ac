"""Product-page and checkout latency under load from a separate process, next to a minimal Django view.

    ./run bench store_latency                                # 16 clients, 20 s per scenario
    .venv/bin/python bench/bench_store_latency.py --clients 16 --seconds 20 --workers 2 [--write-results]

Set-up (this process): a fresh PostgreSQL database (``siyu_bench_store`` on the server of SIYU_TEST_PG_URL,
dropped, created, migrated), a workspace, a mini-program registered in Siyu, a catalog (``--products``
products on shelf, two SKUs each with a large stock so checkouts never run out), and one consumer session per
client made directly with ``siyu.wechat.consumer.sessions.consumer_session_create`` (a customer, its openid
under the mini-program, a Bearer token ``wxs_…``).

Server: gunicorn (``--workers`` processes, gthread with 4 threads each, keep-alive) serving Siyu's WSGI
application with ``bench/store_bench_settings.py`` (Siyu's settings, ROOT_URLCONF = bench/store_bench_urls.py:
Siyu's URLs plus ``/bench/minimal``, a view that answers "ok"). siyu/urls.py is not touched.

Load: a separate process tree (multiprocessing, ``--procs`` processes, ``--clients`` client threads in all,
each with its own keep-alive ``http.client`` connection and its own token), each scenario for ``--seconds``
after a short warm-up, one after the other against the same server:
  * minimal: ``GET /bench/minimal`` (the baseline: Django served the same way, no database);
  * product: ``GET /api/mini/v1/products/<id>`` (the mini-program product endpoint: session, prices, SKUs);
  * checkout: ``POST /api/mini/v1/quote`` then ``POST /api/mini/v1/checkout`` for one SKU (each checkout
    makes an order: stock reserved, order and lines written), latencies of each kept apart.
Reported per scenario: requests/s, p50 and p99 (ms); ratios against the minimal view. Any non-2xx answer
fails the run.

Per-request cost (noise-robust, before the load, in this process): for each endpoint, ``--cost-requests``
requests through Django's test client on the same database after a short warm-up — SQL statements per
request, CPU per request of this process (time.process_time) and of its PostgreSQL backend (/proc of
pg_backend_pid, when readable). Endpoints: the minimal view, the mini-program product page, quote and
checkout, the mini-program home (a decorated page: a category grid and a zone of 8 products), and the H5
home and product pages (a 公众号 and one H5 cookie session are set up for them).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import load, machine, now_utc  # noqa: E402
from pg_template import database_prepare, template_save  # noqa: E402
from results_history import subsection_append  # noqa: E402

PG_DB = "siyu_bench_store"
TITLE = "H5 store / mini-program API latency (issue 4) — bench/bench_store_latency.py"
APPID = "wxbenchmini000001"
OFFICIAL_APPID = "wxbenchofficial01"
ADDRESS = {"name": "张三", "phone": "13800138000", "province": "上海市", "city": "上海市", "district": "徐汇区",
           "detail": "漕溪北路 88 号 1201 室"}


def setup(clients: int, products: int) -> dict:
    """Database, workspace, mini-program, catalog and sessions; what the load generator needs."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from siyu.core.services import workspace_create
    from siyu.customers.models import Customer, Identity
    from siyu.wechat.consumer.models import SessionKind
    from siyu.wechat.consumer.sessions import consumer_session_create
    from siyu.wechat.credentials import app_save
    from tests.commerce.catalog_fixtures import make_product

    call_command("migrate", interactive=False, verbosity=0)
    connection.close()
    template_save(connection.settings_dict["NAME"])
    workspace = workspace_create(slug="benchshop", name="商城压测")
    app = app_save(workspace=workspace, kind="miniapp", appid=APPID, name="压测小程序",
                   secrets={"app_secret": "benchminisecret0001"})
    catalog = []
    for number in range(products):
        product, skus = make_product(workspace, title=f"压测商品{number}", stock=10_000_000, price_fen=9900 + number)
        catalog.append({"product_id": product.pk, "sku_ids": [sku.pk for sku in skus]})
    from siyu.commerce.catalog.models import Category, Product
    from siyu.commerce.catalog.services import storefront_save

    category = Category.objects.create(workspace=workspace, name="压测分类")
    Product.objects.filter(workspace=workspace).update(category=category)
    storefront_save(workspace=workspace, title="压测首页", blocks=[
        {"type": "category_grid", "title": "分类", "category_ids": [category.pk]},
        {"type": "zone", "zone": "new", "title": "新品", "product_ids": [row["product_id"] for row in catalog[:8]]}])
    official = app_save(workspace=workspace, kind="official", appid=OFFICIAL_APPID, name="压测公众号",
                        secrets={"app_secret": "benchofficialsecret1", "token": "benchtoken1"})
    tokens = []
    at = timezone.now()
    for number in range(clients):
        customer = Customer.objects.create(workspace=workspace, first_seen_at=at, last_seen_at=at)
        identity = Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=APPID,
                                           value=f"oBenchStore{number:06d}xxxxxxxxxx", first_seen_at=at,
                                           last_seen_at=at)
        _, token = consumer_session_create(app=app, identity=identity, kind=SessionKind.MINIAPP)
        tokens.append(token)
    customer = Customer.objects.create(workspace=workspace, first_seen_at=at, last_seen_at=at)
    identity = Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=OFFICIAL_APPID,
                                       value="oBenchStoreH5000001xxxxxxx", first_seen_at=at, last_seen_at=at)
    _, h5_token = consumer_session_create(app=official, identity=identity, kind=SessionKind.H5)
    connection.close()
    return {"catalog": catalog, "tokens": tokens, "h5_token": h5_token, "slug": workspace.slug}


# --- per-request cost, in this process ----------------------------------------------------------------------------
def _backend_cpu(connection) -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (None: not readable here)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_costs(prepared: dict, requests: int) -> list[dict]:
    """Statements and CPU per request of each endpoint (Django's test client, this process and its backend)."""
    from django.core import signing
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from siyu.wechat.consumer.sessions import H5_COOKIE, H5_COOKIE_SALT

    catalog, slug = prepared["catalog"], prepared["slug"]
    mini = Client(HTTP_AUTHORIZATION=f"Bearer {prepared['tokens'][0]}", HTTP_HOST="127.0.0.1")
    h5 = Client(HTTP_HOST="127.0.0.1")
    h5.cookies[H5_COOKIE] = signing.get_cookie_signer(salt=H5_COOKIE + H5_COOKIE_SALT).sign(prepared["h5_token"])

    def line(n: int) -> dict:
        return {"sku_id": catalog[n % len(catalog)]["sku_ids"][n % 2], "quantity": 1}

    endpoints = [
        ("minimal `GET /bench/minimal`", lambda n: mini.get("/bench/minimal")),
        ("product `GET /api/mini/v1/products/<id>`",
         lambda n: mini.get(f"/api/mini/v1/products/{catalog[n % len(catalog)]['product_id']}")),
        ("quote `POST /api/mini/v1/quote`",
         lambda n: mini.post("/api/mini/v1/quote", {"lines": [line(n)]}, content_type="application/json")),
        ("checkout `POST /api/mini/v1/checkout`",
         lambda n: mini.post("/api/mini/v1/checkout", {"lines": [line(n)], "address": ADDRESS},
                             content_type="application/json")),
        ("mini-program home `GET /api/mini/v1/home`", lambda n: mini.get("/api/mini/v1/home")),
        ("H5 home `GET /shop/<slug>/`", lambda n: h5.get(f"/shop/{slug}/")),
        ("H5 product page `GET /shop/<slug>/products/<id>/`",
         lambda n: h5.get(f"/shop/{slug}/products/{catalog[n % len(catalog)]['product_id']}/")),
    ]
    rows = []
    for label, call in endpoints:
        for n in range(5):  # warm-up: caches, connection, templates
            call(n)
        with CaptureQueriesContext(connection) as queries:
            response = call(5)
        statements = len(queries.captured_queries)  # now: the next request's start clears Django's query log
        if response.status_code >= 300:
            raise SystemExit(f"{label}: {response.status_code} {response.content[:200]!r}")
        backend, cpu = _backend_cpu(connection), time.process_time()
        for n in range(requests):
            response = call(6 + n)
            if response.status_code >= 300:
                raise SystemExit(f"{label}: {response.status_code} {response.content[:200]!r}")
        cpu = (time.process_time() - cpu) / requests
        after = _backend_cpu(connection)
        rows.append({"endpoint": label, "queries": statements, "app_ms": cpu * 1e3,
                     "db_ms": (after - backend) / requests * 1e3 if backend is not None and after is not None
                     else None})
    connection.close()
    return rows


def costs_table(rows: list[dict]) -> str:
    lines = ["| endpoint (in-process, Django test client) | SQL statements / request | CPU ms / request (Django) "
             "| CPU ms / request (PostgreSQL backend) |", "|---|---|---|---|"]
    for row in rows:
        db = f"{row['db_ms']:.1f}" if row["db_ms"] is not None else "n/a"
        lines.append(f"| {row['endpoint']} | {row['queries']} | {row['app_ms']:.1f} | {db} |")
    return "\n".join(lines)


# --- the load generator (runs in its own processes) ------------------------------------------------------------
def _client(port: int, scenario: str, token: str, catalog: list, seconds: float, warmup: float, seed: int,
            out: list, failures: list) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    auth = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}

    def request(method: str, path: str, body: dict | None = None) -> float:
        headers = dict(auth)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        began = time.perf_counter()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - began
        if response.status >= 300:
            failures.append(f"{method} {path} → {response.status} {payload[:200]!r}")
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
        return elapsed

    started = time.perf_counter()
    measuring_from = started + warmup
    ends = measuring_from + seconds
    while True:
        now = time.perf_counter()
        if now >= ends or len(failures) > 20:
            break
        item = rng.choice(catalog)
        if scenario == "minimal":
            samples = [("minimal", request("GET", "/bench/minimal"))]
        elif scenario == "product":
            samples = [("product", request("GET", f"/api/mini/v1/products/{item['product_id']}"))]
        else:
            lines = [{"sku_id": rng.choice(item["sku_ids"]), "quantity": 1}]
            samples = [("quote", request("POST", "/api/mini/v1/quote", {"lines": lines})),
                       ("checkout", request("POST", "/api/mini/v1/checkout", {"lines": lines, "address": ADDRESS}))]
        if now >= measuring_from and time.perf_counter() <= ends:
            out.extend(samples)
    conn.close()


def _process(args: tuple) -> dict:
    port, scenario, tokens, catalog, seconds, warmup, seed = args
    out: list = []
    failures: list = []
    threads = [threading.Thread(target=_client, args=(port, scenario, token, catalog, seconds, warmup, seed + n,
                                                      out, failures)) for n, token in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"samples": out, "failures": failures}


def scenario_run(port: int, scenario: str, tokens: list, catalog: list, procs: int, seconds: float,
                 warmup: float) -> dict:
    shares = [tokens[n::procs] for n in range(procs)]
    context = multiprocessing.get_context("spawn")  # a clean process: no Django, no shared state with the set-up
    with context.Pool(procs) as pool:
        parts = pool.map(_process, [(port, scenario, share, catalog, seconds, warmup, 1000 * n)
                                    for n, share in enumerate(shares) if share])
    failures = [failure for part in parts for failure in part["failures"]]
    if failures:
        raise SystemExit(f"{scenario}: {len(failures)} failed request(s), first: {failures[0]}")
    by_kind: dict[str, list[float]] = {}
    for part in parts:
        for kind, elapsed in part["samples"]:
            by_kind.setdefault(kind, []).append(elapsed)
    result = {}
    for kind, values in by_kind.items():
        values.sort()
        result[kind] = {"requests": len(values), "per_s": len(values) / seconds,
                        "p50_ms": values[len(values) // 2] * 1e3,
                        "p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))] * 1e3}
    return result


# --- the server --------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_start(workers: int, env: dict) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "siyu.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--worker-class", "gthread", "--threads", "4", "--keep-alive", "30",
               "--pythonpath", f"{ROOT},{BENCH}", "--log-level", "warning", "--timeout", "120"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/bench/minimal")
            if conn.getresponse().status == 200:
                conn.close()
                return server, port
        except OSError:
            time.sleep(0.3)
    server_stop(server)
    raise SystemExit("gunicorn did not answer within 60 s")


def server_stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients in all")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each scenario")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (4 threads each)")
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--database", default=PG_DB, help="PostgreSQL database to (re)create")
    parser.add_argument("--cost-requests", type=int, default=50,
                        help="in-process requests per endpoint for the per-request cost table (0: skip it)")
    parser.add_argument("--cost-only", action="store_true",
                        help="only the per-request cost table (no server, no load, nothing written)")
    parser.add_argument("--write-results", action="store_true", help="write this run's section of RESULTS.md")
    args = parser.parse_args()
    if args.clients < 1 or args.procs < 1 or args.seconds <= 0 or args.workers < 1 or args.products < 1:
        parser.error("--clients, --procs, --workers, --products must be positive and --seconds > 0")

    database_url = database_prepare(args.database)
    env = dict(os.environ, SIYU_DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="store_bench_settings",
               SIYU_DATA_DIR=os.environ.get("SIYU_DATA_DIR") or tempfile.mkdtemp(prefix="siyu-bench-store-"),
               SIYU_DEBUG="0", SIYU_ALLOWED_HOSTS="127.0.0.1,localhost",
               SIYU_WECHAT_BASE_URL="http://127.0.0.1:9")  # simulator mode: nothing may leave the machine
    os.environ.update(env)
    prepared = setup(args.clients, args.products)
    costs, costs_load = [], ""
    if args.cost_requests > 0:
        costs = request_costs(prepared, args.cost_requests)
        costs_load = load()
        print(costs_table(costs))
        print(f"per-request cost measured at {costs_load}")
    if args.cost_only:
        return
    from django.db import connection

    from siyu.commerce.orders.models import Order
    orders_before = Order.objects.count()  # the cost table's checkouts are not the load's
    connection.close()
    server, port = server_start(args.workers, env)
    results = {}
    loads = {}
    try:
        for scenario in ("minimal", "product", "checkout"):
            results.update(scenario_run(port, scenario, prepared["tokens"], prepared["catalog"], args.procs,
                                        args.seconds, args.warmup))
            loads[scenario] = load()
    finally:
        server_stop(server)
    orders = Order.objects.count() - orders_before
    connection.close()

    base = results["minimal"]
    table = ["| endpoint | requests/s | p50 | p99 | req/s ÷ minimal | p50 ÷ minimal | p99 ÷ minimal |",
             "|---|---|---|---|---|---|---|"]
    labels = {"minimal": "minimal Django view `GET /bench/minimal`",
              "product": "product `GET /api/mini/v1/products/<id>`",
              "quote": "quote `POST /api/mini/v1/quote` (checkout scenario)",
              "checkout": "checkout `POST /api/mini/v1/checkout` (makes an order)"}
    for kind in ("minimal", "product", "quote", "checkout"):
        entry = results[kind]
        table.append(f"| {labels[kind]} | {entry['per_s']:.1f} | {entry['p50_ms']:.1f} ms | {entry['p99_ms']:.1f} ms "
                     f"| {entry['per_s'] / base['per_s']:.3f} | {entry['p50_ms'] / base['p50_ms']:.1f}× | "
                     f"{entry['p99_ms'] / base['p99_ms']:.1f}× |")
    table = "\n".join(table)
    print(table)
    print(f"{orders:,} orders made by the checkout scenario; loads after each scenario: "
          + "; ".join(f"{name}: {value}" for name, value in loads.items()))
    if args.write_results:
        command = (f"`.venv/bin/python bench/bench_store_latency.py --clients {args.clients} --procs {args.procs} "
                   f"--seconds {args.seconds:g} --workers {args.workers} --products {args.products} "
                   f"--cost-requests {args.cost_requests} --write-results` (or `./run bench store_latency`)")
        body = (f"Command: {command}\nMachine: {machine()}. Load after each scenario (shared "
                "machine; the load generator and gunicorn share its 2 CPUs): "
                + "; ".join(f"{name}: {value}" for name, value in loads.items()) + ".\n\n" + table + "\n\n"
                f"gunicorn {args.workers} workers × 4 threads (gthread, keep-alive) on PostgreSQL, "
                f"{args.products} products × 2 SKUs; load from {args.procs} separate processes with {args.clients} "
                f"keep-alive http.client clients in all (one consumer session = one Bearer token each), "
                f"{args.seconds:g} s measured per scenario after {args.warmup:g} s warm-up, scenarios one after the "
                f"other on the same server. Checkout scenario: each client quotes one random SKU then checks it out "
                f"({orders:,} orders made). Latency = request sent → whole answer read, seen by the client.")
        if costs:
            body += (f"\n\nPer-request cost before the load ({args.cost_requests} requests per endpoint after 5 warm-up "
                     f"requests, in the bench process through Django's test client on the same database; {costs_load}"
                     f"):\n\n" + costs_table(costs))
        subsection_append(TITLE, f"{now_utc()} — {args.clients} clients, {args.workers} gunicorn workers", body)


if __name__ == "__main__":
    main()
