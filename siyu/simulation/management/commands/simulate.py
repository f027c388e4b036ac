"""``siyu simulate``: generate a simulated brand into a workspace (see siyu.simulation.generator)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.simulation.services import simulation_run


class Command(BaseCommand):
    help = "生成模拟品牌数据 / Generate a simulated brand (BG/NBD purchases, seed 003 channel matrix)"
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="workspace slug (created if missing)")
        parser.add_argument("--customers", type=int, default=5000)
        parser.add_argument("--months", type=int, default=6)
        parser.add_argument("--seed", type=int, default=3)
        parser.add_argument("--truth", type=Path, default=None, help="where to write the true parameters (JSON)")
        parser.add_argument("--end", default=None, help="end of the horizon, YYYY-MM-DD (default: today)")
        parser.add_argument("--chunk-size", type=int, default=50_000)
        parser.add_argument("--events-per-customer", type=float, default=20.0)
        parser.add_argument("--bulk", action=argparse.BooleanOptionalAction, default=None,
                            help="PostgreSQL: load through staging tables and rebuild indexes at the end "
                                 "(default: for runs of 200,000+ customers into a new workspace)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        workspace, _ = Workspace.objects.get_or_create(slug=options["workspace"],
                                                       defaults={"name": options["workspace"]})
        end = None
        if options["end"]:
            try:
                end = timezone.make_aware(datetime.strptime(options["end"], "%Y-%m-%d"))
            except ValueError as exc:
                raise CommandError("--end 须为 YYYY-MM-DD / --end must be YYYY-MM-DD") from exc
        bar = tqdm(total=options["customers"], unit="客户", file=sys.stderr, disable=options["no_progress"],
                   dynamic_ncols=True)
        state = {"done": 0}

        def progress(phase: str, done: int, events: int) -> None:
            bar.set_description(phase)
            bar.set_postfix_str(f"events={events:,}", refresh=False)
            bar.update(done - state["done"])
            state["done"] = done

        try:
            run = simulation_run(workspace=workspace, customers=options["customers"], months=options["months"],
                                 seed=options["seed"], truth_path=options["truth"], end=end,
                                 chunk_size=options["chunk_size"],
                                 events_per_customer=options["events_per_customer"], bulk=options["bulk"],
                                 progress=progress)
        except SiyuError as exc:
            raise CommandError(f"{exc.code}: {exc.message_zh} / {exc.message_en}") from exc
        finally:
            bar.close()
        if run.bulk_report:
            for table, info in run.bulk_report.items():
                self.stdout.write(f"bulk load {table}: {info['rows']:,} rows, insert {info['insert_s']} s, "
                                  f"indexes+constraints {info['indexes_s']} s"
                                  f"{'' if info['rebuilt'] else ' (indexes kept: table already larger)'}")
        self.stdout.write(f"simulated {run.customers_written:,} customers, {run.events_written:,} events "
                          f"into workspace {workspace.slug}; truth: {run.truth_path}")
