"""gunicorn hooks for bench_flashsale.py: workers warmed before they serve (as a server that has been running
is); with ``$SIYU_BENCH_STATEMENTS_DIR`` each worker counts the SQL statements it sends and writes the count
to ``gunicorn-<pid>.json`` there every second and when it exits; with ``$SIYU_BENCH_PROFILE`` it profiles
every request (CPU time of the request's thread)."""

from __future__ import annotations

import json
import os
import threading
import time


def _write(directory: str, count: list[int]) -> None:
    path = os.path.join(directory, f"gunicorn-{os.getpid()}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump({"pid": os.getpid(), "statements": count[0]}, handle)
    os.replace(path + ".tmp", path)


def post_worker_init(worker) -> None:
    """Warm the worker as a long-running server is (URLconf imported, domain-event subscribers discovered)
    before the first notification; with $SIYU_BENCH_STATEMENTS_DIR set, count its SQL statements."""
    from django.urls import get_resolver

    from siyu.core import domain_events

    get_resolver().reverse_dict  # noqa: B018 - imports every view module and builds the reverse table once
    domain_events._discover_subscribers()
    directory = os.environ.get("SIYU_BENCH_STATEMENTS_DIR")
    if not directory:
        return
    from django.db.backends import utils

    count = [0]
    lock = threading.Lock()

    def counted(method):
        def wrapper(self, sql, *args, **kwargs):
            with lock:
                count[0] += 1
            return method(self, sql, *args, **kwargs)
        return wrapper

    utils.CursorWrapper.execute = counted(utils.CursorWrapper.execute)
    utils.CursorWrapper.executemany = counted(utils.CursorWrapper.executemany)
    worker._siyu_statements = count

    def flush() -> None:
        while True:
            time.sleep(1)
            _write(directory, count)

    threading.Thread(target=flush, daemon=True).start()


def worker_exit(server, worker) -> None:
    directory = os.environ.get("SIYU_BENCH_STATEMENTS_DIR")
    count = getattr(worker, "_siyu_statements", None)
    if directory and count is not None:
        _write(directory, count)


def post_fork(server, worker) -> None:
    """With $SIYU_BENCH_PROFILE set, every request this worker serves is profiled (cProfile per request,
    merged) and the stats written to ``$SIYU_BENCH_PROFILE.gunicorn-<pid>`` every second."""
    target = os.environ.get("SIYU_BENCH_PROFILE")
    if not target:
        return
    import cProfile
    import pstats

    merged: list = [None]
    lock = threading.Lock()
    original = worker.load_wsgi

    def load_wsgi() -> None:
        original()
        app = worker.wsgi

        def profiled(environ, start_response):
            profiler = cProfile.Profile(time.thread_time)  # CPU of this request's thread
            try:
                return profiler.runcall(lambda: list(app(environ, start_response)))
            finally:
                with lock:
                    if merged[0] is None:
                        merged[0] = pstats.Stats(profiler)
                    else:
                        merged[0].add(profiler)

        worker.wsgi = profiled

    worker.load_wsgi = load_wsgi

    def dump() -> None:
        while True:
            time.sleep(1)
            with lock:
                if merged[0] is not None:
                    merged[0].dump_stats(f"{target}.gunicorn-{os.getpid()}")

    threading.Thread(target=dump, daemon=True).start()
