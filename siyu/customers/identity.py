"""Identity resolution and merge/un-merge (SPEC T4): one customer across every way we recognise them.

Rules, deterministic and documented in the README:
1. An observation (one event, one callback, one form) asserts that all of its identities are one person.
2. If the observation carries a strong identity (unionid, phone), every customer owning one of its
   non-weak identities is merged into the oldest of them (reason: unionid, else phone).
3. Without a strong identity nothing is merged: unknown identities join the customer owning the
   best-ranked known identity (KIND_RANK), and identities owned by someone else stay where they are.
4. Weak identities (device ids) never cause a merge and are never moved. An observation whose only
   known identity is a device owned by an anonymous (device-only) profile identifies that profile;
   a device of an already identified customer is never reason to attach someone else to them.
5. An operator may link two customers explicitly (reason: explicit).
A merge moves identities and consent records and copies tags, recording each id; un-merge restores
exactly those, most recent merge first.

Concurrency: the resolver reads, decides, then locks every stored customer it is about to change (in id
order), re-reads the identities and starts again if anything moved meanwhile. Every attempt runs in its own
savepoint, so a lost race (unique violation on a new identity, deadlock) is retried even when the caller
already holds a transaction open (ingestion does).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import BigIntegerField, Case, Value, When
from django.utils import timezone

from siyu.core.domain_events import customers_changed
from siyu.core.errors import SiyuError
from siyu.core.models import Workspace
from siyu.customers.models import (
    KIND_RANK,
    STRONG_KINDS,
    WEAK_KINDS,
    ConsentRecord,
    Customer,
    CustomerStatus,
    CustomerTag,
    Identity,
    IdentityKind,
    MergeReason,
    MergeRecord,
)

IdentityKey = tuple[str, str, str]  # (kind, namespace, value)


@dataclass
class Observation:
    keys: list[IdentityKey]
    occurred_at: datetime
    channel: str = ""
    profile: dict = field(default_factory=dict)  # optional name/phone ciphertext for a new customer
    # When one observation stands for several (a batch's events with the same identities): the latest
    # time among them (default: occurred_at). New customers/identities get it as last_seen_at and stored
    # identities are moved forward to it.
    last_seen_at: datetime | None = None

    @property
    def latest(self) -> datetime:
        return self.occurred_at if self.last_seen_at is None or self.last_seen_at < self.occurred_at \
            else self.last_seen_at


@dataclass
class Resolution:
    customer_id: int
    identity_id: int  # the identity the observation is filed under (its best-ranked key)
    # identities whose last_seen_at the caller still has to move forward (the resolver does its own)
    seen_identity_ids: list[int] = field(default_factory=list)


def sort_keys(keys: Iterable[IdentityKey]) -> list[IdentityKey]:
    unique = dict.fromkeys(keys)
    return sorted(unique, key=lambda key: KIND_RANK[key[0]])


MAX_NAMESPACE = 64
MAX_VALUE = 128
_RETRY_PGCODES = {"40P01", "40001"}  # deadlock_detected, serialization_failure


class _Stale(Exception):
    """What we read changed before we could lock it: start again from a fresh read."""


class _IdentityTaken(IntegrityError):
    """A concurrent writer stored one of our new identities first (what a unique violation would say):
    retried like one, here and by callers that retry integrity errors (ingestion)."""


def _check_observations(observations: Sequence[Observation]) -> None:
    for index, obs in enumerate(observations):
        if not obs.keys:
            raise SiyuError("identity_missing", "观测缺少身份标识", "An observation needs at least one identity",
                            details={"index": index})
        for kind, namespace, value in obs.keys:
            if kind not in KIND_RANK:
                raise SiyuError("identity_kind_invalid", "未知的身份类型", "Unknown identity kind",
                                details={"index": index, "kind": str(kind)})
            if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
                raise SiyuError("identity_value_invalid", "身份标识值为空或过长",
                                "Identity value is empty or too long", details={"index": index, "kind": kind})
            if not isinstance(namespace, str) or len(namespace) > MAX_NAMESPACE:
                raise SiyuError("identity_namespace_invalid", "身份命名空间过长", "Identity namespace is too long",
                                details={"index": index, "kind": kind})


def _retryable(error: Exception) -> bool:
    if isinstance(error, IntegrityError | _Stale):
        return True
    cause = getattr(error, "__cause__", None)
    return isinstance(error, OperationalError) and getattr(cause, "sqlstate", None) in _RETRY_PGCODES


def identities_resolve(*, workspace: Workspace, observations: Sequence[Observation],
                       attempts: int = 8) -> list[Resolution]:
    """Resolve a batch of observations to customers, creating and merging as the rules say.

    Each attempt runs in its own savepoint (a transaction when the caller has none): a concurrent writer
    that created the same identity first, merged a customer we read, or deadlocked with us makes us roll
    back just this attempt and retry from a fresh read rather than fail.
    """
    _check_observations(observations)
    if not observations:
        return []
    for attempt in range(attempts):
        try:
            with transaction.atomic(savepoint=True):
                return _resolve_once(workspace, observations)
        except (IntegrityError, OperationalError, _Stale) as error:
            if attempt == attempts - 1 or not _retryable(error):
                if isinstance(error, _Stale):
                    raise SiyuError("identity_contention", "身份解析冲突过多，请重试",
                                    "Too much concurrent identity resolution; retry", status=409) from error
                raise
    raise AssertionError("unreachable")


def _load_identities(workspace: Workspace, all_keys: set[IdentityKey]) -> dict[IdentityKey, tuple[int, int]]:
    """{key: (identity id, customer id)} for the stored keys, via the (workspace, value) index."""
    found: dict[IdentityKey, tuple[int, int]] = {}
    values = sorted({key[2] for key in all_keys})
    if connection.vendor == "postgresql" and values:
        # One hash join against the distinct values, sent as one JSON document: the ORM's `value IN (…)`
        # spent ~0.5 ms of Python per call building thousands of parameters.
        with _pg_cursor() as cursor:
            cursor.execute("SELECT i.id, i.kind, i.namespace, i.value, i.customer_id "
                           "FROM (SELECT DISTINCT jsonb_array_elements_text(%s::jsonb) AS value) AS v "
                           "JOIN customers_identity AS i ON i.workspace_id = %s AND i.value = v.value",
                           [json.dumps(values), workspace.pk], prepare=False)
            for pk, kind, namespace, value, customer_id in cursor.fetchall():
                if (kind, namespace, value) in all_keys:
                    found[(kind, namespace, value)] = (pk, customer_id)
        return found
    chunk = max(100, (connection.features.max_query_params or 30000) - 10)
    for start in range(0, len(values), chunk):
        rows = Identity.objects.filter(workspace=workspace, value__in=values[start:start + chunk])
        for pk, kind, namespace, value, customer_id in rows.values_list(
            "id", "kind", "namespace", "value", "customer_id"
        ):
            key = (kind, namespace, value)
            if key in all_keys:
                found[key] = (pk, customer_id)
    return found


# Profile fields an observation may carry for a new customer (written by the set-based insert).
_NEW_CUSTOMER_PROFILE = ("name_enc", "name_hash", "phone_enc", "phone_hash", "gender", "city")


def _pg_cursor():
    """A psycopg cursor with server-side binding on Django's connection (arrays travel in binary)."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _customers_insert(workspace: Workspace, rows: list[tuple[Observation, datetime]]) -> list[int]:
    """Create one customer per (observation, last seen); returns their ids in order.

    PostgreSQL: one ``INSERT … SELECT FROM unnest(arrays) RETURNING id`` (rows come back in the order of
    the arrays: a plain scan of unnest, no join or sort, as Django's own bulk_create relies on)."""
    profiles_ok = all(set(obs.profile) <= set(_NEW_CUSTOMER_PROFILE) for obs, _ in rows)
    if connection.vendor != "postgresql" or not profiles_ok:
        created = Customer.objects.bulk_create([
            Customer(workspace=workspace, first_channel=obs.channel, first_seen_at=obs.occurred_at,
                     last_seen_at=latest, **obs.profile)
            for obs, latest in rows])
        return [row.pk for row in created]
    # One JSON document of rows (orjson writes datetimes as RFC 3339 in C): psycopg dumps list parameters
    # element by element in Python, which cost ~8 µs per customer across nine arrays.
    documents = []
    for obs, latest in rows:
        document = {"channel": obs.channel, "first_seen": obs.occurred_at, "last_seen": latest}
        for name, value in obs.profile.items():
            if value is not None and value != "":
                document[name] = base64.b64encode(bytes(value)).decode() if name.endswith("_enc") else value
        documents.append(document)
    with _pg_cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (workspace_id, status, name_enc, name_hash, phone_enc, phone_hash, "
            "gender, city, first_channel, first_seen_at, last_seen_at, attributes, created_at) "
            "SELECT %s, %s, decode(v.name_enc, 'base64'), coalesce(v.name_hash, ''), decode(v.phone_enc, 'base64'), "
            "coalesce(v.phone_hash, ''), coalesce(v.gender, ''), coalesce(v.city, ''), v.channel, v.first_seen, "
            "v.last_seen, '{}'::jsonb, %s "
            "FROM jsonb_to_recordset(%s::jsonb) AS v(name_enc text, name_hash text, phone_enc text, phone_hash text, "
            "gender text, city text, channel text, first_seen timestamptz, last_seen timestamptz) "
            "RETURNING id",
            [workspace.pk, CustomerStatus.ACTIVE, timezone.now(), orjson.dumps(documents).decode()],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if len(ids) != len(rows):
        raise AssertionError("customer insert returned a different number of rows")
    return ids


def _identities_insert(workspace: Workspace,
                       rows: list[tuple[IdentityKey, int, datetime, datetime]]) -> dict[IdentityKey, int]:
    """Create identities (key, customer id, first seen, last seen); returns {key: id}.

    PostgreSQL: one ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING``. A key a
    concurrent writer stored after our read comes back missing: the attempt fails as on a unique violation
    (the ORM path) and is retried from a fresh read."""
    if connection.vendor != "postgresql":
        created = Identity.objects.bulk_create([
            Identity(workspace=workspace, customer_id=customer_id, kind=key[0], namespace=key[1], value=key[2],
                     first_seen_at=first, last_seen_at=last)
            for key, customer_id, first, last in rows])
        return {(row.kind, row.namespace, row.value): row.pk for row in created}
    with _pg_cursor() as cursor:
        # rows as one JSON document of arrays (see _customers_insert: no per-element dumping in Python)
        cursor.execute(
            "INSERT INTO customers_identity (workspace_id, customer_id, kind, namespace, value, first_seen_at, "
            "last_seen_at) SELECT %s, (v.r->>0)::bigint, v.r->>1, v.r->>2, v.r->>3, (v.r->>4)::timestamptz, "
            "(v.r->>5)::timestamptz FROM jsonb_array_elements(%s::jsonb) AS v(r) "
            "ON CONFLICT (workspace_id, kind, namespace, value) DO NOTHING RETURNING id, kind, namespace, value",
            [workspace.pk, orjson.dumps([(customer_id, *key, first, last) for key, customer_id, first, last in rows])
             .decode()],
        )
        created = {(kind, namespace, value): pk for pk, kind, namespace, value in cursor.fetchall()}
    if len(created) != len(rows):
        raise _IdentityTaken("identity_unique_key: stored concurrently")
    return created


def identities_touch(seen: dict[int, datetime]) -> None:
    """Move identities' last_seen_at forward to the given times (never back; later rows are not written)."""
    if not seen:
        return
    ordered = sorted(seen.items())  # one lock order for every writer
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute(
                "UPDATE customers_identity AS i SET last_seen_at = v.t FROM (SELECT (r->>0)::bigint AS id, "
                "(r->>1)::timestamptz AS t FROM jsonb_array_elements(%s::jsonb) AS r) AS v "
                "WHERE i.id = v.id AND i.last_seen_at < v.t",
                [orjson.dumps(ordered).decode()])
        return
    table = connection.ops.quote_name(Identity._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), 400):
            chunk = ordered[start:start + 400]
            cursor.execute(
                f"WITH v(id, t) AS (VALUES {', '.join(['(%s, %s)'] * len(chunk))}) "
                f"UPDATE {table} SET last_seen_at = v.t FROM v WHERE {table}.id = v.id AND {table}.last_seen_at < v.t",
                [value for pk, moment in chunk for value in (pk, adapt(moment))])


def _resolve_once(workspace: Workspace, observations: Sequence[Observation]) -> list[Resolution]:
    all_keys = {key for obs in observations for key in obs.keys}
    stored = _load_identities(workspace, all_keys)
    owner: dict[IdentityKey, int] = {key: customer_id for key, (_, customer_id) in stored.items()}
    identity_ids: dict[IdentityKey, int] = {key: pk for key, (pk, _) in stored.items()}

    # Customers created in this batch get negative placeholder ids until inserted.
    placeholders: dict[int, Observation] = {}
    merged_into: dict[int, int] = {}
    merges: list[tuple[int, int, str]] = []
    first_seen: dict[int, datetime] = {}

    def live(customer_id: int) -> int:
        while customer_id in merged_into:
            customer_id = merged_into[customer_id]
        return customer_id

    existing_ids = set(owner.values())
    if existing_ids and connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute("SELECT id, first_seen_at FROM customers_customer "
                           "WHERE id = ANY(string_to_array(%s, ',')::bigint[])",
                           [",".join(str(pk) for pk in existing_ids)])
            first_seen.update(cursor.fetchall())
    elif existing_ids:
        first_seen.update(Customer.objects.filter(pk__in=existing_ids).values_list("pk", "first_seen_at"))

    def age(customer_id: int) -> tuple[datetime, int]:
        # Older customer wins; placeholders (new in this batch) are younger than any stored one.
        return (first_seen[customer_id], customer_id if customer_id > 0 else 10**18 - customer_id)

    # Customers that own a non-weak identity; a device-only (anonymous) profile may become identified.
    weak_owners = {owner[key] for key in owner if key[0] in WEAK_KINDS}
    identified = {owner[key] for key in owner if key[0] not in WEAK_KINDS}
    if weak_owners - identified:
        identified.update(Identity.objects.filter(customer_id__in=weak_owners - identified)
                          .exclude(kind__in=WEAK_KINDS).values_list("customer_id", flat=True))

    chosen: list[int] = []
    for obs in observations:
        keys = sort_keys(obs.keys)
        nonweak_owned = [live(owner[key]) for key in keys if key in owner and key[0] not in WEAK_KINDS]
        weak_owned = [live(owner[key]) for key in keys if key in owner and key[0] in WEAK_KINDS]
        identifying = any(key[0] not in WEAK_KINDS for key in keys)
        if nonweak_owned and any(kind in STRONG_KINDS for kind, _, _ in keys):
            candidates = sorted(set(nonweak_owned), key=age)
            customer_id = candidates[0]
            reason = MergeReason.UNIONID if any(k[0] == IdentityKind.UNIONID for k in keys) else MergeReason.PHONE
            for other in candidates[1:]:
                merged_into[other] = customer_id
                merges.append((customer_id, other, reason))
        elif nonweak_owned:
            customer_id = nonweak_owned[0]
        elif weak_owned and not identifying:
            customer_id = weak_owned[0]
        elif anonymous := [owner_id for owner_id in weak_owned if owner_id not in identified]:
            customer_id = anonymous[0]
        else:
            customer_id = -(len(placeholders) + 1)
            placeholders[customer_id] = obs
            first_seen[customer_id] = obs.occurred_at
        for key in keys:
            if key not in owner:
                owner[key] = customer_id
        if identifying:
            identified.add(customer_id)
        chosen.append(customer_id)

    # Lock every stored customer we are about to change (new identities, merges), in id order, then check
    # that what we read still holds: a concurrent merge/un-merge may have moved identities meanwhile.
    touched = {owner[key] for key in all_keys if key not in identity_ids}
    for winner, loser, _ in merges:
        touched.update((winner, loser))
    touched = {customer_id for customer_id in touched if customer_id > 0}
    if touched:
        locked = _lock_customers(workspace, sorted(touched))
        if len(locked) != len(touched) or not all(row.is_live for row in locked.values()):
            raise _Stale
        if _load_identities(workspace, all_keys) != stored:
            raise _Stale

    # Insert new customers, then new identities, then apply merges.
    real_id: dict[int, int] = {}
    if placeholders:
        latest: dict[int, datetime] = {}
        for obs, customer_id in zip(observations, chosen, strict=True):
            if customer_id < 0:
                latest[customer_id] = max(latest.get(customer_id, obs.latest), obs.latest)
        created = _customers_insert(workspace, [(obs, latest[placeholder])
                                                for placeholder, obs in placeholders.items()])
        real_id = dict(zip(placeholders, created, strict=True))

    def final(customer_id: int) -> int:
        customer_id = live(customer_id)
        return real_id.get(customer_id, customer_id)

    # Every identity of an observation was seen then: new ones are created with their first and last time in
    # the batch, stored ones have last_seen_at moved forward (one set-based UPDATE, rows already later untouched).
    first_at: dict[IdentityKey, datetime] = {}
    last_at: dict[IdentityKey, datetime] = {}
    for obs in observations:
        latest_seen = obs.latest
        for key in obs.keys:
            if key not in first_at or obs.occurred_at < first_at[key]:
                first_at[key] = obs.occurred_at
            if key not in last_at or latest_seen > last_at[key]:
                last_at[key] = latest_seen
    new_rows = [(key, real_id.get(owner[key], owner[key]), first_at[key], last_at[key])
                for key in sorted(first_at) if key not in identity_ids]
    if new_rows:
        identity_ids.update(_identities_insert(workspace, new_rows))
    identities_touch({identity_ids[key]: when for key, when in last_at.items() if key in stored})

    # Both sides were live when each merge was decided, and merges are applied in that order.
    if merges:
        _apply_merges(workspace, [(real_id.get(winner, winner), real_id.get(loser, loser), reason)
                                  for winner, loser, reason in merges])

    results = []
    for obs, customer_id in zip(observations, chosen, strict=True):
        target = final(customer_id)
        keys = sort_keys(obs.keys)
        # File the event under the best-ranked key that now belongs to the resolved customer.
        owned_by_target = [key for key in keys if final(owner[key]) == target]
        primary = (owned_by_target or keys)[0]
        results.append(Resolution(customer_id=target, identity_id=identity_ids[primary]))
    return results


# Winner fields a merge may fill in or widen; un-merge puts back those nobody changed since.
_RESTORABLE = ("first_seen_at", "first_channel", "last_seen_at", "name_enc", "name_hash", "phone_enc",
               "phone_hash", "gender", "city", "owner_id", "attributes")


def _field_state(customer: Customer, name: str) -> Any:
    value = getattr(customer, name)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _field_value(name: str, state: Any) -> Any:
    if isinstance(state, dict) and name.endswith("_enc"):
        return base64.b64decode(state["b64"])
    if name.endswith("_at"):
        return datetime.fromisoformat(state)
    return state


def _restore_winner_fields(winner: Customer, before: dict[str, list]) -> None:
    restored = []
    for name, (old, new) in before.items():
        if _field_state(winner, name) == new:
            setattr(winner, name, _field_value(name, old))
            restored.append(name)
    if restored:
        winner.save(update_fields=restored)


def _drop_tag_copies(workspace: Workspace, record: MergeRecord, winner: Customer) -> None:
    """Remove the tags this merge copied onto the winner, unless another loser still merged into the
    winner carries the same tag: then the copy stays and is handed over to that merge's record."""
    copies = dict(CustomerTag.objects.filter(pk__in=record.added_tag_ids, customer=winner)
                  .values_list("pk", "tag_id"))
    if not copies:
        return
    others = list(MergeRecord.objects.select_for_update()
                  .filter(workspace=workspace, winner=winner, unmerged_at__isnull=True)
                  .exclude(pk=record.pk).order_by("-pk"))
    keep: dict[int, list[int]] = {}
    if others:
        holders: dict[int, int] = {}
        for loser_id, tag_id in (CustomerTag.objects.filter(customer_id__in=[o.loser_id for o in others],
                                                            tag_id__in=set(copies.values()))
                                 .values_list("customer_id", "tag_id")):
            holders[tag_id] = max(holders.get(tag_id, 0), loser_id)
        by_loser = {o.loser_id: o for o in others}
        for pk, tag_id in copies.items():
            if tag_id in holders:
                keep.setdefault(by_loser[holders[tag_id]].pk, []).append(pk)
    for other in others:
        if other.pk in keep:
            other.added_tag_ids = [*other.added_tag_ids, *keep[other.pk]]
            other.save(update_fields=["added_tag_ids"])
    kept = {pk for pks in keep.values() for pk in pks}
    CustomerTag.objects.filter(pk__in=[pk for pk in copies if pk not in kept]).delete()


def _lock_customers(workspace: Workspace, ids: Sequence[int]) -> dict[int, Customer]:
    rows = Customer.objects.select_for_update().filter(workspace=workspace, pk__in=sorted(ids)).order_by("pk")
    return {row.pk: row for row in rows}


@transaction.atomic
def customer_merge(*, workspace: Workspace, winner_id: int, loser_id: int, reason: str,
                   actor=None) -> MergeRecord:
    """Merge ``loser`` into ``winner``: identities and consents move, tags are copied; nothing is lost."""
    if winner_id == loser_id:
        raise SiyuError("merge_same_customer", "不能将客户与自身合并", "Cannot merge a customer into itself")
    if reason not in MergeReason.values:
        raise SiyuError("merge_invalid_reason", "未知的合并原因", "Unknown merge reason")
    locked = _lock_customers(workspace, [winner_id, loser_id])
    if len(locked) != 2:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    winner, loser = locked[winner_id], locked[loser_id]
    if not winner.is_live or not loser.is_live:
        raise SiyuError("merge_not_live", "只能合并未被合并的客户", "Only customers that are not merged can be merged",
                        status=409)

    return _apply_merges(workspace, [(winner.pk, loser.pk, reason)], actor=actor)[0]


def _absorb(winner: Customer, loser: Customer) -> dict[str, list]:
    """Fill the winner's profile from the loser in memory; returns {field: [before, after]} of what changed."""
    before = {name: _field_state(winner, name) for name in _RESTORABLE}
    if loser.first_seen_at < winner.first_seen_at:
        winner.first_seen_at = loser.first_seen_at
        winner.first_channel = loser.first_channel or winner.first_channel
    elif not winner.first_channel:
        winner.first_channel = loser.first_channel
    winner.last_seen_at = max(winner.last_seen_at, loser.last_seen_at)
    for field_name in ("name_enc", "name_hash", "phone_enc", "phone_hash", "gender", "city"):
        if not getattr(winner, field_name) and getattr(loser, field_name):
            setattr(winner, field_name, getattr(loser, field_name))
    if winner.owner_id is None and loser.owner_id is not None:
        winner.owner_id = loser.owner_id
    winner.attributes = {**loser.attributes, **winner.attributes}
    return {name: [old, _field_state(winner, name)] for name, old in before.items()
            if _field_state(winner, name) != old}


def _reassign(model, moves: dict[int, int]) -> None:
    """One UPDATE setting customer_id per row id (on PostgreSQL from two arrays, no per-row SQL)."""
    if not moves:
        return
    if connection.vendor == "postgresql":
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" AS t SET customer_id = v.customer_id '
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, customer_id) WHERE t.id = v.id",
                [list(moves), list(moves.values())],
            )
        return
    model.objects.filter(pk__in=list(moves)).update(customer_id=Case(
        *[When(pk=pk, then=Value(customer_id)) for pk, customer_id in moves.items()],
        output_field=BigIntegerField()))


_PROFILE_COLUMNS = (  # (column, PostgreSQL array type) for winners' profile updates
    ("first_seen_at", "timestamptz"), ("first_channel", "text"), ("last_seen_at", "timestamptz"),
    ("name_enc", "bytea"), ("name_hash", "text"), ("phone_enc", "bytea"), ("phone_hash", "text"),
    ("gender", "text"), ("city", "text"), ("owner_id", "bigint"), ("attributes", "jsonb"),
)


def _customers_save(customers: list[Customer], losers: dict[int, int], winners: set[int]) -> None:
    """Write merged losers (status, merged_into) and winners' profiles."""
    if connection.vendor != "postgresql":
        Customer.objects.bulk_update(customers, ["status", "merged_into", *[c for c, _ in _PROFILE_COLUMNS]])
        return
    with connection.cursor() as cursor:
        if losers:
            cursor.execute(
                "UPDATE customers_customer AS t SET status = %s, merged_into_id = v.winner "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, winner) WHERE t.id = v.id",
                [CustomerStatus.MERGED, list(losers), list(losers.values())],
            )
        rows = [row for row in customers if row.pk in winners]
        if rows:
            arrays = [[row.pk for row in rows]]
            for column, _ in _PROFILE_COLUMNS:
                values = [getattr(row, column) for row in rows]
                if column == "attributes":
                    values = [json.dumps(value) for value in values]
                elif column.endswith("_enc"):
                    values = [bytes(value) if value is not None else None for value in values]
                arrays.append(values)
            sets = ", ".join(f"{column} = v.{column}" for column, _ in _PROFILE_COLUMNS)
            casts = ", ".join(f"%s::{kind if kind != 'jsonb' else 'text'}[]" for _, kind in _PROFILE_COLUMNS)
            names = ", ".join(column for column, _ in _PROFILE_COLUMNS)
            sets = sets.replace("attributes = v.attributes", "attributes = v.attributes::jsonb")
            cursor.execute(
                f"UPDATE customers_customer AS t SET {sets} FROM unnest(%s::bigint[], {casts}) "
                f"AS v(id, {names}) WHERE t.id = v.id",
                arrays,
            )



def _apply_merges(workspace: Workspace, merges: Sequence[tuple[int, int, str]], actor=None) -> list[MergeRecord]:
    """Apply merges in order with a fixed number of queries, whatever their number.

    Each (winner, loser) behaves exactly as if merged alone at that point: the loser's identities and
    consents (including what earlier merges of the batch gave it) move, its tags are copied where the
    winner lacks them, its profile fills the winner's gaps. The caller holds the customers' row locks.
    """
    involved = sorted({customer_id for winner, loser, _ in merges for customer_id in (winner, loser)})
    customers = {row.pk: row for row in Customer.objects.filter(workspace=workspace, pk__in=involved)}
    identities: dict[int, set[int]] = {customer_id: set() for customer_id in involved}
    for pk, customer_id in Identity.objects.filter(customer_id__in=involved).values_list("pk", "customer_id"):
        identities[customer_id].add(pk)
    consents: dict[int, set[int]] = {customer_id: set() for customer_id in involved}
    for pk, customer_id in ConsentRecord.objects.filter(customer_id__in=involved).values_list("pk", "customer_id"):
        consents[customer_id].add(pk)
    tags: dict[int, set[int]] = {customer_id: set() for customer_id in involved}
    for customer_id, tag_id in CustomerTag.objects.filter(customer_id__in=involved).values_list("customer_id",
                                                                                                "tag_id"):
        tags[customer_id].add(tag_id)

    identity_moves: dict[int, int] = {}
    consent_moves: dict[int, int] = {}
    copies: list[tuple[int, CustomerTag]] = []  # (merge index, copy)
    records = []
    for index, (winner_id, loser_id, reason) in enumerate(merges):
        winner, loser = customers[winner_id], customers[loser_id]
        moved_identities, moved_consents = sorted(identities[loser_id]), sorted(consents[loser_id])
        identities[winner_id].update(moved_identities)
        identities[loser_id] = set()
        consents[winner_id].update(moved_consents)
        consents[loser_id] = set()
        identity_moves.update(dict.fromkeys(moved_identities, winner_id))
        consent_moves.update(dict.fromkeys(moved_consents, winner_id))
        for tag_id in sorted(tags[loser_id] - tags[winner_id]):
            copies.append((index, CustomerTag(workspace=workspace, customer_id=winner_id, tag_id=tag_id,
                                              source="merge")))
        tags[winner_id] |= tags[loser_id]
        changed = _absorb(winner, loser)
        loser.status, loser.merged_into_id = CustomerStatus.MERGED, winner_id
        records.append(MergeRecord(
            workspace=workspace, winner_id=winner_id, loser_id=loser_id, reason=reason, actor=actor,
            moved_identity_ids=moved_identities, moved_consent_ids=moved_consents, added_tag_ids=[],
            winner_before=changed,
        ))

    _reassign(Identity, identity_moves)
    _reassign(ConsentRecord, consent_moves)
    if copies:
        created = CustomerTag.objects.bulk_create([copy for _, copy in copies])
        for (index, _), row in zip(copies, created, strict=True):
            records[index].added_tag_ids.append(row.pk)
    _customers_save([customers[customer_id] for customer_id in involved],
                    losers={loser: winner for winner, loser, _ in merges},
                    winners={winner for winner, _, _ in merges})
    # Events follow identities: rule tags of the customers involved are re-evaluated on commit.
    customers_changed(workspace.pk, involved)
    return MergeRecord.objects.bulk_create(records)


@transaction.atomic
def customer_unmerge(*, workspace: Workspace, record_id: int, actor=None) -> Customer:
    """Undo one merge: the loser comes back with the identities, consents and tags it brought."""
    record = MergeRecord.objects.select_for_update().filter(workspace=workspace, pk=record_id).first()
    if record is None:
        raise SiyuError("not_found", "合并记录不存在", "Merge record not found", status=404)
    if record.unmerged_at is not None:
        raise SiyuError("already_unmerged", "该合并已撤销", "This merge was already undone", status=409)
    locked = _lock_customers(workspace, [record.winner_id, record.loser_id])
    winner, loser = locked[record.winner_id], locked[record.loser_id]
    if not winner.is_live:
        raise SiyuError(
            "unmerge_order", "请先撤销该客户之后的合并", "Undo the later merge of this customer first", status=409
        )
    Identity.objects.filter(pk__in=record.moved_identity_ids, customer=winner).update(customer=loser)
    ConsentRecord.objects.filter(pk__in=record.moved_consent_ids, customer=winner).update(customer=loser)
    _drop_tag_copies(workspace, record, winner)
    _restore_winner_fields(winner, record.winner_before)
    loser.status = CustomerStatus.ACTIVE
    loser.merged_into = None
    loser.save(update_fields=["status", "merged_into"])
    record.unmerged_at = timezone.now()
    record.unmerged_by = actor if getattr(actor, "is_authenticated", False) else None
    record.save(update_fields=["unmerged_at", "unmerged_by"])
    customers_changed(workspace.pk, [winner.pk, loser.pk])
    return loser


def customer_link(*, workspace: Workspace, customer_ids: Sequence[int], actor=None) -> Customer:
    """Explicit link by an operator: merge all into the oldest."""
    customers = list(Customer.objects.filter(workspace=workspace, pk__in=customer_ids, status=CustomerStatus.ACTIVE)
                     .order_by("first_seen_at", "pk"))
    if len(customers) != len(set(customer_ids)) or len(customers) < 2:
        raise SiyuError("link_invalid", "请选择至少两个有效客户", "Choose at least two live customers")
    with transaction.atomic():
        for other in customers[1:]:
            customer_merge(workspace=workspace, winner_id=customers[0].pk, loser_id=other.pk,
                           reason=MergeReason.EXPLICIT, actor=actor)
    return customers[0]
