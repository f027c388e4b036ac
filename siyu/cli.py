"""The ``siyu`` command: Django's management commands under the product's name.

    siyu demo        install the demo brand and run everything (console, worker, simulators)
    siyu simulate    generate a simulated brand of any size
    siyu run_huey    run a background worker
    siyu migrate     and every other Django management command
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["siyu", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
