"""Real background workers: a ``siyu run_huey`` process takes a task enqueued here and writes to the database.

The same task code runs on the embedded SQLite-backed queue and on the Redis-backed one. The consumer
is a separate process pointed at this session's test database; the test polls (with a deadline) for
the row the task writes instead of sleeping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from huey import RedisHuey, SqliteHuey
from huey.contrib.djhuey import HUEY

from siyu.customers.models import CustomerTag, Tag, TagGroup
from siyu.customers.tasks import rule_tags_refresh_task
from tests.customers.tag_factories import make_customer

DEADLINE_SECONDS = 60


def worker_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        if "memory" in name:
            pytest.fail("the SQLite test database must be a file (tests/core/conftest.py)")
        return f"sqlite:///{Path(name).resolve()}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


def start_worker(env_overrides: dict[str, str], log_path: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SIYU_REDIS", "SIYU_QUEUE"))}
    env.update(SIYU_DATA_DIR=str(settings.DATA_DIR), SIYU_DATABASE_URL=worker_database_url(), SIYU_TASKS_IMMEDIATE="0")
    env.update(env_overrides)
    siyu = Path(sys.executable).with_name("siyu")
    command = [str(siyu)] if siyu.exists() else [sys.executable, "-m", "siyu.cli"]
    command += ["run_huey", "--workers", "1", "--no-periodic", "--delay", "0.05", "--max-delay", "0.5"]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_for(condition, *, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"worker exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    pytest.fail(f"task not done within {DEADLINE_SECONDS}s:\n{log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def rule_tag_case(transactional_db, workspace, now):
    """A customer matching a rule tag nobody has applied yet (created with the ORM: no task is queued)."""
    group = TagGroup.objects.create(workspace=workspace, name="地域")
    tag = Tag.objects.create(workspace=workspace, group=group, name="上海", kind="rule",
                             rule={"attribute": "city", "equals": "上海"})
    customer, _ = make_customer(workspace, at=now, city="上海")
    return workspace, tag, customer


def run_through_worker(queue, overrides: dict[str, str], case, tmp_path: Path) -> None:
    workspace, tag, customer = case
    log_path = tmp_path / "worker.log"
    process = start_worker(overrides, log_path)
    try:
        task = rule_tags_refresh_task.s(workspace.pk, [customer.pk])
        # Serialised by the application's Huey (which knows the task), stored in the worker's queue.
        queue.storage.enqueue(HUEY.serialize_task(task), task.priority)
        wait_for(lambda: CustomerTag.objects.filter(tag=tag, customer=customer, source="rule").exists(),
                 process=process, log_path=log_path)
    finally:
        stop_worker(process)


def test_sqlite_queue_worker_runs_task(rule_tag_case, tmp_path):
    name = f"siyu-test-{uuid.uuid4().hex[:8]}"
    queue_file = tmp_path / "tasks.sqlite3"
    queue = SqliteHuey(name, filename=str(queue_file))
    run_through_worker(queue, {"SIYU_QUEUE_NAME": name, "SIYU_QUEUE_FILE": str(queue_file)}, rule_tag_case, tmp_path)


@pytest.mark.redis
def test_redis_queue_worker_runs_task(rule_tag_case, tmp_path):
    url = os.environ["SIYU_TEST_REDIS_URL"]
    name = f"siyu-test-{uuid.uuid4().hex[:8]}"
    queue = RedisHuey(name, url=url)
    try:
        run_through_worker(queue, {"SIYU_QUEUE_NAME": name, "SIYU_REDIS_URL": url}, rule_tag_case, tmp_path)
    finally:
        queue.storage.flush_all()
