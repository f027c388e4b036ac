"""Generate a simulated brand into a workspace, chunk by chunk, and write the true parameters out.

Each chunk (``chunk_size`` customers, 50k by default) is generated with numpy, written in its own
transaction, and then dropped: memory stays bounded whatever the brand's size. A run that fails part way
keeps the chunks already written and is marked failed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from siyu.core.channel_codes import BY_CODE
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import Tag, TagGroup, TagKind
from siyu.simulation.generator import (
    CHANNEL_CODES,
    DAY_US,
    INTEREST_TAGS,
    BrandParameters,
    chunk_count,
    chunk_generate,
)
from siyu.simulation.models import SimulationRun, SimulationStatus
from siyu.simulation.writer import BulkSink, Sink, chunk_write

logger = logging.getLogger(__name__)

LIFECYCLE_TAGS = {"new": "新客", "active": "活跃", "dormant": "沉睡"}
MAX_CUSTOMERS = 50_000_000
#: runs at least this big load through staging tables on PostgreSQL (see ``BulkSink``) when ``bulk`` is None
BULK_MIN_CUSTOMERS = 200_000


def default_end_us() -> int:
    """Midnight (Asia/Shanghai) starting today: the default end of the horizon, so data looks recent."""
    local = timezone.localtime()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp()) * 1_000_000


@transaction.atomic
def simulation_tags_install(*, workspace: Workspace) -> dict[str, int]:
    """Tag groups 渠道 / 兴趣 / 生命周期 with their tags (idempotent); returns ids by key."""
    ids: dict[str, int] = {}
    groups = (("渠道", True, 10), ("兴趣", False, 20), ("生命周期", True, 30))
    group_rows = {}
    for name, exclusive, order in groups:
        group_rows[name], _ = TagGroup.objects.get_or_create(
            workspace=workspace, name=name, defaults={"exclusive": exclusive, "sort_order": order})
    for code in CHANNEL_CODES:
        tag, _ = Tag.objects.get_or_create(workspace=workspace, group=group_rows["渠道"], name=BY_CODE[code].name_zh[:32],
                                           defaults={"kind": TagKind.AUTO})
        ids["channel:" + code] = tag.pk
    for index, name in enumerate(INTEREST_TAGS):
        tag, _ = Tag.objects.get_or_create(workspace=workspace, group=group_rows["兴趣"], name=name,
                                           defaults={"kind": TagKind.MANUAL})
        ids[f"interest:{index}"] = tag.pk
    for key, name in LIFECYCLE_TAGS.items():
        tag, _ = Tag.objects.get_or_create(workspace=workspace, group=group_rows["生命周期"], name=name,
                                           defaults={"kind": TagKind.AUTO})
        ids["lifecycle:" + key] = tag.pk
    return ids


def _validate(*, customers: int, months: int, seed: int) -> None:
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise SiyuError("simulation_invalid_size", f"客户数须在 1 到 {MAX_CUSTOMERS} 之间",
                        f"customers must be between 1 and {MAX_CUSTOMERS}")
    if not 1 <= months <= 36:
        raise SiyuError("simulation_invalid_months", "月数须在 1 到 36 之间", "months must be between 1 and 36")
    if not 0 <= seed < 2**63:
        raise SiyuError("simulation_invalid_seed", "随机种子须为非负整数", "seed must be a non-negative integer")


def _bulk_salvage(sink: BulkSink, *, done: int, events: int, report) -> None:
    """After a failure in bulk mode: keep the chunks already staged (as a normal run keeps its chunks)."""
    try:
        if not sink.finished:
            sink.finish(phase=lambda name: report(name, done, events))
    except Exception:  # the original error is the one to raise
        logger.exception("simulation: moving the staged chunks into place failed")
    finally:
        with contextlib.suppress(Exception):
            sink.discard()


def simulation_run(*, workspace: Workspace, customers: int, months: int, seed: int,
                   truth_path: Path | None = None, end: datetime | None = None, chunk_size: int = 50_000,
                   events_per_customer: float = 20.0, bulk: bool | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> SimulationRun:
    """Generate ``customers`` customers arriving over ``months`` months into ``workspace``.

    ``progress(phase, customers_done, events_done)`` is called as work advances. The same seed and end
    give identical data. A workspace takes each seed once (identity values and event ids derive from it).

    ``bulk``: on PostgreSQL, load through unindexed staging tables and move everything into place at the end
    in one transaction (``BulkSink``: indexes rebuilt instead of maintained row by row). ``None`` = only for a
    run of at least ``BULK_MIN_CUSTOMERS`` into a workspace that has no customers yet. In bulk mode the rows
    become visible when the run ends; a run that fails part way still moves the chunks already generated
    (an interrupted one drops them).
    """
    _validate(customers=customers, months=months, seed=seed)
    if SimulationRun.objects.filter(workspace=workspace, seed=seed).exists():
        raise SiyuError("simulation_seed_used", "该工作空间已用此随机种子生成过数据",
                        "this workspace already has a simulation with this seed", status=409)
    end_us = int(end.timestamp()) * 1_000_000 if end else default_end_us()
    params = BrandParameters(customers=customers, months=months, seed=seed, end_us=end_us,
                             chunk_size=chunk_size, events_per_customer=events_per_customer)
    truth_path = Path(truth_path or settings.DATA_DIR / "simulations" / f"{workspace.slug}-{seed}.json")
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path = truth_path.with_suffix(".customers.csv")
    run = SimulationRun.objects.create(workspace=workspace, seed=seed, customers=customers, months=months,
                                       parameters=params.as_dict(), truth_path=str(truth_path))
    tag_ids = simulation_tags_install(workspace=workspace)
    if bulk is None:
        bulk = customers >= BULK_MIN_CUSTOMERS and not workspace.customers.exists()
    sink = BulkSink(tag=f"r{run.pk}") if bulk and connection.vendor == "postgresql" else Sink()
    report = progress or (lambda phase, done, events: None)
    events = 0
    done = 0
    summary = {"alive": 0, "purchases": 0, "lam_alive_sum": 0.0, "by_channel": dict.fromkeys(CHANNEL_CODES, 0)}
    try:
        with csv_path.open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["customer_id", "index", "channel", "first_seen_at", "observed_days", "lam_per_day",
                          "p_dropout", "nu", "alive", "purchases"])
            for index in range(chunk_count(params)):
                report("生成 generate", done, events)
                chunk = chunk_generate(params, index)
                with transaction.atomic():
                    ids = chunk_write(sink=sink, chunk=chunk, workspace_id=workspace.pk, seed=seed, end_us=end_us,
                                      tag_ids=tag_ids,
                                      phase=lambda name, d=done, e=events: report(name, d, e))
                observed = (end_us - chunk.first_us) / DAY_US
                first_iso = np.datetime_as_string(chunk.first_us.astype("datetime64[us]"), unit="s").tolist()
                out.writerows(zip(ids, range(chunk.offset, chunk.offset + chunk.n),
                                  [CHANNEL_CODES[c] for c in chunk.channel.tolist()], first_iso,
                                  np.round(observed, 4).tolist(), chunk.lam.tolist(), chunk.p.tolist(),
                                  chunk.nu.tolist(), chunk.alive.astype(int).tolist(), chunk.purchases.tolist(),
                                  strict=True))
                done += chunk.n
                events += chunk.events
                summary["alive"] += int(chunk.alive.sum())
                summary["purchases"] += int(chunk.purchases.sum())
                summary["lam_alive_sum"] += float(chunk.lam[chunk.alive].sum())
                for code, count in zip(CHANNEL_CODES, np.bincount(chunk.channel, minlength=len(CHANNEL_CODES)),
                                       strict=True):
                    summary["by_channel"][code] += int(count)
                SimulationRun.objects.filter(pk=run.pk).update(customers_written=done, events_written=events)
                report("完成分块 chunk done", done, events)
        if isinstance(sink, BulkSink):
            sink.finish(phase=lambda name: report(name, done, events))
    except BaseException as exc:
        if isinstance(sink, BulkSink) and isinstance(exc, Exception):
            _bulk_salvage(sink, done=done, events=events, report=report)
        elif isinstance(sink, BulkSink):
            sink.discard()
        SimulationRun.objects.filter(pk=run.pk).update(status=SimulationStatus.FAILED, error=repr(exc)[:2000],
                                                       finished_at=timezone.now())
        raise
    truth = {
        "workspace": workspace.slug,
        "seed": seed,
        "model": "BG/NBD purchases (time unit: day) + Gamma-Gamma spend (fen)",
        "parameters": {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b,
                       "gamma_gamma": {"p": params.gg_p, "q": params.gg_q, "gamma": params.gg_gamma}},
        "generator": params.as_dict(),
        "summary": {"customers": done, "events": events, "alive": summary["alive"],
                    "purchases": summary["purchases"], "arrivals_by_channel": summary["by_channel"]},
        "customers_csv": str(csv_path),
        "customers_csv_columns": "customer_id (database id), index, channel, first_seen_at (UTC), observed_days "
                                 "(T), lam_per_day (λ), p_dropout (p), nu (Gamma-Gamma ν), alive, purchases (x)",
    }
    truth_path.write_text(json.dumps(truth, ensure_ascii=False, indent=2))
    SimulationRun.objects.filter(pk=run.pk).update(status=SimulationStatus.DONE, finished_at=timezone.now())
    run.refresh_from_db()
    run.bulk_report = sink.report if isinstance(sink, BulkSink) else None  # for the command's summary
    return run
