"""siyu rfm_rollup_rebuild [--workspace demo]: recompute the RFM purchase rollup from the orders table."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from siyu.core.models import Workspace
from siyu.engagement.rfm.rollup import rollup_rebuild


class Command(BaseCommand):
    help = "从订单表重建 RFM 购买汇总 / Rebuild the RFM purchase rollup from the orders table"

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="workspace slug (default: every workspace)")

    def handle(self, *args, workspace: str | None = None, **options):
        workspaces = Workspace.objects.order_by("pk")
        if workspace:
            workspaces = workspaces.filter(slug=workspace)
            if not workspaces.exists():
                raise CommandError(f"工作空间 {workspace} 不存在 / workspace {workspace} not found")
        for found in workspaces:
            started = time.perf_counter()
            written = rollup_rebuild(workspace_id=found.pk)
            self.stdout.write(f"rfm rollup rebuilt: workspace={found.slug} rows_written={written} "
                              f"seconds={time.perf_counter() - started:.1f}")
