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
    tokens = []
    at = timezone.now()
    for number in range(clients):
        customer = Customer.objects.create(workspace=workspace, first_seen_at=at, last_seen_at=at)
        identity = Identity.objects.create(workspace=workspace, customer=customer, kind="openid", namespace=APPID,
                                           value=f"oBenchStore{number:06d}xxxxxxxxxx", first_seen_at=at,
                                           last_seen_at=at)
        _, token = consumer_session_create(app=app, identity=identity, kind=SessionKind.MINIAPP)
        tokens.append(token)
    connection.close()
    return {"catalog": catalog, "tokens": tokens}


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
    from django.db import connection

    from siyu.commerce.orders.models import Order
    orders = Order.objects.count()
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
                   f"--write-results` (or `./run bench store_latency`)")
        body = (f"Command: {command}\nMachine: {machine()}. Load after each scenario (shared "
                "machine; the load generator and gunicorn share its 2 CPUs): "
                + "; ".join(f"{name}: {value}" for name, value in loads.items()) + ".\n\n" + table + "\n\n"
                f"gunicorn {args.workers} workers × 4 threads (gthread, keep-alive) on PostgreSQL, "
                f"{args.products} products × 2 SKUs; load from {args.procs} separate processes with {args.clients} "
                f"keep-alive http.client clients in all (one consumer session = one Bearer token each), "
                f"{args.seconds:g} s measured per scenario after {args.warmup:g} s warm-up, scenarios one after the "
                f"other on the same server. Checkout scenario: each client quotes one random SKU then checks it out "
                f"({orders:,} orders made). Latency = request sent → whole answer read, seen by the client.")
        subsection_append(TITLE, f"{now_utc()} — {args.clients} clients, {args.workers} gunicorn workers", body)


if __name__ == "__main__":
    main()
