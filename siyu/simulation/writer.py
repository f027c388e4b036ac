"""Bulk writing of generated chunks: PostgreSQL ``COPY`` (psycopg 3) or SQLite ``executemany``.

Bypasses the ORM on purpose (millions of rows); the rows written are exactly what the models describe:
identities belong to the workspace's customers, events point at identity ids, event ids are unique per
workspace (``sim<seed>-<customer index>-<n>``), personal data is encrypted with ``siyu.core.crypto``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import orjson
from django.db import connection

from siyu.core.channel_codes import BY_CODE
from siyu.core.crypto import encrypt_text, lookup_hash, name_hash
from siyu.simulation.generator import (
    CHANNEL_CODES,
    CITIES,
    SLOT_KIND,
    SLOTS,
    Chunk,
    event_identity_rows,
)

GENDERS = ("female", "male", "")
MEDIUM_BY_CATEGORY = {"wechat": "wechat", "external": "social", "offline": "offline", "referral": "referral"}


def timestamps(us: np.ndarray, *, postgres: bool) -> list[str]:
    """µs since epoch (UTC) → the text each backend stores (SQLite: Django's naive-UTC format)."""
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    if postgres:
        return [s + "+00" for s in text.tolist()]
    return [s.replace("T", " ") for s in text.tolist()]


class Sink:
    """Where rows go. One per run; ``reserve_ids`` hands out primary keys for explicit-id inserts."""

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"

    def reserve_ids(self, table: str, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        with connection.cursor() as cursor:
            if self.postgres:
                # nextval for each row: safe while the ingestion API inserts concurrently
                cursor.execute(
                    f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", [count])
                return np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
            # SQLite: the chunk's transaction holds the write lock, so max(id) cannot move under us
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            start = cursor.fetchone()[0] + 1
            return np.arange(start, start + count, dtype=np.int64)

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        with connection.cursor() as cursor:
            if self.postgres:
                with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" for _ in columns)
                cursor.cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


class BulkSink(Sink):
    """PostgreSQL bulk load for big runs: rows go to UNLOGGED staging tables without indexes (one per target
    table, committed with their chunk), and ``finish()`` moves them into the real tables in one transaction.

    In that transaction every target table is locked (ACCESS EXCLUSIVE, so no other session ever sees a table
    without its indexes and constraints; concurrent writers wait), and for each table whose existing rows are
    fewer than the staged ones the secondary indexes, unique and foreign-key constraints are dropped, the rows
    inserted with one ``INSERT … SELECT``, and the indexes rebuilt and the constraints re-added (which
    validates them: a foreign key or a duplicate that slipped in fails the whole step, nothing half-done).
    Tables with more existing rows than staged keep their indexes (rebuilding them would cost more).
    """

    #: insertion order (foreign keys point at earlier tables)
    ORDER = ("customers_customer", "customers_identity", "customers_consentrecord", "customers_customertag",
             "customers_event")

    def __init__(self, *, tag: str) -> None:
        super().__init__()
        if not self.postgres:
            raise ValueError("BulkSink needs PostgreSQL")
        self.tag = tag
        self.columns: dict[str, tuple[str, ...]] = {}
        self.staged: dict[str, int] = {}
        #: per table: what the final step did (rows, rebuilt or not, seconds)
        self.report: dict[str, dict] = {}
        self.finished = False

    def stage_name(self, table: str) -> str:
        return f"simstage_{self.tag}_{table}"

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        stage = self.stage_name(table)
        columns = tuple(columns)
        with connection.cursor() as cursor:
            if table not in self.columns:
                # no autovacuum: it would only scan (and analyze) rows that are read once at the end
                cursor.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {stage} WITH (autovacuum_enabled = false) AS "
                               f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA")
                self.columns[table] = columns
            elif self.columns[table] != columns:
                raise ValueError(f"columns of {table} changed between writes")
            count = 0
            with cursor.cursor.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        self.staged[table] = self.staged.get(table, 0) + count

    def finish(self, *, phase=None) -> None:
        """Move every staged row into its table (one transaction), then drop the staging tables."""
        import time

        from django.db import transaction

        phase = phase or (lambda name: None)
        tables = [t for t in self.ORDER if t in self.columns] + [t for t in self.columns if t not in self.ORDER]
        if not tables:
            return
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            # deferred foreign-key checks still pending in an enclosing transaction must run before ALTER TABLE
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            for table in tables:
                started = time.perf_counter()
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [self.stage_name(table)])
                if not cursor.fetchone()[0]:  # its first chunk was rolled back
                    continue
                cursor.execute(f"SELECT count(*) FROM {self.stage_name(table)}")
                staged = cursor.fetchone()[0]
                cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
                existing = max(0, int(cursor.fetchone()[0]))
                rebuild = staged > existing
                phase(f"合并 finalize {table}")
                constraints, indexes = _secondary_structures(cursor, table) if rebuild else ([], [])
                for name, _ in constraints:
                    cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                for name, _ in indexes:
                    cursor.execute(f'DROP INDEX "{name}"')
                cols = ", ".join(self.columns[table])
                cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {self.stage_name(table)}")
                inserted = time.perf_counter()
                for _, definition in indexes:
                    cursor.execute(definition)
                for name, definition in constraints:
                    cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
                self.report[table] = {"rows": staged, "existing_estimate": existing, "rebuilt": rebuild,
                                      "insert_s": round(inserted - started, 1),
                                      "indexes_s": round(time.perf_counter() - inserted, 1)}
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {self.stage_name(table)}")
        self.finished = True
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {table}")

    def discard(self) -> None:
        """Drop the staging tables (after ``finish`` or when giving up)."""
        with connection.cursor() as cursor:
            for table in self.columns:
                cursor.execute(f"DROP TABLE IF EXISTS {self.stage_name(table)}")


def _secondary_structures(cursor, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(unique and foreign-key constraints, other non-primary indexes) of ``table`` as (name, definition)."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC, conname", [table])
    constraints = list(cursor.fetchall())
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
        "ORDER BY 1", [table])
    return constraints, list(cursor.fetchall())


def _properties(chunk: Chunk, seed: int, aux: np.ndarray, lo: int, hi: int) -> list[bytes]:
    """Valid catalogue properties for every event (order_paid: order_id + amount_fen, …)."""
    out: list[bytes] = []
    types = chunk.event_types
    dumps = orjson.dumps
    for ev_type, cust, seq, amount, channel, extra in zip(
            chunk.ev_type[lo:hi].tolist(), chunk.ev_customer[lo:hi].tolist(), chunk.ev_seq[lo:hi].tolist(),
            chunk.ev_amount[lo:hi].tolist(), chunk.ev_channel[lo:hi].tolist(), aux.tolist(), strict=True):
        name = types[ev_type]
        if name == "order_paid":
            props = {"order_id": f"S{seed}-{chunk.offset + cust}-{seq}", "amount_fen": amount}
        elif name in ("page_view",):
            props = {"url": f"/pages/goods/list?cat={extra % 12}"}
        elif name == "product_view":
            props = {"product_id": f"P{1000 + extra % 200}", "price_fen": 4900 + (extra % 40) * 1000}
        elif name == "add_to_cart":
            props = {"product_id": f"P{1000 + extra % 200}", "quantity": 1 + extra % 3}
        elif name == "article_read":
            props = {"article_id": f"A{extra % 300}", "read_seconds": 5 + extra % 280}
        elif name == "mini_program_open":
            props = {"path": "pages/index/index"}
        elif name in ("group_join", "group_message"):
            props = {"group_id": f"G{extra % 40}"}
        elif name == "coupon_claim":
            props = {"coupon_id": f"C{extra % 20}"}
        elif name == "share":
            props = {"content_id": f"A{extra % 300}", "target": "friend" if extra % 2 else "moments"}
        elif name == "review":
            props = {"rating": 3 + extra % 3}
        elif name == "lead_submit":
            props = {"platform": CHANNEL_CODES[channel], "form_id": f"F{extra % 8}"}
        elif name in ("subscribe", "qr_scan"):
            props = {"scene": CHANNEL_CODES[channel] if channel >= 0 else ""}
        elif name == "wecom_add":
            props = {"staff_id": f"staff{extra % 12}", "state": CHANNEL_CODES[channel] if channel >= 0 else ""}
        elif name == "link_click":
            props = {"link_id": f"L{extra % 50}"}
        else:
            props = {}
        out.append(dumps(props))
    return out


def chunk_write(*, sink: Sink, chunk: Chunk, workspace_id: int, seed: int, end_us: int, tag_ids: dict[str, int],
                phase=None) -> list[int]:
    """Write one chunk (customers, identities, consent, tags, events). Returns the customer ids.

    ``phase(name)`` is called when a phase starts (progress display).
    """
    phase = phase or (lambda name: None)
    pg = sink.postgres
    phase("加密 encrypt")
    names_enc = [encrypt_text(n) for n in chunk.name]
    names_hash = [name_hash(n) for n in chunk.name]
    phones_enc = [encrypt_text(p) if p else None for p in chunk.phone]
    phones_hash = [lookup_hash("phone", p) if p else "" for p in chunk.phone]

    phase("写入客户 customers")
    customer_ids = sink.reserve_ids("customers_customer", chunk.n)
    first = timestamps(chunk.first_us, postgres=pg)
    last = timestamps(chunk.last_us, postgres=pg)
    channel_codes = [CHANNEL_CODES[c] for c in chunk.channel.tolist()]
    genders = [GENDERS[g] for g in chunk.gender.tolist()]
    cities = [CITIES[c] for c in chunk.city.tolist()]
    attributes = "{}"
    sink.write(
        "customers_customer",
        ("id", "workspace_id", "status", "name_enc", "name_hash", "phone_enc", "phone_hash", "gender", "city",
         "first_channel", "first_seen_at", "last_seen_at", "attributes", "created_at"),
        zip(customer_ids.tolist(), [workspace_id] * chunk.n, ["active"] * chunk.n, names_enc, names_hash,
            phones_enc, phones_hash, genders, cities, channel_codes, first, last, [attributes] * chunk.n, first,
            strict=True),
    )

    phase("写入身份 identities")
    identity_ids = sink.reserve_ids("customers_identity", chunk.ident_customer.size)
    ident_cust = chunk.ident_customer.tolist()
    values = [v if v is not None else phones_hash[c] for v, c in zip(chunk.ident_value, ident_cust, strict=True)]
    # an identity is first seen when its customer arrived and last seen at their last event (a fair summary)
    sink.write(
        "customers_identity",
        ("id", "workspace_id", "customer_id", "kind", "namespace", "value", "first_seen_at", "last_seen_at"),
        zip(identity_ids.tolist(), [workspace_id] * len(values), customer_ids[chunk.ident_customer].tolist(),
            [SLOT_KIND[SLOTS[s]] for s in chunk.ident_slot.tolist()], chunk.ident_namespace, values,
            [first[c] for c in ident_cust], [last[c] for c in ident_cust], strict=True),
    )

    phase("写入授权与标签 consent & tags")
    consent_rows = []
    tag_rows = []
    for cid, code, ts, marketing, lastc in zip(
            customer_ids.tolist(), channel_codes, first, chunk.marketing_consent.tolist(), last, strict=True):
        consent_rows.append((workspace_id, cid, "personal_data", True, code, "simulated arrival", ts))
        if marketing:
            consent_rows.append((workspace_id, cid, "marketing", True, code, "simulated opt-in", ts))
        tag_rows.append((workspace_id, cid, tag_ids["channel:" + code], "auto", lastc))
    for i, j in zip(*np.nonzero(chunk.interests), strict=True):
        tag_rows.append((workspace_id, int(customer_ids[i]), tag_ids[f"interest:{j}"], "auto", last[i]))
    lifecycle = np.where(chunk.first_us >= end_us - 30 * 86_400_000_000, "new",
                         np.where(chunk.alive, "active", "dormant"))
    for i, stage in enumerate(lifecycle.tolist()):
        tag_rows.append((workspace_id, int(customer_ids[i]), tag_ids["lifecycle:" + stage], "auto", last[i]))
    sink.write("customers_consentrecord",
               ("workspace_id", "customer_id", "purpose", "granted", "source", "evidence", "recorded_at"),
               consent_rows)
    sink.write("customers_customertag", ("workspace_id", "customer_id", "tag_id", "source", "added_at"), tag_rows)

    phase("写入事件 events")
    rows = event_identity_rows(chunk)
    aux = np.random.Generator(np.random.PCG64([seed, chunk.offset, 7])).integers(0, 1_000_000, size=chunk.events)
    # written in slices so the Python rows in flight stay small whatever the chunk's size
    for lo in range(0, chunk.events, EVENT_SLICE):
        hi = min(chunk.events, lo + EVENT_SLICE)
        _events_write(sink=sink, chunk=chunk, lo=lo, hi=hi, identity_ids=identity_ids[rows[lo:hi]],
                      aux=aux[lo:hi], workspace_id=workspace_id, seed=seed)
    return customer_ids.tolist()


EVENT_SLICE = 100_000


def _events_write(*, sink: Sink, chunk: Chunk, lo: int, hi: int, identity_ids: np.ndarray, aux: np.ndarray,
                  workspace_id: int, seed: int) -> None:
    customers = chunk.ev_customer[lo:hi].tolist()
    seqs = chunk.ev_seq[lo:hi].tolist()
    occurred = timestamps(chunk.ev_us[lo:hi], postgres=sink.postgres)
    props = [p.decode() for p in _properties(chunk, seed, aux, lo, hi)]
    types = [chunk.event_types[t] for t in chunk.ev_type[lo:hi].tolist()]
    channels = [CHANNEL_CODES[c] if c >= 0 else "" for c in chunk.ev_channel[lo:hi].tolist()]
    # UTM only on the arrival touch (the first event of a customer)
    arrival = [s == 0 for s in seqs]
    utm_source = [ch if a else "" for ch, a in zip(channels, arrival, strict=True)]
    utm_medium = [MEDIUM_BY_CATEGORY[BY_CODE[ch].category] if a and ch else ""
                  for ch, a in zip(channels, arrival, strict=True)]
    utm_campaign = ["sim-acquisition" if a else "" for a in arrival]
    event_ids = [f"sim{seed}-{chunk.offset + c}-{s}" for c, s in zip(customers, seqs, strict=True)]
    count = hi - lo
    empty = [""] * count
    sink.write(
        "customers_event",
        ("workspace_id", "event_id", "type", "occurred_at", "received_at", "identity_id", "channel", "utm_source",
         "utm_medium", "utm_campaign", "utm_content", "utm_term", "properties"),
        zip([workspace_id] * count, event_ids, types, occurred, occurred, identity_ids.tolist(), channels,
            utm_source, utm_medium, utm_campaign, empty, empty, props, strict=True),
    )
