"""Settings for bench/bench_store_latency.py only: Siyu's settings with a URLconf that adds a minimal view."""

from siyu.settings import *  # noqa: F403

ROOT_URLCONF = "store_bench_urls"
