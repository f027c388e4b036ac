"""Tag groups, tags and customer tags (SPEC O2): manual and bulk tagging, and rule tags kept up to date.

Every write runs in a transaction, checks the workspace and refuses bad input with a ``SiyuError``
before changing anything. Rule tags are maintained only by ``rule_tags_refresh`` (after ingestion, on
rule change and daily for time windows); the rule language itself is ``siyu.customers.tag_rules``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from siyu.core.domain_events import RULE_TAG_CHANGED, publish
from siyu.core.errors import SiyuError, not_found
from siyu.core.models import Workspace
from siyu.core.services import audit_record
from siyu.customers.models import Customer, CustomerStatus, CustomerTag, Event, Tag, TagGroup, TagKind
from siyu.customers.tag_rules import rule_validate, window_start

CHUNK = 5000
NAME_MAX = 32


# --- rules compiled to SQL ------------------------------------------------------------------------

def rule_to_q(rule: dict[str, Any], *, now: datetime) -> Q:
    """A validated rule as a filter on ``Customer`` (one SQL query for any number of customers).

    Events join identities: a customer's events are those of the identities it holds now.
    """
    if "all" in rule:
        combined = Q()
        for child in rule["all"]:
            combined &= rule_to_q(child, now=now)
        return combined
    if "any" in rule:
        children = [rule_to_q(child, now=now) for child in rule["any"]]
        combined = children[0]
        for child in children[1:]:
            combined |= child
        return combined
    if "not" in rule:
        return ~rule_to_q(rule["not"], now=now)
    if "attribute" in rule:
        values = [rule["equals"]] if "equals" in rule else rule["in"]
        return Q(**{f"{rule['attribute']}__in": values})
    events = Event.objects.filter(identity__customer_id=OuterRef("pk"), type=rule["event"])
    start = window_start(rule, now)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    # Aliases keep property names from ever being read as lookups ("in", "contains", ...).
    for index, (key, value) in enumerate(rule.get("where", {}).items()):
        alias = f"_where_{index}"
        events = events.alias(**{alias: KeyTransform(key, "properties")}).filter(**{alias: value})
    min_count = rule.get("min_count", 1)
    if min_count > 1:
        events = (events.order_by().values("identity__customer_id").annotate(matched=Count("id"))
                  .filter(matched__gte=min_count))
    return Q(Exists(events))


def rule_matching_customers(*, workspace: Workspace, rule: dict[str, Any], now: datetime | None = None
                            ) -> QuerySet[Customer]:
    """Live customers of the workspace that match ``rule`` (validated here) at ``now``."""
    rule_validate(rule)
    return Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE).filter(
        rule_to_q(rule, now=now or timezone.now()))


# --- tag groups and tags --------------------------------------------------------------------------

def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SiyuError("tag_name_required", "名称不能为空", "A name is required")
    name = name.strip()
    if len(name) > NAME_MAX:
        raise SiyuError("tag_name_too_long", f"名称最多 {NAME_MAX} 个字符", f"Names have at most {NAME_MAX} characters")
    return name


def _group(workspace: Workspace, group_id: int) -> TagGroup:
    group = TagGroup.objects.filter(workspace=workspace, pk=group_id).first()
    if group is None:
        raise not_found("标签组", "Tag group")
    return group


def _tag(workspace: Workspace, tag_id: int) -> Tag:
    tag = Tag.objects.select_related("group").filter(workspace=workspace, pk=tag_id).first()
    if tag is None:
        raise not_found("标签", "Tag")
    return tag


def _duplicate_name() -> SiyuError:
    return SiyuError("tag_name_taken", "同名的标签或标签组已存在", "A tag or tag group with this name exists", status=409)


@transaction.atomic
def tag_group_create(*, workspace: Workspace, name: str, exclusive: bool = False, sort_order: int = 0,
                     actor: Any = None) -> TagGroup:
    name = _clean_name(name)
    if TagGroup.objects.filter(workspace=workspace, name=name).exists():
        raise _duplicate_name()
    group = TagGroup.objects.create(workspace=workspace, name=name, exclusive=bool(exclusive), sort_order=sort_order)
    audit_record(workspace=workspace, actor=actor, action="tag_group.create", target_type="tag_group",
                 target_id=group.pk, name=name, exclusive=group.exclusive)
    return group


@transaction.atomic
def tag_group_rename(*, workspace: Workspace, group_id: int, name: str, actor: Any = None) -> TagGroup:
    group = _group(workspace, group_id)
    name = _clean_name(name)
    if TagGroup.objects.filter(workspace=workspace, name=name).exclude(pk=group.pk).exists():
        raise _duplicate_name()
    old, group.name = group.name, name
    group.save(update_fields=["name"])
    audit_record(workspace=workspace, actor=actor, action="tag_group.rename", target_type="tag_group",
                 target_id=group.pk, old=old, new=name)
    return group


@transaction.atomic
def tag_group_delete(*, workspace: Workspace, group_id: int, actor: Any = None) -> None:
    """Delete a group with its tags; every customer loses those tags (recorded in the audit log)."""
    group = _group(workspace, group_id)
    removed = CustomerTag.objects.filter(tag__group=group).count()
    audit_record(workspace=workspace, actor=actor, action="tag_group.delete", target_type="tag_group",
                 target_id=group.pk, name=group.name, tags=list(group.tags.values_list("name", flat=True)),
                 customer_tags_removed=removed)
    group.delete()


@transaction.atomic
def tag_create(*, workspace: Workspace, group_id: int, name: str, kind: str = TagKind.MANUAL,
               rule: dict[str, Any] | None = None, color: str = "", actor: Any = None) -> Tag:
    group = _group(workspace, group_id)
    name = _clean_name(name)
    if kind not in TagKind.values:
        raise SiyuError("tag_kind_invalid", "未知的标签类型", "Unknown tag kind")
    if kind == TagKind.RULE:
        if rule is None:
            raise SiyuError("tag_rule_required", "规则标签需要规则", "A rule tag needs a rule")
        rule_validate(rule)
        _refuse_rule_in_exclusive(group)
    elif rule is not None:
        raise SiyuError("tag_rule_unexpected", "只有规则标签可以设置规则", "Only rule tags have a rule")
    if not isinstance(color, str) or len(color) > 16:
        raise SiyuError("tag_color_invalid", "颜色无效", "Invalid colour")
    if Tag.objects.filter(workspace=workspace, group=group, name=name).exists():
        raise _duplicate_name()
    tag = Tag.objects.create(workspace=workspace, group=group, name=name, kind=kind, rule=rule, color=color)
    audit_record(workspace=workspace, actor=actor, action="tag.create", target_type="tag", target_id=tag.pk,
                 name=name, kind=kind, rule=rule)
    if kind == TagKind.RULE:
        publish(RULE_TAG_CHANGED, workspace_id=workspace.pk, tag_id=tag.pk)
    return tag


def _refuse_rule_in_exclusive(group: TagGroup) -> None:
    # Two rules could match one customer; a single-choice group could not hold both answers.
    if group.exclusive:
        raise SiyuError("rule_tag_in_exclusive_group", "单选标签组不能包含规则标签",
                        "A single-choice tag group cannot hold rule tags")


@transaction.atomic
def tag_update_rule(*, workspace: Workspace, tag_id: int, rule: dict[str, Any], actor: Any = None) -> Tag:
    tag = _tag(workspace, tag_id)
    if tag.kind != TagKind.RULE:
        raise SiyuError("tag_not_rule", "只有规则标签可以设置规则", "Only rule tags have a rule")
    rule_validate(rule)
    old, tag.rule = tag.rule, rule
    tag.save(update_fields=["rule"])
    audit_record(workspace=workspace, actor=actor, action="tag.update_rule", target_type="tag", target_id=tag.pk,
                 old=old, new=rule)
    publish(RULE_TAG_CHANGED, workspace_id=workspace.pk, tag_id=tag.pk)
    return tag


@transaction.atomic
def tag_delete(*, workspace: Workspace, tag_id: int, actor: Any = None) -> None:
    tag = _tag(workspace, tag_id)
    removed = CustomerTag.objects.filter(tag=tag).count()
    audit_record(workspace=workspace, actor=actor, action="tag.delete", target_type="tag", target_id=tag.pk,
                 name=tag.name, kind=tag.kind, customer_tags_removed=removed)
    tag.delete()


# --- tagging customers ----------------------------------------------------------------------------

def _refuse_manual_on_rule(tag: Tag) -> None:
    if tag.kind == TagKind.RULE:
        raise SiyuError("tag_is_rule", "规则标签由规则自动维护，不能手动增减",
                        "Rule tags follow their rule and cannot be added or removed by hand")


def _live_customer(workspace: Workspace, customer_id: int, *, lock: bool = False) -> Customer:
    queryset = Customer.objects.filter(workspace=workspace, pk=customer_id)
    customer = (queryset.select_for_update() if lock else queryset).first()
    if customer is None:
        raise not_found("客户", "Customer")
    if not customer.is_live:
        raise SiyuError("customer_merged", "该客户已合并到其他客户，请在合并后的客户上操作",
                        "This customer was merged into another one; tag the merged customer instead",
                        status=409, details={"merged_into": customer.merged_into_id})
    return customer


@transaction.atomic
def customer_tag_add(*, workspace: Workspace, customer_id: int, tag_id: int, actor: Any = None,
                     source: str = "manual") -> bool:
    """Tag one customer; in a single-choice group the customer's other tag of the group is removed.

    Returns False when the customer already had the tag.
    """
    tag = _tag(workspace, tag_id)
    _refuse_manual_on_rule(tag)
    customer = _live_customer(workspace, customer_id, lock=True)
    if tag.group.exclusive:
        CustomerTag.objects.filter(customer=customer, tag__group_id=tag.group_id).exclude(tag=tag).delete()
    if CustomerTag.objects.filter(customer=customer, tag=tag).exists():
        return False
    try:
        with transaction.atomic():
            CustomerTag.objects.create(workspace=workspace, customer=customer, tag=tag, source=source,
                                       added_by=actor if getattr(actor, "is_authenticated", False) else None)
    except IntegrityError:  # tagged concurrently
        return False
    publish("customers.tags_changed", workspace_id=workspace.pk, tag_id=tag.pk, added=[customer.pk], removed=[])
    return True


@transaction.atomic
def customer_tag_remove(*, workspace: Workspace, customer_id: int, tag_id: int, actor: Any = None) -> bool:
    tag = _tag(workspace, tag_id)
    _refuse_manual_on_rule(tag)
    customer = _live_customer(workspace, customer_id)
    deleted, _ = CustomerTag.objects.filter(customer=customer, tag=tag).delete()
    if deleted:
        publish("customers.tags_changed", workspace_id=workspace.pk, tag_id=tag.pk, added=[], removed=[customer.pk])
    return deleted > 0


def _chunks(ids: Sequence[int], size: int = CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _clean_ids(customer_ids: Any) -> list[int]:
    if isinstance(customer_ids, str | bytes) or not isinstance(customer_ids, Iterable):
        raise SiyuError("customer_ids_invalid", "customer_ids 必须是整数列表", "customer_ids must be a list of integers")
    ids = list(customer_ids)
    if not all(isinstance(pk, int) and not isinstance(pk, bool) for pk in ids):
        raise SiyuError("customer_ids_invalid", "customer_ids 必须是整数列表", "customer_ids must be a list of integers")
    return sorted(set(ids))


def _require_live(workspace: Workspace, ids: list[int]) -> None:
    """Refuse the whole bulk operation (changing nothing) if any id is not a live customer here."""
    bad: list[int] = []
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute(
                "SELECT v.id FROM unnest(%s::bigint[]) AS v(id) LEFT JOIN customers_customer AS c "
                "ON c.id = v.id AND c.workspace_id = %s AND c.status = %s WHERE c.id IS NULL ORDER BY v.id",
                [ids, workspace.pk, CustomerStatus.ACTIVE])
            bad = [row[0] for row in cursor.fetchall()]
    else:
        for chunk in _chunks(ids):
            live = set(Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE, pk__in=chunk)
                       .values_list("pk", flat=True))
            bad.extend(pk for pk in chunk if pk not in live)
    if bad:
        raise SiyuError("customers_not_taggable", f"{len(bad)} 个客户不存在或已合并，未做任何修改",
                        f"{len(bad)} customers do not exist or were merged; nothing was changed",
                        status=409, details={"count": len(bad), "customer_ids": bad[:20]})


def _pg_cursor():
    """A psycopg cursor with server-side binding on Django's connection: a list travels as one binary array."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _bulk_write(*, pg_sql: str, pg_params: list, sqlite_sql: str, sqlite_rows: Iterable[Sequence]) -> int:
    """Run one set-based statement on PostgreSQL (the ids bound as one array parameter), or the same
    statement once per id with ``executemany`` on SQLite (one prepared statement, chunked). Returns rows changed."""
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute(pg_sql, pg_params)
            return max(cursor.rowcount, 0)
    rows = list(sqlite_rows)
    changed = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            cursor.executemany(sqlite_sql, rows[start:start + CHUNK])
            changed += max(cursor.rowcount, 0)
    return changed


def _tag_in(workspace: Workspace, tag: Tag) -> Tag:
    if not isinstance(tag, Tag) or tag.workspace_id != workspace.pk:
        raise not_found("标签", "Tag")
    return _tag(workspace, tag.pk)


def _insert_customer_tags(*, workspace: Workspace, tag: Tag, customers: QuerySet[Customer], source: str,
                          added_by_id: int | None) -> int:
    """INSERT … SELECT the customers' ids, skipping those already tagged; returns how many rows were added.

    Set-based on purpose: building 100k model instances costs far more than the insert itself.
    """
    select_sql, select_params = customers.order_by().values(chosen_id=F("pk")).query.sql_with_params()
    table = connection.ops.quote_name(CustomerTag._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(CustomerTag._meta.get_field(name).column)
                        for name in ("workspace", "customer", "tag", "source", "added_by", "added_at"))
    # "WHERE 1 = 1" keeps SQLite from reading ON CONFLICT as a join constraint.
    sql = (f"INSERT INTO {table} ({columns}) SELECT %s, chosen.chosen_id, %s, %s, %s, %s FROM ({select_sql}) AS chosen"
           " WHERE 1 = 1 ON CONFLICT DO NOTHING")
    added_at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace.pk, tag.pk, source, added_by_id, added_at, *select_params])
        return max(cursor.rowcount, 0)


@transaction.atomic
def tags_bulk_add(*, workspace: Workspace, tag: Tag, customer_ids: Iterable[int], actor: Any = None,
                  source: str = "bulk") -> int:
    """Tag many customers at once (a filtered list of 100k is fine); returns how many were newly tagged.

    Set-based: PostgreSQL gets the ids as one array parameter, joined as ``unnest(%s::bigint[])`` (a
    hash or index join; ``= ANY(%s)`` made PostgreSQL search the 100k-element array linearly for every
    tagged row: 38 s to untag 100k), SQLite one prepared statement executed per id (``executemany``); no
    model instance is built per customer."""
    tag = _tag_in(workspace, tag)
    _refuse_manual_on_rule(tag)
    ids = _clean_ids(customer_ids)
    _require_live(workspace, ids)
    added_by = actor if getattr(actor, "is_authenticated", False) else None
    added_by_id = added_by.pk if added_by else None
    displaced = 0
    if tag.group.exclusive:
        displaced = _bulk_write(
            pg_sql="DELETE FROM customers_customertag AS ct USING customers_tag AS t, unnest(%s::bigint[]) AS v(id) "
                   "WHERE ct.customer_id = v.id AND t.id = ct.tag_id AND t.group_id = %s AND ct.tag_id <> %s",
            pg_params=[ids, tag.group_id, tag.pk],
            sqlite_sql="DELETE FROM customers_customertag WHERE customer_id = %s AND tag_id <> %s "
                       "AND tag_id IN (SELECT id FROM customers_tag WHERE group_id = %s)",
            sqlite_rows=((pk, tag.pk, tag.group_id) for pk in ids))
    now = timezone.now()
    added_at = connection.ops.adapt_datetimefield_value(now)
    added = _bulk_write(
        pg_sql="INSERT INTO customers_customertag (workspace_id, customer_id, tag_id, source, added_by_id, added_at) "
               "SELECT %s, c.id, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS v(id) JOIN customers_customer AS c "
               "ON c.id = v.id WHERE c.workspace_id = %s AND c.status = %s ORDER BY c.id ON CONFLICT DO NOTHING",
        pg_params=[workspace.pk, tag.pk, source, added_by_id, now, ids, workspace.pk, CustomerStatus.ACTIVE],
        # SQLite: the transaction began IMMEDIATE (settings), so no writer can merge a customer between the
        # _require_live check above and this insert: the ids are inserted as they are.
        sqlite_sql="INSERT INTO customers_customertag (workspace_id, customer_id, tag_id, source, added_by_id, "
                   "added_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        sqlite_rows=((workspace.pk, pk, tag.pk, source, added_by_id, added_at) for pk in ids))
    audit_record(workspace=workspace, actor=actor, action="tag.bulk_add", target_type="tag", target_id=tag.pk,
                 requested=len(ids), added=added, displaced_in_group=displaced)
    return added


@transaction.atomic
def tags_bulk_remove(*, workspace: Workspace, tag: Tag, customer_ids: Iterable[int], actor: Any = None) -> int:
    """Untag many customers at once; returns how many lost the tag."""
    tag = _tag_in(workspace, tag)
    _refuse_manual_on_rule(tag)
    ids = _clean_ids(customer_ids)
    _require_live(workspace, ids)
    removed = _bulk_write(
        pg_sql="DELETE FROM customers_customertag AS ct USING unnest(%s::bigint[]) AS v(id) "
               "WHERE ct.customer_id = v.id AND ct.tag_id = %s",
        pg_params=[ids, tag.pk],
        sqlite_sql="DELETE FROM customers_customertag WHERE tag_id = %s AND customer_id = %s",
        sqlite_rows=((tag.pk, pk) for pk in ids))
    audit_record(workspace=workspace, actor=actor, action="tag.bulk_remove", target_type="tag", target_id=tag.pk,
                 requested=len(ids), removed=removed)
    return removed


# --- rule tags ------------------------------------------------------------------------------------

def rule_tags_refresh(*, workspace: Workspace, customer_ids: Iterable[int] | None = None,
                      tag_ids: Iterable[int] | None = None, now: datetime | None = None) -> dict[str, int]:
    """Bring rule tags in line with their rules: tag live customers that match, untag those that no longer do.

    ``customer_ids=None`` re-evaluates every customer (after a rule change, and daily for time windows);
    otherwise only the given customers (after their events were ingested). One transaction per tag, so a
    long refresh never holds one huge lock.
    """
    now = now or timezone.now()
    tags = Tag.objects.filter(workspace=workspace, kind=TagKind.RULE, rule__isnull=False).order_by("pk")
    if tag_ids is not None:
        tags = tags.filter(pk__in=list(tag_ids))
    ids = None if customer_ids is None else sorted({int(pk) for pk in customer_ids})
    summary = {"tags": 0, "added": 0, "removed": 0}
    for tag in tags:
        rule = rule_validate(tag.rule)
        condition = rule_to_q(rule, now=now)
        with transaction.atomic():
            for chunk in ([None] if ids is None else _chunks(ids)):
                live = Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE)
                if chunk is not None:
                    live = live.filter(pk__in=chunk)
                matching = live.filter(condition)
                summary["added"] += _insert_customer_tags(
                    workspace=workspace, tag=tag, source="rule", added_by_id=None,
                    customers=matching.exclude(customer_tags__tag=tag))
                stale = CustomerTag.objects.filter(tag=tag, customer__in=live).exclude(
                    customer_id__in=matching.values("pk"))
                summary["removed"] += stale.delete()[0]
        summary["tags"] += 1
    return summary
