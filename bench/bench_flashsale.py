"""Flash sale under a crowd on PostgreSQL: paid orders per second next to the hot-row limit.

    ./run bench flashsale                                   # 500 clients, 3,000 units
    .venv/bin/python bench/bench_flashsale.py --clients 500 --stock 3000 --procs 4 [--write-results]

A fresh database (``siyu_bench_flash``, dropped and created on the server of SIYU_TEST_PG_URL, migrated) gets
a workspace, a WeChat Pay merchant registered both in Siyu and in the WeChat simulator, a product and one flash
sale of ``--stock`` units (limit one per customer), and ``stock + clients`` buyers (customers with the openid
their simulated WeChat user has under the shop's AppID).

Processes, as a deployment would have them (all on this machine):
- this process: set-up, then the WeChat simulator (HTTP, threads), then the checks;
- Siyu's web server: gunicorn (``--server-workers`` processes, gthread) receiving WeChat Pay's notifications,
  its workers warmed before the sale starts as a running server's are (URLconf imported, subscribers found:
  ``bench/flash_gunicorn_hooks.py``);
- Siyu's background worker: one Huey consumer (``siyu run_huey``, Redis queue of its own) running what the
  payment path queues (loyalty earning, the customer timeline, RFM, segments), at a lower CPU priority
  (``--worker-nice``, default 19): during the burst the requests get the CPUs, the queue fills and drains
  when they leave CPU time — the drain is timed and checked separately;
- the buyers: ``--procs`` processes with ``--clients`` threads in all, each thread its own database
  connection (Siyu's services in-process, as a web worker runs them), taking buyers from their queue.

One purchase: ``checkout`` (flash reservation + order, one transaction), ``order_prepay`` (JSAPI prepay from
the simulated WeChat Pay over HTTP, signed), the consumer pays in the simulator (HTTP) and the simulator
delivers the signed, encrypted payment notification to Siyu's notify view on gunicorn, which marks the order
paid; the buyer's answer comes back when the notification was answered. Rate = paid orders ÷ wall time from
the first checkout to the last buyer answered (the sold-out tail included). The queued loyalty and timeline
work is drained after that and timed separately.

Baseline, same run, same server, same number of threads each with its own connection: a one-row table with
the same number of units and the single conditional ``UPDATE … SET stock = stock - 1 WHERE id = 1 AND
stock > 0`` (autocommit, one statement = one transaction) until it updates nothing — the most decrements
per second one hot row allows here. Ratio = paid orders/s ÷ hot-row updates/s.

``--cpu`` reports the CPU time (user + system from /proc) per paid order of every process taking part —
this process (the simulator), the buyers, gunicorn, the Huey consumer and the PostgreSQL backends of the
bench database — during the purchases and during the drain, and the SQL statements per purchase phase
(checkout, prepay in the buyers; the notification in gunicorn). The measuring costs a little CPU itself:
leave it off for the rate.

Checked at the end (the run fails otherwise): paid orders == committed flash units == initial stock −
stock left == paid payment intents; no reservation still held; every order has its line and its
reservation; one paid order per customer at most; after the queue drained: exactly one points earning and
one growth entry per paid order, one order_paid timeline event per paid order.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc  # noqa: E402
from pg_template import database_prepare, template_save  # noqa: E402
from results_history import subsection_append  # noqa: E402

PG_DB = "siyu_bench_flash"
TITLE = "Flash sale on PostgreSQL (issue 4) — bench/bench_flashsale.py"
ADDRESS = {"name": "张三", "phone": "13800138000", "province": "上海市", "city": "上海市", "district": "徐汇区",
           "detail": "漕溪北路 88 号 1201 室"}


def _crowd(clients: int, items: list, work, on_exit=None) -> tuple[list, float]:
    """Run ``work(item)`` for every item on ``clients`` threads, then ``on_exit()`` in each; (results, wall)."""
    pending: queue.Queue = queue.Queue()
    for item in items:
        pending.put(item)
    results: list = []
    results_lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run():
        mine = []
        try:
            barrier.wait()
            while True:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
                mine.append(work(item))
        except BaseException as error:
            errors.append(error)
        finally:
            if on_exit is not None:
                on_exit()
            with results_lock:
                results.extend(mine)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} client(s) failed, first: {errors[0]!r}")
    return results, wall


def hot_row(database_url: str, clients: int, units: int) -> dict:
    """The single conditional UPDATE on one hot row, ``clients`` connections at once, until the stock is gone."""
    import psycopg

    dsn = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS bench_hot_row")
        setup.execute("CREATE TABLE bench_hot_row (id integer PRIMARY KEY, stock integer NOT NULL)")
        setup.execute("INSERT INTO bench_hot_row VALUES (1, %s)", (units,))
    connections = [psycopg.connect(dsn, autocommit=True) for _ in range(clients)]
    handed = queue.Queue()
    for connection in connections:
        handed.put(connection)
    local = threading.local()

    def decrement_until_empty(_):
        if not hasattr(local, "connection"):
            local.connection = handed.get_nowait()
        done = 0
        while True:
            row = local.connection.execute(
                "UPDATE bench_hot_row SET stock = stock - 1 WHERE id = 1 AND stock > 0 RETURNING stock").fetchone()
            if row is None:
                return done
            done += 1

    counts, wall = _crowd(clients, list(range(clients)), decrement_until_empty)
    for connection in connections:
        connection.close()
    with psycopg.connect(dsn, autocommit=True) as check:
        left = check.execute("SELECT stock FROM bench_hot_row WHERE id = 1").fetchone()[0]
        check.execute("DROP TABLE bench_hot_row")
    if left != 0 or sum(counts) != units:
        raise SystemExit(f"hot row: {sum(counts)} decrements, {left} left of {units}")
    return {"units": units, "wall_s": wall, "per_s": units / wall}


class CpuMeter:
    """CPU time (user + system, from /proc via psutil) of the processes taking part, by role, between
    ``start()`` and ``stop()``: this process (simulator threads), the buyers, gunicorn (master + workers),
    the Huey consumer, and the PostgreSQL backends connected to the bench database (sampled twice a second
    from pg_stat_activity, so a backend that exits between samples loses at most its last half second)."""

    def __init__(self, dsn: str, database: str):
        self.dsn, self.database = dsn, database
        self.roles: dict[str, list[int]] = {}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.backends: set[int] = set()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @staticmethod
    def _cpu(pid: int) -> float | None:
        import psutil

        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.Error, OSError):
            return None
        return times.user + times.system

    def watch(self, role: str, pid: int, children: bool = False) -> None:
        import psutil

        pids = [pid]
        if children:
            with contextlib.suppress(psutil.Error):
                pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
        for one in pids:
            if one not in self.roles.setdefault(role, []):
                self.roles[role].append(one)
                self._sample(one)

    def _sample(self, pid: int) -> None:
        value = self._cpu(pid)
        if value is not None:
            self.first.setdefault(pid, value)
            self.last[pid] = value

    def start(self) -> None:
        import psycopg

        self.connection = psycopg.connect(self.dsn, autocommit=True)
        self._backends(initial=True)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _backends(self, initial: bool = False) -> None:
        own = self.connection.info.backend_pid
        rows = self.connection.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                                       (self.database, own)).fetchall()
        for (pid,) in rows:
            if pid not in self.backends:
                self.backends.add(pid)
                if not initial:
                    self.first[pid] = 0.0  # a new backend: all its CPU is this run's
            self._sample(pid)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            self._backends()
            for pids in self.roles.values():
                for pid in pids:
                    self._sample(pid)

    def stop(self) -> dict[str, float]:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        self._backends()
        for pids in self.roles.values():
            for pid in pids:
                self._sample(pid)
        self.connection.close()
        used = {role: sum(self.last.get(pid, 0.0) - self.first.get(pid, 0.0) for pid in pids)
                for role, pids in self.roles.items()}
        used["PostgreSQL backends"] = sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.backends
                                          if pid in self.last)
        return used


def _thread_cpu(thread: threading.Thread | None) -> float:
    import psutil

    if thread is None:
        return 0.0
    for one in psutil.Process().threads():
        if one.id == thread.native_id:
            return one.user_time + one.system_time
    return 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _post_json(url: str, payload: dict) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        conn.request("POST", parts.path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def statements_counted(tally: threading.local) -> None:
    """Count every SQL statement this process sends, per thread (``tally.n``)."""
    from django.db.backends import utils

    def counted(method):
        def wrapper(self, sql, *args, **kwargs):
            tally.n = getattr(tally, "n", 0) + 1
            return method(self, sql, *args, **kwargs)
        return wrapper

    utils.CursorWrapper.execute = counted(utils.CursorWrapper.execute)
    utils.CursorWrapper.executemany = counted(utils.CursorWrapper.executemany)


def buyer_process(index: int, env: dict, workspace_id: int, sale_id: int, buyers: list, threads: int, sim_url: str,
                  barrier, results, profile: str) -> None:
    """One buyers' process: ``threads`` threads (one database connection each) buy for ``buyers``."""
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connections

    tally = threading.local()
    statements: Counter = Counter()  # phase -> statements, over all purchases of this process (with --cpu)
    if os.environ.get("SIYU_BENCH_STATEMENTS_DIR"):
        statements_counted(tally)
    statements_lock = threading.Lock()

    def counted(phase: str, started: int) -> None:
        with statements_lock:
            statements[phase] += getattr(tally, "n", 0) - started

    from siyu.commerce.orders import services
    from siyu.core.errors import SiyuError
    from siyu.core.models import Workspace
    from siyu.customers.models import Customer
    from tests.wechat.test_pay_support import APPID

    workspace = Workspace.objects.get(pk=workspace_id)
    customers = Customer.objects.in_bulk([customer_id for customer_id, _, _ in buyers])
    connections.close_all()
    pending: queue.Queue = queue.Queue()
    for customer_id, user_key, openid in buyers:
        pending.put((customers[customer_id], user_key, openid))

    def buy(customer, user_key, openid) -> str:
        started = getattr(tally, "n", 0)
        try:
            order = services.checkout(workspace=workspace, customer=customer, lines=[(sku_id, 1)],
                                      address=ADDRESS, flash_sale_id=sale_id)
        except SiyuError as error:
            counted("checkout refused (sold out)", started)
            return error.code
        counted("checkout", started)
        started = getattr(tally, "n", 0)
        params = services.order_prepay(order=order, openid=openid, appid=APPID)
        counted("prepay", started)
        status, answer = _post_json(f"{sim_url}/_sim/pay/pay", {"user": user_key, "prepay_id": params["prepay_id"]})
        if status != 200:
            return f"pay {status} {answer}"
        return "paid" if answer.get("notifications") == [204] else f"notified {answer.get('notifications')}"

    from siyu.commerce.promotions.models import FlashSale

    sku_id = FlashSale.objects.get(pk=sale_id).sku_id
    connections.close_all()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU time (use --clients 1: one profiler)
        plain = buy

        def buy(*args):
            return profiler.runcall(plain, *args)

    outcomes: list[str] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run() -> None:
        mine = []
        try:
            while True:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
                mine.append(buy(*item))
        except BaseException as error:  # reported, the run then fails
            errors.append(repr(error))
        finally:
            connections.close_all()
            with lock:
                outcomes.extend(mine)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    barrier.wait()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if profiler is not None:
        profiler.dump_stats(f"{profile}.{index}")
    results.put({"outcomes": dict(Counter(outcomes)), "errors": errors, "ended": time.time(),
                 "statements": dict(statements)})


def run(clients: int, stock: int, database: str, procs: int, server_workers: int, server_threads: int,
        profile: str = "", cpu: bool = False, worker_nice: int = 19) -> dict:
    database_url = database_prepare(database)
    data_dir = os.environ.get("SIYU_DATA_DIR") or tempfile.mkdtemp(prefix="siyu-bench-flash-")
    redis_url = os.environ.get("SIYU_REDIS_URL") or os.environ.get("SIYU_TEST_REDIS_URL") or "redis://127.0.0.1:56379/0"
    queue_name = f"siyu-bench-flash-{os.getpid()}"
    os.environ.update(SIYU_DATABASE_URL=database_url, SIYU_DATA_DIR=data_dir, SIYU_REDIS_URL=redis_url,
                      SIYU_QUEUE_NAME=queue_name, DJANGO_SETTINGS_MODULE="siyu.settings")
    os.environ.pop("SIYU_TASKS_IMMEDIATE", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Sum
    from django.utils import timezone
    from huey.contrib.djhuey import HUEY

    from siyu.commerce.orders.models import Order, OrderLine
    from siyu.commerce.promotions.models import FlashReservation, FlashSale
    from siyu.core.services import workspace_create
    from siyu.customers.models import Customer, Event, Identity
    from siyu.loyalty.models import GrowthEntry, PointsTransaction
    from siyu.wechat_sim.server import Simulator
    from tests.commerce.catalog_fixtures import make_product
    from tests.commerce.promotions_fixtures import make_flash_sale
    from tests.wechat.test_pay_support import APPID, connect_merchant

    call_command("migrate", interactive=False, verbosity=0)
    connection.close()
    template_save(database)
    HUEY.flush()
    siyu_port = _free_port()
    siyu_url = f"http://127.0.0.1:{siyu_port}"
    from siyu.wechat_sim import server as sim_server

    # The crowd connects at once: a listen backlog for 500 clients, and the notification's answer awaited as
    # long as the queue in front of gunicorn takes (closed loop; WeChat itself would retry later).
    sim_server._ThreadingServer.request_queue_size = 2048
    sim = Simulator(siyu_url=siyu_url, seed=7)  # notifications go to gunicorn over HTTP
    sim.transport = _notify_over_http
    sim_url = sim.start()
    settings.SIYU_WECHAT_BASE_URL = sim_url
    settings.SIYU_PUBLIC_URL = siyu_url
    workspace = workspace_create(slug="flash", name="秒杀压测")
    connect_merchant(sim, workspace)
    _, skus = make_product(workspace, title="限量款球鞋", stock=0, price_fen=99900)
    sale = make_flash_sale(workspace, skus[0], price_fen=19900, stock=stock, per_customer_limit=1)

    count = stock + clients  # more buyers than units: the run ends with the sold-out tail
    with sim.lock:
        payers = []
        for number in range(count):
            key = f"buyer-{number}"
            payers.append((key, sim.state.openid(sim.state.user(key), APPID)))
    at = timezone.now()
    customers = Customer.objects.bulk_create([Customer(workspace=workspace, first_seen_at=at, last_seen_at=at)
                                              for _ in range(count)], batch_size=2000)
    Identity.objects.bulk_create([Identity(workspace=workspace, customer=customer, kind="openid", namespace=APPID,
                                           value=openid, first_seen_at=at, last_seen_at=at)
                                  for customer, (_, openid) in zip(customers, payers, strict=True)], batch_size=2000)
    buyers = [(customer.pk, key, openid) for customer, (key, openid) in zip(customers, payers, strict=True)]
    connection.close()

    env = {name: value for name, value in os.environ.items()}
    env.update(SIYU_WECHAT_BASE_URL=sim_url, SIYU_PUBLIC_URL=siyu_url)
    statements_dir = tempfile.mkdtemp(prefix="siyu-bench-flash-sql-") if cpu else ""
    if cpu:
        env["SIYU_BENCH_STATEMENTS_DIR"] = statements_dir
    cpu_used: dict[str, float] = {}
    drain_cpu: dict[str, float] = {}
    statements: Counter = Counter()
    server = None
    consumer = None
    try:
        server_env = dict(env)
        # Siyu on gunicorn, on the port the simulator already sends notifications to.
        command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "siyu.wsgi:application", "--bind",
                   f"127.0.0.1:{siyu_port}", "--workers", str(server_workers), "--worker-class", "gthread",
                   "--threads", str(server_threads), "--keep-alive", "30", "--backlog", "2048", "--pythonpath",
                   str(ROOT), "--log-level", "warning", "--timeout", "300"]
        # Hooks: workers warmed before they serve (URLconf, subscribers); statement counts and profiles.
        command += ["--config", str(ROOT / "bench" / "flash_gunicorn_hooks.py")]
        if profile:
            server_env["SIYU_BENCH_PROFILE"] = profile
        server = subprocess.Popen(command, cwd=ROOT, env=server_env, start_new_session=True)
        _wait_http(siyu_port)
        # The background worker at a lower CPU priority than the web server (nice): during the burst the
        # purchases get the CPUs and the queue fills; it drains as soon as they leave CPU time (timed below).
        consumer = subprocess.Popen(["nice", "-n", str(worker_nice), str(ROOT / ".venv" / "bin" / "siyu"),
                                     "run_huey", "--workers", "2", "--worker-type", "thread", "--no-periodic",
                                     "--quiet"], cwd=ROOT, env=env, start_new_session=True)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(procs + 1)
        results = context.Queue()
        shares = [buyers[index::procs] for index in range(procs)]
        threads = [clients // procs + (1 if index < clients % procs else 0) for index in range(procs)]
        processes = [context.Process(target=buyer_process, args=(index, env, workspace.pk, sale.pk, shares[index],
                                                                 threads[index], sim_url, barrier, results, profile))
                     for index in range(procs)]
        for process in processes:
            process.start()
        _wait_settled([server.pid, consumer.pid])  # workers and consumer started up, as a running deployment's
        meter = CpuMeter(database_url.replace("postgres://", "postgresql://", 1), database) if cpu else None
        if meter is not None:
            meter.watch("gunicorn (master + workers)", server.pid, children=True)
            meter.watch("Huey consumer", consumer.pid, children=True)
            meter.watch("bench process (simulator)", os.getpid())
            meter.start()
        barrier.wait(timeout=600)
        started = time.time()
        if meter is not None:
            for process in processes:
                meter.watch("buyer processes", process.pid)
        reports = [results.get(timeout=3600) for _ in processes]
        if meter is not None:
            cpu_used = meter.stop()
            # the meter's own sampling ran in this process: not the simulator's work
            cpu_used["bench process (simulator)"] -= _thread_cpu(meter.thread)
            for report in reports:
                statements.update(report["statements"])
            time.sleep(1.5)  # gunicorn's workers write their counts every second
            for name in os.listdir(statements_dir):
                with open(os.path.join(statements_dir, name)) as handle:
                    statements["notification (gunicorn)"] += json.load(handle)["statements"]
            drain_meter = CpuMeter(meter.dsn, database)
            drain_meter.watch("Huey consumer", consumer.pid, children=True)
            drain_meter.start()
        for process in processes:
            process.join()
        wall = max(report["ended"] for report in reports) - started
        errors = [error for report in reports for error in report["errors"]]
        if errors:
            raise SystemExit(f"{len(errors)} client(s) failed, first: {errors[0]}")
        tally = Counter()
        for report in reports:
            tally.update(report["outcomes"])

        sale = FlashSale.objects.get(pk=sale.pk)
        paid_orders = Order.objects.filter(payment_status="paid", order_status="confirmed").count()
        from siyu.wechat.pay.models import PaymentIntent

        committed = FlashReservation.objects.filter(state="committed").aggregate(n=Sum("quantity"))["n"] or 0
        checks = {
            "paid orders == units sold (committed)": paid_orders == committed,
            "units sold == initial stock - stock left": committed == stock - sale.stock_left,
            "paid outcomes == paid orders": tally["paid"] == paid_orders,
            "paid payment intents == paid orders": PaymentIntent.objects.filter(status="paid").count() == paid_orders,
            "no reservation held": not FlashReservation.objects.filter(state="held").exists(),
            "every order has its line": OrderLine.objects.count() == Order.objects.count(),
            "every order has its reservation": FlashReservation.objects.count() == Order.objects.count(),
            "no unpaid order left": Order.objects.count() == paid_orders,
            "one paid order per customer at most":
                Order.objects.values("customer_id").distinct().count() == paid_orders,
            "only paid or sold out": set(tally) <= {"paid", "flash_sold_out"},
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise SystemExit(f"oversell/consistency check failed: {failed}; outcomes {dict(tally)}; "
                             f"stock left {sale.stock_left}")
        # The queued work (loyalty earning, timeline) drains in the background worker: wait, then check it.
        drain_started = time.time()
        while True:
            earned = PointsTransaction.objects.filter(workspace=workspace, kind="earn").count()
            growth = GrowthEntry.objects.filter(workspace=workspace, source="order_paid").count()
            timeline = Event.objects.filter(workspace=workspace, type="order_paid").count()
            if (earned, growth, timeline) == (paid_orders,) * 3 and HUEY.pending_count() == 0:
                break
            if time.time() - drain_started > 1800 or (earned > paid_orders or growth > paid_orders):
                raise SystemExit(f"queued work: {earned} earnings, {growth} growth entries, {timeline} timeline "
                                 f"events for {paid_orders} paid orders ({HUEY.pending_count()} tasks pending)")
            time.sleep(1)
        drain_s = time.time() - drain_started
        if cpu:
            drain_cpu = drain_meter.stop()
        if PointsTransaction.objects.filter(workspace=workspace, kind="earn").values("ref").distinct().count() \
                != paid_orders:
            raise SystemExit("an order earned points twice")
        connection.close()
    finally:
        for process in (consumer, server):
            if process is not None:
                _stop(process)
        sim.stop()
        HUEY.flush()
    system_load = load()
    baseline = hot_row(database_url, clients, stock)
    return {"clients": clients, "procs": procs, "stock": stock, "buyers": count, "paid": paid_orders,
            "sold_out": tally["flash_sold_out"], "stock_left": sale.stock_left, "wall_s": wall,
            "per_s": paid_orders / wall, "baseline_per_s": baseline["per_s"], "baseline_wall_s": baseline["wall_s"],
            "ratio": (paid_orders / wall) / baseline["per_s"], "load": system_load, "drain_s": drain_s,
            "server": f"{server_workers}×{server_threads}", "cpu": cpu_used, "drain_cpu": drain_cpu,
            "statements": dict(statements)}


def _notify_over_http(method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        conn.request(method, parts.path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def _wait_settled(pids: list[int], limit: float = 300) -> None:
    """Wait until these processes (and their children) have finished starting: under 50 ms of CPU in a second."""
    import psutil

    def used() -> float:
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(pid)
                for one in [parent, *parent.children(recursive=True)]:
                    times = one.cpu_times()
                    total += times.user + times.system
        return total

    deadline = time.time() + limit
    before = used()
    while time.time() < deadline:
        time.sleep(1)
        now = used()
        if now - before < 0.05:
            return
        before = now


def _wait_http(port: int) -> None:
    deadline = time.time() + 600  # gunicorn's workers import Django: minutes on the busy shared machine
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer within 600 s")


def cpu_report(result: dict) -> str:
    paid = result["paid"] or 1
    refused = result["sold_out"] or 1
    lines = [f"CPU per paid order during the purchases (ms, user+system; {result['paid']} paid, "
             f"{result['sold_out']} refused sold out, wall {result['wall_s']:.1f} s):"]
    total = 0.0
    for role, seconds in sorted(result["cpu"].items()):
        total += seconds
        lines.append(f"  {role:<32} {seconds * 1000 / paid:8.1f} ms   ({seconds:.1f} s)")
    lines.append(f"  {'all processes':<32} {total * 1000 / paid:8.1f} ms   ({total:.1f} s; "
                 f"{total / result['wall_s']:.2f} CPUs busy)")
    if result["drain_cpu"]:
        drained = sum(result["drain_cpu"].values())
        lines.append(f"queued work drained after ({result['drain_s']:.1f} s): "
                     + ", ".join(f"{role} {seconds * 1000 / paid:.1f} ms" for role, seconds in
                                 sorted(result["drain_cpu"].items()))
                     + f" per paid order ({drained * 1000 / paid:.1f} ms)")
    lines.append("SQL statements per purchase (BEGIN/COMMIT not counted):")
    for phase, count in sorted(result["statements"].items()):
        per = refused if phase.startswith("checkout refused") else paid
        lines.append(f"  {phase:<32} {count / per:6.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="concurrent buyers (threads, one connection each)")
    parser.add_argument("--stock", type=int, default=3000, help="flash-sale units (and hot-row units)")
    parser.add_argument("--procs", type=int, default=4, help="buyer processes the clients are spread over")
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn worker processes (notifications)")
    parser.add_argument("--server-threads", type=int, default=16, help="threads per gunicorn worker")
    parser.add_argument("--database", default=PG_DB, help="PostgreSQL database to (re)create")
    parser.add_argument("--profile", default="", help="write a cProfile of each buyer process to <path>.<n> "
                        "(checkout + prepay) and of each gunicorn worker's requests to <path>.gunicorn-<pid>")
    parser.add_argument("--worker-nice", type=int, default=19, help="nice value of the Huey consumer (background "
                        "work yields the CPUs to the requests; 0 = same priority)")
    parser.add_argument("--cpu", action="store_true", help="report CPU ms per paid order of every process taking "
                        "part (incl. the PostgreSQL backends) and SQL statements per purchase phase")
    parser.add_argument("--write-results", action="store_true", help="add this run to RESULTS.md (dated)")
    args = parser.parse_args()
    if args.clients < 1 or args.stock < args.clients or not 1 <= args.procs <= args.clients:
        parser.error("--clients must be at least 1, --stock at least --clients, --procs 1..clients")
    result = run(args.clients, args.stock, args.database, args.procs, args.server_workers, args.server_threads,
                 args.profile, args.cpu, args.worker_nice)
    table = ("| clients (processes) | units | paid orders/s (checkout + prepay + pay + notification) | hot-row "
             "UPDATE/s | ratio | paid | sold out | stock left | wall | queued loyalty + timeline drained after |\n"
             "|---|---|---|---|---|---|---|---|---|---|\n"
             f"| {result['clients']} ({result['procs']}) | {result['stock']:,} | {result['per_s']:.1f} /s | "
             f"{result['baseline_per_s']:.0f} /s | {result['ratio']:.3f} | {result['paid']:,} | "
             f"{result['sold_out']:,} | {result['stock_left']} | {result['wall_s']:.1f} s (hot row "
             f"{result['baseline_wall_s']:.2f} s) | {result['drain_s']:.1f} s |")
    print(table)
    print(f"ratio paid orders/s ÷ hot-row UPDATE/s = {result['ratio']:.3f} (goal ≥ 0.3); zero oversell checked; "
          f"{result['load']}")
    if args.cpu:
        print(cpu_report(result))
    if args.write_results:
        command = (f"`.venv/bin/python bench/bench_flashsale.py --clients {args.clients} --stock {args.stock} "
                   f"--procs {args.procs} --server-workers {args.server_workers} --server-threads "
                   f"{args.server_threads} --worker-nice {args.worker_nice} --database {args.database}"
                   f"{' --cpu' if args.cpu else ''} --write-results`")
        body = (f"Command: {command}\nMachine: {machine()}. Load at the end of the purchases: {result['load']} "
                f"(shared machine).\n\n{table}\n\n"
                f"{result['buyers']:,} buyers (units + clients) split over {result['procs']} buyer processes with "
                f"{result['clients']} threads in all, each with its own PostgreSQL connection. One purchase = "
                "checkout (flash hold + order, the hot row's conditional UPDATE last, one transaction) + JSAPI "
                "prepay from the simulated WeChat Pay over HTTP + the simulated payment (HTTP) + the signed, "
                f"encrypted notification delivered over HTTP to Siyu on gunicorn ({result['server']} gthread), "
                "which marks the order paid; loyalty earning and the customer timeline are queued (Redis, one "
                f"Huey consumer with 2 threads at nice {args.worker_nice} running during the run) and were "
                "drained and checked after it "
                "(exactly one earning and growth entry per paid order). Baseline = the single conditional "
                "`UPDATE … SET stock = stock - 1 WHERE id = 1 AND stock > 0` (autocommit) on a one-row table with "
                "the same units, same number of threads each with its own connection (one process), same server, "
                "right after. Checked: paid orders == committed flash units == initial stock − stock left == paid "
                "payment intents, no held reservation, no order without its line and reservation, no unpaid "
                "order, one order per customer.")
        if args.cpu:
            body += "\n\n```\n" + cpu_report(result) + "\n```"
        subsection_append(TITLE, f"{now_utc()} — {result['clients']} clients, {result['procs']} buyer processes",
                          body)


if __name__ == "__main__":
    main()
