"""Writes for the touchpoint registry."""

from __future__ import annotations

from django.db import transaction

from siyu.channels.models import Channel
from siyu.core.channel_codes import CHANNELS
from siyu.core.models import Workspace


@transaction.atomic
def channels_install_defaults(*, workspace: Workspace, costs_fen: dict[str, int] | None = None,
                              targets: dict[str, int] | None = None) -> list[Channel]:
    """Register every SPEC T1 touchpoint for a workspace (idempotent)."""
    costs_fen, targets = costs_fen or {}, targets or {}
    rows = []
    for code in CHANNELS:
        channel, _ = Channel.objects.update_or_create(
            workspace=workspace, code=code.code,
            defaults={"name": code.name_zh, "category": code.category,
                      "monthly_cost_fen": costs_fen.get(code.code, 0), "monthly_target": targets.get(code.code, 0)},
        )
        rows.append(channel)
    return rows
