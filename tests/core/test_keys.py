"""The embedded install's generated secrets: created once, the same for every process that starts at once."""

from __future__ import annotations

import multiprocessing
import stat

from siyu.core.keys import load_or_create_secret


def _load(path: str, barrier, results) -> None:
    import time
    from pathlib import Path

    import siyu.core.keys

    real_token_bytes = siyu.core.keys.secrets.token_bytes

    def slow_token_bytes(nbytes):  # widens the window between "not there yet" and "written"
        time.sleep(0.2)
        return real_token_bytes(nbytes)

    siyu.core.keys.secrets.token_bytes = slow_token_bytes
    barrier.wait()
    results.put(load_or_create_secret(Path(path), nbytes=32))


def test_secret_is_created_once_with_private_mode_and_then_reused(tmp_path):
    path = tmp_path / "keys" / "data_key"

    first = load_or_create_secret(path, nbytes=32)
    again = load_or_create_secret(path, nbytes=32)

    assert first == again == path.read_text()
    assert len(first) == 44  # 32 bytes in urlsafe base64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["data_key"]  # no temporary file left behind


def test_processes_starting_together_all_get_the_one_stored_secret(tmp_path):
    path = tmp_path / "data_key"
    context = multiprocessing.get_context("fork")
    processes_count = 8
    barrier = context.Barrier(processes_count)
    results = context.Queue()
    processes = [context.Process(target=_load, args=(str(path), barrier, results)) for _ in range(processes_count)]
    for process in processes:
        process.start()
    values = [results.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert all(process.exitcode == 0 for process in processes)
    assert set(values) == {path.read_text()}
    assert [p.name for p in tmp_path.iterdir()] == ["data_key"]
