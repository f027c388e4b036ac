"""Writes of the RFM area: threshold settings, and the scoring job (full or for a few customers).

The job: (1) one set-based upsert of every customer's inputs (``scoring.scores_compute``), then
(2) classification in batches of customers, each batch in its own transaction holding the workspace's
settings row: moves are written as ``LayerChange`` rows and published as ``engagement.layer_changed`` on
commit — re-running with nothing changed writes and publishes nothing. Progress is kept on the settings row
so the console can show it while the job runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from siyu.core.domain_events import publish
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.engagement.rfm import scoring
from siyu.engagement.rfm.events import LAYER_CHANGED
from siyu.engagement.rfm.models import CustomerScore, RfmSettings, RunState
from siyu.engagement.rfm.presets import KINDS, PRESETS, thresholds_validate

logger = logging.getLogger(__name__)

CLASSIFY_BATCH = 100_000  # customers per classification transaction
STALE_RUN = timedelta(hours=2)  # a "running" job older than this died without saying so


def rfm_settings_of(*, workspace: Workspace | int) -> RfmSettings:
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    row, _ = RfmSettings.objects.get_or_create(workspace_id=workspace_id)
    return row


def thresholds_of(settings_row: RfmSettings) -> dict[str, dict[str, int]]:
    """Every preset's thresholds: the saved ones over the defaults."""
    saved = settings_row.thresholds or {}
    return {kind: {**PRESETS[kind].defaults(), **(saved.get(kind) or {})} for kind in KINDS}


def rfm_thresholds_update(*, workspace: Workspace, kind: str, values: dict, actor=None) -> dict[str, int]:
    """Validate and save one preset's thresholds (audited). Layers follow at the next run."""
    clean = thresholds_validate(kind, values)
    with transaction.atomic():
        row = rfm_settings_of(workspace=workspace)
        row = RfmSettings.objects.select_for_update().get(pk=row.pk)
        before = thresholds_of(row)[kind]
        row.thresholds = {**(row.thresholds or {}), kind: clean}
        row.updated_by = actor if getattr(actor, "is_authenticated", False) else None
        row.updated_at = timezone.now()
        row.save(update_fields=["thresholds", "updated_by", "updated_at"])
        audit_record(workspace=workspace, actor=actor, action="rfm.thresholds_update", target_type="rfm",
                     target_id=kind, before=before, after=clean)
    return clean


def rfm_run_request(*, workspace: Workspace, actor=None) -> RfmSettings:
    """Mark a console "recompute now" as queued (the caller enqueues the task). Refused while one runs."""
    with transaction.atomic():
        row = RfmSettings.objects.select_for_update().get(pk=rfm_settings_of(workspace=workspace).pk)
        fresh = row.run_started_at and timezone.now() - row.run_started_at < STALE_RUN
        if row.run_state in (RunState.QUEUED, RunState.RUNNING) and fresh:
            raise SiyuError("rfm_run_in_progress", "正在重新计算，请稍候", "A recomputation is already running",
                            status=409)
        row.run_state, row.run_phase, row.run_progress, row.run_error = RunState.QUEUED, "queued", 0, ""
        row.run_started_at, row.run_finished_at = timezone.now(), None
        row.save(update_fields=["run_state", "run_phase", "run_progress", "run_error", "run_started_at",
                                "run_finished_at"])
        audit_record(workspace=workspace, actor=actor, action="rfm.recompute", target_type="rfm", target_id="")
    return row


def _progress(row_id: int, **fields) -> None:
    RfmSettings.objects.filter(pk=row_id).update(**fields)


def _classify(*, workspace_id: int, thresholds, now: datetime, customer_ids=None, id_range=None) -> dict[str, int]:
    """One transaction: lock the settings row, record and publish the moves of these customers."""
    counts = dict.fromkeys(KINDS, 0)
    with transaction.atomic():
        RfmSettings.objects.select_for_update().filter(workspace_id=workspace_id).first()
        before = scoring.layers_assign(workspace_id=workspace_id, thresholds=thresholds, now=now,
                                       customer_ids=customer_ids, id_range=id_range)
        for kind, moves in scoring.moves_since(workspace_id=workspace_id, after_id=before):
            counts[kind] += len(moves)
            publish(LAYER_CHANGED, workspace_id=workspace_id, kind=kind, moves=moves)
    return counts


def rfm_recompute(*, workspace: Workspace | int, now: datetime | None = None) -> dict:
    """Score and classify every customer of the workspace; returns counts of moves per kind."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    now = now or timezone.now()
    row = rfm_settings_of(workspace=workspace_id)
    thresholds = thresholds_of(row)
    _progress(row.pk, run_state=RunState.RUNNING, run_phase="scoring", run_progress=1, run_error="",
              run_started_at=timezone.now(), run_finished_at=None)
    try:
        scored = scoring.scores_compute(workspace_id=workspace_id, now=now)
        _progress(row.pk, run_phase="classifying", run_progress=50)
        bounds = CustomerScore.objects.filter(workspace_id=workspace_id).aggregate(low=Min("customer_id"),
                                                                                   high=Max("customer_id"))
        counts = dict.fromkeys(KINDS, 0)
        if bounds["low"] is not None:
            low, high = bounds["low"], bounds["high"]
            # Batches by customer id: ids are dense enough in practice, and an empty batch costs nothing.
            step = CLASSIFY_BATCH
            for start in range(low, high + 1, step):
                batch = _classify(workspace_id=workspace_id, thresholds=thresholds, now=now,
                                  id_range=(start, min(start + step - 1, high)))
                counts = {kind: counts[kind] + batch[kind] for kind in KINDS}
                done = min(start + step, high + 1) - low
                _progress(row.pk, run_progress=50 + int(49 * done / (high - low + 1)))
        summary = {"scored": scored, "moves": counts, "at": now.isoformat()}
        _progress(row.pk, run_state=RunState.DONE, run_phase="done", run_progress=100,
                  run_finished_at=timezone.now(), run_summary=summary)
        return summary
    except Exception as error:
        _progress(row.pk, run_state=RunState.FAILED, run_phase="failed", run_error=str(error)[:200],
                  run_finished_at=timezone.now())
        raise


def rfm_rescore_customers(*, workspace_id: int, customer_ids: Iterable[int], now: datetime | None = None) -> dict:
    """Re-score a few customers (after their orders were paid or refunded): same SQL, same moves."""
    ids = sorted({int(pk) for pk in customer_ids if pk is not None})
    if not ids:
        return dict.fromkeys(KINDS, 0)
    now = now or timezone.now()
    thresholds = thresholds_of(rfm_settings_of(workspace=workspace_id))
    scoring.scores_compute(workspace_id=workspace_id, now=now, customer_ids=ids)
    return _classify(workspace_id=workspace_id, thresholds=thresholds, now=now, customer_ids=ids)
