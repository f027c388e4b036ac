"""公众号 callback throughput on the safe-mode (AES) path, and where the time goes: crypto vs database.

    ./run bench callbacks                                  # both engines, 2,000 callbacks each
    .venv/bin/python bench/bench_callbacks.py --engine both --callbacks 2000 [--write-results]
    .venv/bin/python bench/bench_callbacks.py --engine sqlite --callbacks 500

Each engine runs in its own process on a fresh database (PostgreSQL: ``siyu_bench_callbacks``, dropped and
created on the server of SIYU_TEST_PG_URL; SQLite: a WAL file in a temporary directory). One safe-mode
公众号 is registered (``app_save``, secrets encrypted at rest) with a welcome reply and keyword rules.
Callbacks are built beforehand the way WeChat builds them (the simulator's own crypto: signature,
msg_signature, AES-256-CBC envelope, fresh nonce and timestamp each) and sent through the whole Django
stack in-process (``django.test.Client``: middleware, URL routing, the view, the transaction): half are
``subscribe`` events of new followers (a new customer, identity and event each), half text messages of
those followers matching a keyword rule; every one is answered with an encrypted passive reply.

Measured, per callback: wall time (callbacks/s); time inside the WeChat message crypto Siyu runs
(``check_signature``, ``WeChatCrypto.decrypt_message`` = msg_signature + AES decrypt, and
``WeChatCrypto.encrypt_message`` for the reply), inside the decryption of the account's secrets at rest
(AES-GCM, once per request), inside SQL (``connection.execute_wrapper``: time in the database driver),
and, for information, inside the ORM compilers' ``execute_sql`` (SQL compilation + driver).
The baseline, in the same run and process: the same number of POSTs of the same bodies to a trivial view
(reads the body, answers ``success``) mounted next to Siyu's URLs, through the same middleware stack.
The ratio printed is callbacks/s divided by baseline requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import load, machine, now_utc, results_section_write  # noqa: E402

PG_DB = "siyu_bench_callbacks"
TITLE = "公众号 callbacks, safe mode (issue 3) — bench/bench_callbacks.py"
APPID = "wxbench0000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN = "benchtoken"


def database_prepare(engine: str, name: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='siyu-bench-callbacks-')}/bench.sqlite3"
    import psycopg

    base = os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")
    with psycopg.connect(base.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


class Timer:
    """Accumulated seconds spent inside wrapped callables (re-entrant calls counted once)."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, function):
        def timed(*args, **kwargs):
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
                self._depth -= 1

        return timed


def build_callbacks(count: int, *, prefix: str = "oBench") -> list[tuple[str, bytes]]:
    """(path with query, body) of ``count`` safe-mode callbacks, as WeChat would send them now."""
    from siyu.wechat_sim import crypto

    now = int(time.time())
    callbacks = []
    followers = max(1, count // 2)
    for index in range(count):
        openid = f"{prefix}{index % followers:08d}xxxxxxxxxxxxxx"
        if index < followers:
            fields = ("<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey>", "event")
        else:
            fields = (f"<Content><![CDATA[请问有优惠吗 {index}]]></Content><MsgId>{10**15 + index}</MsgId>", "text")
        xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
               f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[{fields[1]}]]></MsgType>{fields[0]}</xml>")
        body, query = crypto.safe_envelope(TOKEN, AES_KEY, APPID, xml)
        query = {"openid": openid, **query}
        callbacks.append((f"/wx/official/{APPID}/callback?{urlencode(query)}", body.encode()))
    return callbacks


def run_engine(engine: str, count: int, database: str) -> dict:
    os.environ["SIYU_DATABASE_URL"] = database_prepare(engine, database)
    os.environ.setdefault("SIYU_DATA_DIR", tempfile.mkdtemp(prefix="siyu-bench-data-"))
    os.environ["SIYU_TASKS_IMMEDIATE"] = "1"
    os.environ["SIYU_WECHAT_BASE_URL"] = "http://127.0.0.1:9"  # simulator mode: nothing may leave the machine
    os.environ["DJANGO_SETTINGS_MODULE"] = "siyu.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.http import HttpResponse
    from django.test import Client
    from django.urls import clear_url_caches, include, path
    from django.views.decorators.csrf import csrf_exempt
    from wechatpy import crypto as wechat_crypto

    import siyu.wechat.callbacks as callbacks_module
    import siyu.wechat.models as wechat_models
    from siyu.core.services import workspace_create
    from siyu.customers.models import Customer, Event
    from siyu.wechat.credentials import app_save
    from siyu.wechat.official.services import official_settings, rule_save, settings_update

    call_command("migrate", interactive=False, verbosity=0)
    workspace = workspace_create(slug="bench", name="回调压测")
    app = app_save(workspace=workspace, kind="official", appid=APPID, name="压测服务号",
                   secrets={"app_secret": "benchsecret0001", "token": TOKEN, "encoding_aes_key": AES_KEY,
                            "message_mode": "safe"})
    row = official_settings(app=app)
    settings_update(app=app, actor=None, account_type=row.account_type, unionid_access=False,
                    welcome_reply="欢迎关注！回复「优惠」查看本周活动。", default_reply="收到，稍后回复你。")
    for keyword, reply in (("优惠", "本周会员日全场 8 折"), ("价格", "价格以商城为准"), ("客服", "顾问 9-22 点在线")):
        rule_save(app=app, actor=None, keyword=keyword, match="contains", reply_text=reply)

    @csrf_exempt
    def trivial(request, appid):
        request.body  # noqa: B018 - read it, as the callback view does
        return HttpResponse("success", content_type="text/plain; charset=utf-8")

    urls = types.ModuleType("bench_callbacks_urls")
    urls.urlpatterns = [path("bench/<str:appid>/trivial", trivial), path("", include("siyu.urls"))]
    sys.modules[urls.__name__] = urls
    settings.ROOT_URLCONF = urls.__name__
    clear_url_caches()

    crypto_timer, secrets_timer, sql_timer, orm_timer = Timer(), Timer(), Timer(), Timer()
    from django.db.models.sql import compiler as sql_compiler

    for name in ("SQLCompiler", "SQLInsertCompiler", "SQLUpdateCompiler", "SQLDeleteCompiler", "SQLAggregateCompiler"):
        klass = getattr(sql_compiler, name)
        if "execute_sql" in vars(klass):
            klass.execute_sql = orm_timer.wrap(klass.execute_sql)
    callbacks_module.check_signature = crypto_timer.wrap(callbacks_module.check_signature)
    wechat_crypto.WeChatCrypto.decrypt_message = crypto_timer.wrap(wechat_crypto.WeChatCrypto.decrypt_message)
    wechat_crypto.WeChatCrypto.encrypt_message = crypto_timer.wrap(wechat_crypto.WeChatCrypto.encrypt_message)
    wechat_models.decrypt_text = secrets_timer.wrap(wechat_models.decrypt_text)
    queries = [0]

    def sql(execute, sql_text, params, many, context):
        queries[0] += 1
        started = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            sql_timer.seconds += time.perf_counter() - started

    client = Client()
    warmup = build_callbacks(20, prefix="oWarm0")
    for url, body in warmup:  # first-request costs (imports, caches) are not what we measure
        client.post(url, data=body, content_type="text/xml")
        client.post(f"/bench/{APPID}/trivial", data=body, content_type="text/xml")

    callbacks = build_callbacks(count)
    customers_before, events_before = Customer.objects.count(), Event.objects.count()
    latencies = []
    with connection.execute_wrapper(sql):
        started = time.perf_counter()
        for url, body in callbacks:
            began = time.perf_counter()
            response = client.post(url, data=body, content_type="text/xml")
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200 or b"<Encrypt>" not in response.content:
                raise SystemExit(f"unexpected answer {response.status_code}: {response.content[:300]!r}")
        wall = time.perf_counter() - started
    handled = {"crypto": crypto_timer.seconds, "secrets": secrets_timer.seconds, "sql": sql_timer.seconds,
               "orm": orm_timer.seconds, "queries": queries[0]}
    new_customers = Customer.objects.count() - customers_before
    new_events = Event.objects.count() - events_before

    baseline_started = time.perf_counter()
    for _url, body in callbacks:
        response = client.post(f"/bench/{APPID}/trivial", data=body, content_type="text/xml")
        assert response.status_code == 200
    baseline = time.perf_counter() - baseline_started

    return {
        "engine": engine, "callbacks": count, "wall_s": wall, "per_s": count / wall,
        "baseline_per_s": count / baseline, "ratio": (count / wall) / (count / baseline),
        "crypto_share": handled["crypto"] / wall, "secrets_share": handled["secrets"] / wall,
        "sql_share": handled["sql"] / wall, "orm_share": handled["orm"] / wall,
        "queries_per_callback": handled["queries"] / count,
        "crypto_us": handled["crypto"] / count * 1e6, "sql_ms": handled["sql"] / count * 1e3,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1e3,
        "new_customers": new_customers, "new_events": new_events, "load": load(),
        "database": connection.vendor,
    }


def row(result: dict) -> str:
    other = 1 - result["crypto_share"] - result["secrets_share"] - result["sql_share"]
    return (f"| {result['engine']} | {result['callbacks']:,} | {result['per_s']:.0f} /s | "
            f"{result['baseline_per_s']:.0f} /s | {result['ratio']:.2f} | {result['p50_ms']:.1f} / {result['p95_ms']:.1f} ms | "
            f"{result['crypto_share']:.1%} ({result['crypto_us']:.0f} µs) | {result['secrets_share']:.1%} | "
            f"{result['sql_share']:.1%} ({result['sql_ms']:.2f} ms, {result['queries_per_callback']:.1f} queries) | "
            f"{result['orm_share']:.1%} | {other:.1%} |")


HEADER = ("| engine | callbacks | callbacks/s | baseline (trivial view) | ratio | p50 / p95 | WeChat crypto | "
          "secrets at rest | SQL (driver) | ORM execute (SQL compile + driver) | rest (not crypto, not SQL) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--callbacks", type=int, default=2000)
    parser.add_argument("--database", default=PG_DB, help="PostgreSQL database to (re)create")
    parser.add_argument("--json", action="store_true", help="print one JSON result (used by --engine both)")
    parser.add_argument("--write-results", action="store_true", help="write this run's section of RESULTS.md")
    args = parser.parse_args()
    if args.callbacks < 20:
        parser.error("--callbacks must be at least 20")
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    if len(engines) == 1:
        result = run_engine(engines[0], args.callbacks, args.database)
        results = [result]
        if args.json:
            print(json.dumps(result))
            return
    else:
        results = []
        for engine in engines:  # one process per engine: Django is set up once per process
            output = subprocess.run([sys.executable, __file__, "--engine", engine, "--callbacks", str(args.callbacks),
                                     "--database", args.database, "--json"], check=True, capture_output=True,
                                    text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
    print(HEADER)
    for result in results:
        print(row(result))
        print(f"  ({result['engine']}: {result['new_customers']:,} new customers, {result['new_events']:,} events; "
              f"{result['load']})")
    if args.write_results:
        command = f"`.venv/bin/python bench/bench_callbacks.py --engine {args.engine} --callbacks {args.callbacks} " \
                  f"--write-results`"
        loads = "; ".join(f"{result['engine']}: {result['load']}" for result in results)
        body = (f"Command: {command} (or `./run bench callbacks`)\nMachine: {machine()}. Date: {now_utc()}. "
                f"Load during the runs: {loads}.\n\n" + HEADER + "\n" + "\n".join(row(r) for r in results) + "\n\n"
                "In-process through the whole Django stack (test Client: middleware, routing, view, transaction); "
                "half subscribe events of new followers (customer + identity + event), half keyword-matching text "
                "messages; every callback answered with an encrypted reply. WeChat crypto = check_signature + "
                "WeChatCrypto.decrypt_message (msg_signature, AES-CBC) + encrypt_message (reply); secrets at rest = "
                "AES-GCM decryption of the account's secrets (once per request); SQL = time inside the database "
                "driver (execute_wrapper); ORM execute = time inside the ORM compilers' execute_sql (SQL "
                "compilation + driver; raw-SQL statements of the identity resolver are in SQL only), informative: "
                "the ORM building ~20 queries per callback is most of the rest. Baseline = the same bodies POSTed to a trivial view through the same "
                "stack; ratio = callbacks/s ÷ baseline requests/s.")
        results_section_write(TITLE, body)


if __name__ == "__main__":
    main()
