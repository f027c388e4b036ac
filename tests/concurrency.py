"""Running the same work on several threads at once, for the PostgreSQL race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def run_together(threads: int, work: Callable[[int], object]) -> list[BaseException]:
    """Start ``work(index)`` on ``threads`` threads released together by a barrier; each closes its own
    database connection. Returns the exceptions raised (empty when every call succeeded)."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:  # reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=runner, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return errors
