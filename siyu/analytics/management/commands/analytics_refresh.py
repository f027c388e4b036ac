"""siyu analytics_refresh --workspace demo [--days N]: bring the dashboard rollups up to date now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from siyu.analytics.services import analytics_refresh
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace


class Command(BaseCommand):
    help = "重新计算看板汇总数据 / Recompute the dashboard rollups of a workspace"

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="workspace slug, e.g. demo")
        parser.add_argument("--days", type=int, default=None,
                            help="recompute the last N days plus what changed since the last run "
                                 "(default: the whole history)")

    def handle(self, *args, workspace: str, days: int | None, **options):
        found = Workspace.objects.filter(slug=workspace).first()
        if found is None:
            raise CommandError(f"工作空间 {workspace} 不存在 / workspace {workspace} not found")
        try:
            report = analytics_refresh(workspace=found, days=days)
        except SiyuError as error:
            raise CommandError(f"{error.message_zh} / {error.message_en}") from error
        scope = "全部历史 / whole history" if report.full else f"{report.days_recomputed} 天 / days"
        self.stdout.write(f"analytics refreshed: workspace={found.slug} run={report.run} scope={scope}")
