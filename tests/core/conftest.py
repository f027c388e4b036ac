"""Worker tests start real consumer processes, which must see the test database.

An in-memory SQLite test database is invisible to another process, so when tests/core is collected
the SQLite test database becomes a file (unless SIYU_TEST_SQLITE_NAME already names one). This is
read when the test database is created, after collection, so it applies to the whole session.
"""

from __future__ import annotations

import os

from django.conf import settings


def _file_backed_sqlite_test_database() -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    test = database.setdefault("TEST", {})
    if test.get("NAME") and "memory" not in str(test["NAME"]):
        return
    path = settings.DATA_DIR / f"test-siyu-{os.getpid()}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    test["NAME"] = str(path)


_file_backed_sqlite_test_database()


def pytest_unconfigure(config):
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME") or ""
    if f"test-siyu-{os.getpid()}" in str(name):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{name}{suffix}"):
                os.remove(f"{name}{suffix}")
