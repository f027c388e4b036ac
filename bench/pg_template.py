"""Fresh PostgreSQL databases for the benchmarks, copied from a migrated template when one exists.

Migrating an empty database takes minutes on the shared machine; ``CREATE DATABASE … TEMPLATE`` takes
seconds. ``migrate`` still runs on the copy and applies whatever is newer than the template.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def _base() -> str:
    return os.environ.get("SIYU_TEST_PG_URL", "postgres://siyu@127.0.0.1:55432/siyu")


def _admin():
    import psycopg

    return psycopg.connect(_base().replace("postgres://", "postgresql://", 1), autocommit=True)


def database_prepare(name: str) -> str:
    """Drop and create ``name`` (from ``<name>_tpl`` when it exists); its URL."""
    with _admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        has_template = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (f"{name}_tpl",)).fetchone()
        admin.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {name}_tpl" if has_template else ""))
    parts = urlsplit(_base())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def template_save(name: str) -> None:
    """Keep the just-migrated, still empty ``name`` as ``<name>_tpl`` (no connection to it may be open)."""
    with _admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}_tpl")
        admin.execute(f"CREATE DATABASE {name}_tpl TEMPLATE {name}")
