"""Segment writes: create, update, archive, and the set-based refresh that publishes entries and exits.

Journeys react to ``SEGMENT_ENTERED`` / ``SEGMENT_EXITED`` (payload: workspace_id, segment_id,
customer_ids), delivered on commit in chunks of ``EVENT_CHUNK`` customers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.domain_events import publish
from siyu.core.errors import SiyuError, not_found
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.engagement.segments.compiler import segment_queryset
from siyu.engagement.segments.conditions import definition_fields, definition_validate
from siyu.engagement.segments.models import Segment, SegmentMember

SEGMENT_ENTERED = "engagement.segment_entered"  # workspace_id: int, segment_id: int, customer_ids: list[int]
SEGMENT_EXITED = "engagement.segment_exited"  # workspace_id: int, segment_id: int, customer_ids: list[int]
EVENT_CHUNK = 1000
NAME_MAX = 64
MAX_REFRESH_MINUTES = 7 * 24 * 60

# Which leaf fields a kind of change can affect (segments_mark_stale): a batch of events only matters to
# segments that look at events or at last_seen_at; a merge moves identities, tags and scores alike.
EVENT_FIELDS = frozenset({"event", "last_seen_at", "first_seen_at", "attribute", "gender", "city", "first_channel"})
ORDER_FIELDS = frozenset({"event", "points", "tier", "rfm5", "rfm6", "lifecycle", "recency_days", "frequency",
                          "monetary_fen"})
TAG_FIELDS = frozenset({"tag"})
ALL_FIELDS = None


def _clean(*, name: Any, description: Any, refresh_minutes: Any) -> tuple[str, str, int]:
    if not isinstance(name, str) or not name.strip():
        raise SiyuError("segment_name_required", "请填写分群名称", "A segment name is required")
    name = name.strip()
    if len(name) > NAME_MAX:
        raise SiyuError("segment_name_too_long", f"名称最多 {NAME_MAX} 个字", f"At most {NAME_MAX} characters")
    description = (description or "").strip() if isinstance(description, str) else ""
    if len(description) > 255:
        raise SiyuError("segment_description_too_long", "说明最多 255 个字", "The description has at most 255 characters")
    if not (isinstance(refresh_minutes, int) and not isinstance(refresh_minutes, bool)
            and 0 <= refresh_minutes <= MAX_REFRESH_MINUTES):
        raise SiyuError("segment_bad_refresh", f"自动刷新间隔必须是 0–{MAX_REFRESH_MINUTES} 分钟",
                        f"The refresh interval must be 0 to {MAX_REFRESH_MINUTES} minutes")
    return name, description, refresh_minutes


def _name_taken(workspace: Workspace, name: str, exclude: int | None = None) -> None:
    rows = Segment.objects.filter(workspace=workspace, name=name)
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    if rows.exists():
        raise SiyuError("segment_name_taken", "已有同名分群", "A segment with this name already exists", status=409)


@transaction.atomic
def segment_create(*, workspace: Workspace, actor: Any, name: Any, definition: Any, description: Any = "",
                   refresh_minutes: Any = 60) -> Segment:
    name, description, refresh_minutes = _clean(name=name, description=description, refresh_minutes=refresh_minutes)
    definition_validate(definition)
    _name_taken(workspace, name)
    segment = Segment.objects.create(workspace=workspace, name=name, description=description, definition=definition,
                                     refresh_minutes=refresh_minutes, stale_since=timezone.now(),
                                     created_by=actor if getattr(actor, "is_authenticated", False) else None)
    audit_record(workspace=workspace, actor=actor, action="segment.create", target_type="segment",
                 target_id=segment.pk, name=name, definition=definition)
    _refresh_soon(segment)
    return segment


@transaction.atomic
def segment_update(*, segment: Segment, actor: Any, name: Any = None, definition: Any = None,
                   description: Any = None, refresh_minutes: Any = None) -> Segment:
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if segment.archived:
        raise SiyuError("segment_archived", "分群已归档，不能修改", "The segment is archived", status=409)
    name, description, refresh_minutes = _clean(
        name=segment.name if name is None else name,
        description=segment.description if description is None else description,
        refresh_minutes=segment.refresh_minutes if refresh_minutes is None else refresh_minutes)
    if definition is not None:
        definition_validate(definition)
    _name_taken(segment.workspace, name, exclude=segment.pk)
    changed = definition is not None and definition != segment.definition
    segment.name, segment.description, segment.refresh_minutes = name, description, refresh_minutes
    if definition is not None:
        segment.definition = definition
    if changed:
        segment.stale_since = segment.stale_since or timezone.now()
    segment.save()
    audit_record(workspace=segment.workspace, actor=actor, action="segment.update", target_type="segment",
                 target_id=segment.pk, name=name, definition=segment.definition, definition_changed=changed)
    if changed:
        _refresh_soon(segment)
    return segment


@transaction.atomic
def segment_archive(*, segment: Segment, actor: Any) -> Segment:
    """Stop refreshing a segment; its members stay as they were (no exit events: nobody left it)."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if not segment.archived:
        segment.archived = True
        segment.stale_since = None
        segment.save(update_fields=["archived", "stale_since", "updated_at"])
        audit_record(workspace=segment.workspace, actor=actor, action="segment.archive", target_type="segment",
                     target_id=segment.pk)
    return segment


# One segment query reads millions of event rows once: PostgreSQL's JIT compiles it for seconds (9 of 28 s
# in bench/RESULTS.md) and 4 MB of work_mem spills its hashes of identities to disk. Both only for this query.
QUERY_SETTINGS_POSTGRESQL = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")


def segment_query_settings() -> None:
    """Tune the current transaction for one big segment query (PostgreSQL only; call inside atomic)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for statement in QUERY_SETTINGS_POSTGRESQL:
                cursor.execute(statement)


def segment_count(*, workspace: Workspace | int, definition: Any, now: datetime | None = None,
                  timeout_ms: int | None = None) -> int:
    """How many live customers match ``definition`` right now (validated; not stored).

    ``timeout_ms`` (PostgreSQL): give up after that long with ``segment_count_timeout`` (503) — the live
    count in the builder must not pile up minute-long queries while someone types.
    """
    queryset = segment_queryset(workspace=workspace, definition=definition, now=now or timezone.now())
    try:
        with transaction.atomic():
            segment_query_settings()
            if timeout_ms and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            return queryset.count()
    except OperationalError as error:
        if "statement timeout" not in str(error):
            raise
        raise SiyuError("segment_count_timeout", "人数计算超时：请保存分群后在详情页刷新查看人数",
                        "Counting took too long: save the segment and refresh it to see its size",
                        status=503) from error


def _db_value(field_name: str, value: Any) -> Any:
    return SegmentMember._meta.get_field(field_name).get_db_prep_value(value, connection)


def segment_refresh(*, segment: Segment | int, now: datetime | None = None) -> dict[str, int]:
    """Bring ``SegmentMember`` in line with the definition at ``now``: one INSERT … SELECT for those who
    entered, one DELETE for those who left, both in SQL, and publish the two sets on commit.

    Refreshes of one segment are serialised by a row lock. Archived segments are left alone.
    """
    now = now or timezone.now()
    segment_id = segment if isinstance(segment, int) else segment.pk
    with transaction.atomic():
        segment = Segment.objects.select_for_update().filter(pk=segment_id).first()
        if segment is None:
            raise not_found("分群", "Segment")
        if segment.archived:
            return {"entered": 0, "exited": 0, "members": segment.member_count}
        definition_validate(segment.definition)
        segment_query_settings()
        matching = segment_queryset(workspace=segment.workspace_id, definition=segment.definition, now=now,
                                    validate=False).order_by().values(member_id=F("pk"))
        sql, params = matching.query.sql_with_params()
        table = connection.ops.quote_name(SegmentMember._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (segment_id, customer_id, entered_at) "
                f"SELECT %s, matching.member_id, %s FROM ({sql}) matching "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} current_member "
                f"WHERE current_member.segment_id = %s AND current_member.customer_id = matching.member_id) "
                f"RETURNING customer_id",
                [segment.pk, _db_value("entered_at", now), *params, segment.pk])
            entered = sorted(row[0] for row in cursor.fetchall())
            cursor.execute(
                f"DELETE FROM {table} WHERE segment_id = %s AND NOT EXISTS "
                f"(SELECT 1 FROM ({sql}) matching WHERE matching.member_id = {table}.customer_id) RETURNING customer_id",
                [segment.pk, *params])
            exited = sorted(row[0] for row in cursor.fetchall())
        members = SegmentMember.objects.filter(segment=segment).count()
        Segment.objects.filter(pk=segment.pk).update(member_count=members, refreshed_at=now)
        _publish_chunks(SEGMENT_ENTERED, segment, entered)
        _publish_chunks(SEGMENT_EXITED, segment, exited)
    return {"entered": len(entered), "exited": len(exited), "members": members}


def _publish_chunks(event_name: str, segment: Segment, customer_ids: list[int]) -> None:
    for start in range(0, len(customer_ids), EVENT_CHUNK):
        publish(event_name, workspace_id=segment.workspace_id, segment_id=segment.pk,
                customer_ids=customer_ids[start:start + EVENT_CHUNK])


def segments_mark_stale(*, workspace_id: int, fields: Iterable[str] | None) -> list[int]:
    """Mark the workspace's live segments that use any of ``fields`` (None: all) as stale.

    Returns the ids newly marked: a segment already waiting for its refresh is not marked again, which
    is what debounces a burst of event batches into one refresh.
    """
    wanted = None if fields is None else set(fields)
    ids = [segment.pk for segment in Segment.objects.filter(workspace_id=workspace_id, archived=False,
                                                               stale_since__isnull=True).only("pk", "definition")
           if wanted is None or definition_fields(segment.definition) & wanted]
    if not ids:
        return []
    now = timezone.now()
    marked = []
    for segment_id in ids:  # one UPDATE each: the "was not stale yet" check must hold per row
        if Segment.objects.filter(pk=segment_id, stale_since__isnull=True).update(stale_since=now):
            marked.append(segment_id)
    return marked


def segments_refresh_stale(*, workspace_id: int | None = None, now: datetime | None = None) -> dict[int, dict]:
    """Refresh every stale segment (of one workspace, or all). The mark is cleared before the refresh, so
    changes arriving during it mark the segment again."""
    rows = Segment.objects.filter(archived=False, stale_since__isnull=False)
    if workspace_id is not None:
        rows = rows.filter(workspace_id=workspace_id)
    results = {}
    for segment_id in list(rows.values_list("pk", flat=True)):
        Segment.objects.filter(pk=segment_id).update(stale_since=None)
        results[segment_id] = segment_refresh(segment=segment_id, now=now)
    return results


def segments_refresh_due(*, now: datetime | None = None) -> list[int]:
    """Refresh the segments whose ``refresh_minutes`` have passed since their last refresh."""
    now = now or timezone.now()
    due = []
    for segment_id, minutes, refreshed_at in Segment.objects.filter(archived=False, refresh_minutes__gt=0).values_list(
            "pk", "refresh_minutes", "refreshed_at"):
        if refreshed_at is None or (now - refreshed_at).total_seconds() >= minutes * 60:
            segment_refresh(segment=segment_id, now=now)
            due.append(segment_id)
    return due


def _refresh_soon(segment: Segment) -> None:
    from siyu.engagement.segments.tasks import segments_refresh_stale_task

    workspace_id = segment.workspace_id
    transaction.on_commit(lambda: segments_refresh_stale_task(workspace_id))
