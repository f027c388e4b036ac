"""Flash sale under a crowd on PostgreSQL: paid orders per second next to the hot-row limit.

    ./run bench flashsale                                   # 500 clients, 3,000 units
    .venv/bin/python bench/bench_flashsale.py --clients 500 --stock 3000 [--write-results]

A fresh database (``siyu_bench_flash``, dropped and created on the server of SIYU_TEST_PG_URL, migrated) gets
a workspace, a WeChat Pay merchant registered both in Siyu and in the WeChat simulator (started in a thread of
this process, simulator mode: Siyu's Pay client talks to it over HTTP on 127.0.0.1), a product and one flash
sale of ``--stock`` units (limit one per customer), and ``stock + clients`` buyers (customers with the openid
their simulated WeChat user has under the shop's AppID).

Measured: ``--clients`` threads (each its own database connection, closed at the end) take buyers from one
queue; each buyer goes through the whole purchase: ``checkout`` (flash reservation + order, one transaction),
``order_prepay`` (JSAPI prepay from the simulated WeChat Pay over HTTP, signed), the simulated consumer pays
and the simulator delivers the signed, encrypted payment notification to Siyu's notify view (through the
Django stack in-process), which marks the order paid. Rate = paid orders ÷ wall time from the first checkout
to the last buyer answered (the sold-out tail included).

Baseline, same run, same server, same number of threads each with its own connection: a one-row table with
the same number of units and the single conditional ``UPDATE … SET stock = stock - 1 WHERE id = 1 AND
stock > 0`` (autocommit, one statement = one transaction) until it updates nothing — the most decrements
per second one hot row allows here. Ratio = paid orders/s ÷ hot-row updates/s.

Checked at the end (the run fails otherwise): paid orders == committed flash units == initial stock −
stock left == paid payment intents; no reservation still held; every order has its line and its
reservation; one paid order per customer at most.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc, results_section_write  # noqa: E402

PG_DB = "siyu_bench_flash"
TITLE = "Flash sale on PostgreSQL (issue 4) — bench/bench_flashsale.py"
ADDRESS = {"name": "张三", "phone": "13800138000", "province": "上海市", "city": "上海市", "district": "徐汇区",
           "detail": "漕溪北路 88 号 1201 室"}


def database_prepare(name: str) -> str:
    import psycopg

    base = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    with psycopg.connect(base.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


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


def run(clients: int, stock: int, database: str, profile: str = "") -> dict:
    database_url = database_prepare(database)
    os.environ["SIYU_DATABASE_URL"] = database_url
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-flash-"))
    os.environ["SIYU_TASKS_IMMEDIATE"] = "1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "siyu.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, connections
    from django.db.models import Sum
    from django.test import Client
    from django.utils import timezone

    from siyu.commerce.orders import services
    from siyu.commerce.orders.models import Order, OrderLine
    from siyu.commerce.promotions.models import FlashReservation, FlashSale
    from siyu.core.errors import SiyuError
    from siyu.core.services import workspace_create
    from siyu.customers.models import Customer, Identity
    from siyu.wechat_sim import pay as sim_pay
    from siyu.wechat_sim.server import Simulator
    from tests.commerce.catalog_fixtures import make_product
    from tests.commerce.promotions_fixtures import make_flash_sale
    from tests.wechat.test_pay_support import APPID, connect_merchant

    call_command("migrate", interactive=False, verbosity=0)
    sim = Simulator(siyu_url="http://siyu.bench", seed=7)
    settings.SIYU_WECHAT_BASE_URL = sim.start()
    settings.SIYU_PUBLIC_URL = sim.siyu_url
    settings.SIYU_WECHAT_RETRY_DELAYS = (0.01, 0.01)

    def deliver(method, url, body, headers):  # the notification, through Siyu's whole Django stack
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
                 if name.lower() != "content-type"}
        response = Client().generic(method, url.removeprefix(sim.siyu_url), data=body,
                                    content_type="application/json", **extra)
        return response.status_code, response.content

    sim.transport = deliver
    workspace = workspace_create(slug="flash", name="秒杀压测")
    connect_merchant(sim, workspace)
    _, skus = make_product(workspace, title="限量款球鞋", stock=0, price_fen=99900)
    sale = make_flash_sale(workspace, skus[0], price_fen=19900, stock=stock, per_customer_limit=1)

    count = stock + clients  # more buyers than units: the run ends with the sold-out tail
    with sim.lock:
        payers = []
        for number in range(count):
            user = sim.state.user(f"buyer-{number}")
            payers.append((user, sim.state.openid(user, APPID)))
    at = timezone.now()
    customers = Customer.objects.bulk_create([Customer(workspace=workspace, first_seen_at=at, last_seen_at=at)
                                              for _ in range(count)], batch_size=2000)
    Identity.objects.bulk_create([Identity(workspace=workspace, customer=customer, kind="openid", namespace=APPID,
                                           value=openid, first_seen_at=at, last_seen_at=at)
                                  for customer, (_, openid) in zip(customers, payers, strict=True)], batch_size=2000)
    buyers = [(customer, user, openid) for customer, (user, openid) in zip(customers, payers, strict=True)]
    connection.close()

    def buy(buyer) -> str:
        customer, user, openid = buyer
        try:
            order = services.checkout(workspace=workspace, customer=customer, lines=[(sale.sku_id, 1)],
                                      address=ADDRESS, flash_sale_id=sale.pk)
        except SiyuError as error:
            return error.code
        params = services.order_prepay(order=order, openid=openid, appid=APPID)
        result = sim_pay.pay(sim, user, params["prepay_id"])
        return "paid" if result.notifications == [204] else f"notified {result.notifications}"

    profiler = None
    if profile:  # diagnostics only (--clients 1): where one thread's purchases spend their time
        import cProfile

        profiler = cProfile.Profile()

        def buy_profiled(buyer, plain=buy):
            return profiler.runcall(plain, buyer)

        buy = buy_profiled
    # Each thread keeps its own Django connection (thread-local) for its buyers and closes it at the end.
    outcomes, wall = _crowd(clients, buyers, buy, on_exit=connections.close_all)
    if profiler is not None:
        profiler.dump_stats(profile)
    sim.stop()

    from siyu.wechat.pay.models import PaymentIntent

    sale = FlashSale.objects.get(pk=sale.pk)
    tally = Counter(outcomes)
    paid_orders = Order.objects.filter(payment_status="paid", order_status="confirmed").count()
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
        "one paid order per customer at most": Order.objects.values("customer_id").distinct().count() == paid_orders,
        "only paid or sold out": set(tally) <= {"paid", "flash_sold_out"},
    }
    connection.close()
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise SystemExit(f"oversell/consistency check failed: {failed}; outcomes {dict(tally)}; "
                         f"stock left {sale.stock_left}")
    baseline = hot_row(database_url, clients, stock)
    return {"clients": clients, "stock": stock, "buyers": count, "paid": paid_orders, "sold_out": tally["flash_sold_out"],
            "stock_left": sale.stock_left, "wall_s": wall, "per_s": paid_orders / wall,
            "baseline_per_s": baseline["per_s"], "baseline_wall_s": baseline["wall_s"],
            "ratio": (paid_orders / wall) / baseline["per_s"], "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="concurrent buyers (threads, one connection each)")
    parser.add_argument("--stock", type=int, default=3000, help="flash-sale units (and hot-row units)")
    parser.add_argument("--database", default=PG_DB, help="PostgreSQL database to (re)create")
    parser.add_argument("--profile", default="", help="with --clients 1: write a cProfile of the purchases here")
    parser.add_argument("--write-results", action="store_true", help="write this run's section of RESULTS.md")
    args = parser.parse_args()
    if args.clients < 1 or args.stock < args.clients:
        parser.error("--clients must be at least 1 and --stock at least --clients")
    if args.profile and args.clients != 1:
        parser.error("--profile needs --clients 1")
    result = run(args.clients, args.stock, args.database, args.profile)
    table = ("| clients | units | paid orders/s (checkout + prepay + pay + notification) | hot-row UPDATE/s | ratio | "
             "paid | sold out | stock left | wall |\n|---|---|---|---|---|---|---|---|---|\n"
             f"| {result['clients']} | {result['stock']:,} | {result['per_s']:.1f} /s | "
             f"{result['baseline_per_s']:.0f} /s | {result['ratio']:.3f} | {result['paid']:,} | "
             f"{result['sold_out']:,} | {result['stock_left']} | {result['wall_s']:.1f} s (hot row "
             f"{result['baseline_wall_s']:.2f} s) |")
    print(table)
    print(f"ratio paid orders/s ÷ hot-row UPDATE/s = {result['ratio']:.3f} (goal ≥ 0.3); zero oversell checked; "
          f"{result['load']}")
    if args.write_results:
        command = (f"`.venv/bin/python bench/bench_flashsale.py --clients {args.clients} --stock {args.stock} "
                   f"--write-results` (or `./run bench flashsale`)")
        body = (f"Command: {command}\nMachine: {machine()}. Date: {now_utc()}. Load at the end of the run: "
                f"{result['load']} (shared machine).\n\n{table}\n\n"
                f"{result['buyers']:,} buyers (units + clients) taken from one queue by {result['clients']} threads, "
                "each with its own PostgreSQL connection (closed at the end). One purchase = checkout (flash "
                "reservation + order in one transaction) + JSAPI prepay from the simulated WeChat Pay over HTTP "
                "(signed request) + the simulated payment + the signed, encrypted notification delivered to Siyu's "
                "notify view through the Django stack in-process, which marks the order paid. The simulator runs in "
                "a thread of the same process: its work, the RSA signing and the whole Django stack share one "
                "Python process (GIL) with the buyers. Baseline = the single conditional `UPDATE … SET stock = "
                "stock - 1 WHERE id = 1 AND stock > 0` (autocommit) on a one-row table with the same units, same "
                "number of threads each with its own connection, same server, same run. Checked at the end: paid "
                "orders == committed flash units == initial stock − stock left == paid payment intents, no held "
                "reservation, no order without its line and reservation, no unpaid order, one order per customer.")
        results_section_write(TITLE, body)


if __name__ == "__main__":
    main()
