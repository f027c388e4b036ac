"""Set-based RFM scoring in SQL: one statement computes every customer's inputs from the orders table and the
event log and upserts them into ``CustomerScore``; classification is one ``UPDATE`` with the presets' CASE
expressions, and the moves are ``INSERT … SELECT`` into ``LayerChange`` — no per-customer Python loop.

Definitions (the plain-Python reference in the tests follows them word for word):

- A *purchase* is an order with ``paid_at`` set and payment status paid or partially refunded (fully
  refunded orders do not count); its amount is ``paid_fen − refunded_fen``. Orders of a merged-away profile
  count for the customer it was merged into (one level, as the merge service writes it).
- R ``recency_days``: whole days since the last purchase (null: never bought); F ``frequency``: purchases;
  M ``monetary_fen``: their net amount. ``spend_30d_fen`` / ``spend_365d_fen`` / ``orders_365d``: purchases
  paid after now − 30 / 365 days; ``coupon_orders_365d``: those with a discount (``discount_fen > 0``).
- Interactions (``INTERACTION_TYPES``): events in the built-in catalogue flagged as interactions, except
  purchases (already in F and M) and views (counted apart as browsing): messages, shares, check-ins, reads,
  clicks, group talk, reviews, follows, scans… ``interactions_7d`` counts them after now − 7 days;
  ``views_30d`` counts ``product_view`` after now − 30 days. ``last_interaction_at`` /
  ``interaction_idle_days`` look at interactions *and* views (someone still browsing is not silent).
  Events reach a customer through their identity (Event → Identity → Customer), so merges need no rewrite.
- ``age_days``: whole days since the customer was first seen (the registration age).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from django.db import connection

from siyu.commerce.orders.models import Order
from siyu.core.timeutil import SHANGHAI
from siyu.customers.event_catalogue import BUILTIN
from siyu.customers.models import Customer, Event, Identity
from siyu.engagement.rfm.models import CustomerScore, LayerChange, PurchaseRollup
from siyu.engagement.rfm.presets import PRESETS, case_sql
from siyu.engagement.rfm.rollup import PACK, PURCHASE_STATUSES, purchase_days_sql

PURCHASE_EVENT_TYPES = frozenset({"order_placed", "order_paid", "order_refunded", "payment_succeeded"})
VIEW_EVENT_TYPES = frozenset({"page_view", "product_view"})
INTERACTION_TYPES = tuple(sorted(t.name for t in BUILTIN if t.interaction
                                 and t.name not in PURCHASE_EVENT_TYPES | VIEW_EVENT_TYPES))
PRODUCT_VIEW = "product_view"
ACTIVITY_TYPES = tuple(sorted({*INTERACTION_TYPES, *VIEW_EVENT_TYPES}))

DAY_MS = 86_400_000


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _param(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _days_since(later: str, earlier: str) -> str:
    """Whole days from ``earlier`` to ``later`` (floor; both SQL expressions of timestamps)."""
    if _postgres():
        return f"FLOOR(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400)::integer"
    return f"(CAST(ROUND((julianday({later}) - julianday({earlier})) * {DAY_MS}) AS INTEGER) / {DAY_MS})"


def _now_sql() -> str:
    return "CAST(%(now)s AS timestamptz)" if _postgres() else "%(now)s"


def _in_list(values: Iterable) -> str:
    return ", ".join(f"'{value}'" for value in values)  # only our own constants, never user input


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(int(pk)) for pk in ids)


def scores_compute(*, workspace_id: int, now: datetime, customer_ids: Iterable[int] | None = None) -> int:
    """Upsert the inputs of every live customer of the workspace (or only ``customer_ids``) in one
    statement; layers are left for ``layers_assign``. Returns the number of rows written."""
    orders, customers = Order._meta.db_table, Customer._meta.db_table
    events, identities = Event._meta.db_table, Identity._meta.db_table
    score = CustomerScore._meta.db_table
    order_filter = event_filter = customer_filter = ""
    if customer_ids is not None:
        ids = _ids(sorted(set(customer_ids)))
        if not ids:
            return 0
        order_filter = f"AND (o.customer_id IN ({ids}) OR m.merged_into_id IN ({ids}))"
        event_filter = f"AND i.customer_id IN ({ids})"
        customer_filter = f"AND c.id IN ({ids})"
    net = "(o.paid_fen - o.refunded_fen)"
    now_sql = _now_sql()
    age = _days_since(now_sql, "c.first_seen_at")
    age = f"GREATEST({age}, 0)" if _postgres() else f"MAX({age}, 0)"
    sql = f"""
        INSERT INTO {score} (workspace_id, customer_id, recency_days, frequency, monetary_fen, first_order_at,
            last_order_at, spend_30d_fen, spend_365d_fen, orders_365d, coupon_orders_365d, interactions_7d,
            views_30d, last_interaction_at, interaction_idle_days, age_days, rfm5, rfm6, lifecycle, computed_at)
        SELECT c.workspace_id, c.id, {_days_since(now_sql, "o.last_at")}, COALESCE(o.frequency, 0),
            COALESCE(o.monetary, 0), o.first_at, o.last_at, COALESCE(o.spend_30d, 0), COALESCE(o.spend_365d, 0),
            COALESCE(o.orders_365d, 0), COALESCE(o.coupon_365d, 0), COALESCE(e.interactions_7d, 0),
            COALESCE(e.views_30d, 0), e.last_at, {_days_since(now_sql, "e.last_at")}, {age}, '', '', '', %(now)s
        FROM {customers} c
        LEFT JOIN (
            SELECT COALESCE(m.merged_into_id, o.customer_id) AS cid, COUNT(*) AS frequency, SUM({net}) AS monetary,
                MIN(o.paid_at) AS first_at, MAX(o.paid_at) AS last_at,
                SUM(CASE WHEN o.paid_at > %(d30)s THEN {net} ELSE 0 END) AS spend_30d,
                SUM(CASE WHEN o.paid_at > %(d365)s THEN {net} ELSE 0 END) AS spend_365d,
                SUM(CASE WHEN o.paid_at > %(d365)s THEN 1 ELSE 0 END) AS orders_365d,
                SUM(CASE WHEN o.paid_at > %(d365)s AND o.discount_fen > 0 THEN 1 ELSE 0 END) AS coupon_365d
            FROM {orders} o JOIN {customers} m ON m.id = o.customer_id
            WHERE o.workspace_id = %(ws)s AND o.paid_at IS NOT NULL AND o.paid_at <= %(now)s
                AND o.payment_status IN ({_in_list(PURCHASE_STATUSES)}) {order_filter}
            GROUP BY COALESCE(m.merged_into_id, o.customer_id)
        ) o ON o.cid = c.id
        LEFT JOIN (
            SELECT i.customer_id AS cid,
                SUM(CASE WHEN e.type IN ({_in_list(INTERACTION_TYPES)}) AND e.occurred_at > %(d7)s
                    THEN 1 ELSE 0 END) AS interactions_7d,
                SUM(CASE WHEN e.type = '{PRODUCT_VIEW}' AND e.occurred_at > %(d30)s THEN 1 ELSE 0 END) AS views_30d,
                MAX(e.occurred_at) AS last_at
            FROM {events} e JOIN {identities} i ON i.id = e.identity_id
            WHERE e.workspace_id = %(ws)s AND e.type IN ({_in_list(ACTIVITY_TYPES)}) AND e.occurred_at <= %(now)s
                {event_filter}
            GROUP BY i.customer_id
        ) e ON e.cid = c.id
        WHERE c.workspace_id = %(ws)s AND c.status = 'active' {customer_filter}
        ON CONFLICT (customer_id) DO UPDATE SET
            recency_days = excluded.recency_days, frequency = excluded.frequency,
            monetary_fen = excluded.monetary_fen, first_order_at = excluded.first_order_at,
            last_order_at = excluded.last_order_at, spend_30d_fen = excluded.spend_30d_fen,
            spend_365d_fen = excluded.spend_365d_fen, orders_365d = excluded.orders_365d,
            coupon_orders_365d = excluded.coupon_orders_365d, interactions_7d = excluded.interactions_7d,
            views_30d = excluded.views_30d, last_interaction_at = excluded.last_interaction_at,
            interaction_idle_days = excluded.interaction_idle_days, age_days = excluded.age_days,
            computed_at = excluded.computed_at
    """
    params = {"ws": workspace_id, "now": _param(now), "d7": _param(now - timedelta(days=7)),
              "d30": _param(now - timedelta(days=30)), "d365": _param(now - timedelta(days=365))}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.rowcount
        # Profiles merged away since the last run keep no score of their own.
        cursor.execute(f"DELETE FROM {score} WHERE workspace_id = %s AND customer_id IN "
                       f"(SELECT id FROM {customers} WHERE workspace_id = %s AND status <> 'active')",
                       [workspace_id, workspace_id])
    return written


def _named(sql: str, params: list, prefix: str) -> tuple[str, dict]:
    """Positional %s placeholders as %(prefix_n)s names, so several CASEs can share one named statement."""
    pieces = sql.split("%s")
    assert len(pieces) == len(params) + 1
    out, named = [pieces[0]], {}
    for index, (value, piece) in enumerate(zip(params, pieces[1:], strict=True)):
        key = f"{prefix}{index}"
        named[key] = value
        out.append(f"%({key})s{piece}")
    return "".join(out), named


def layers_assign(*, workspace_id: int, thresholds: dict[str, dict[str, int]], now: datetime,
                  customer_ids: Iterable[int] | None = None, id_range: tuple[int, int] | None = None
                  ) -> int:
    """Classify scored customers under the three presets; every changed layer becomes a ``LayerChange``
    row (from → to) and the score takes the new layer. Call inside a transaction that holds the workspace's
    settings lock. Returns the highest LayerChange id before this call (moves are the rows after it)."""
    score, changes = CustomerScore._meta.db_table, LayerChange._meta.db_table
    where = "s.workspace_id = %(ws)s"
    if customer_ids is not None:
        where += f" AND s.customer_id IN ({_ids(customer_ids) or 'NULL'})"
    if id_range is not None:
        where += f" AND s.customer_id BETWEEN {int(id_range[0])} AND {int(id_range[1])}"
    params: dict = {"ws": workspace_id, "now": _param(now)}
    cases = {}
    for kind, preset in PRESETS.items():
        text, positional = case_sql(preset, thresholds.get(kind), alias="s")
        cases[kind], named = _named(text, positional, f"{kind}_")
        params.update(named)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {changes}")
        before = cursor.fetchone()[0]
        for kind, case in cases.items():
            cursor.execute(f"""
                INSERT INTO {changes} (workspace_id, customer_id, kind, from_code, to_code, at)
                SELECT s.workspace_id, s.customer_id, '{kind}', s.{kind}, {case}, %(now)s
                FROM {score} s WHERE {where} AND s.{kind} <> ({case})
            """, params)
        changed = " OR ".join(f"s.{kind} <> ({case})" for kind, case in cases.items())
        sets = ", ".join(f"{kind} = {case}" for kind, case in cases.items())
        cursor.execute(f"UPDATE {score} AS s SET {sets} WHERE {where} AND ({changed})", params)
    return before


def moves_since(*, workspace_id: int, after_id: int, batch: int = 10_000):
    """The moves recorded after ``after_id``, as (kind, [(customer_id, from, to), …]) batches."""
    table = LayerChange._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT kind, customer_id, from_code, to_code FROM {table} "
                       f"WHERE workspace_id = %s AND id > %s ORDER BY kind, id", [workspace_id, after_id])
        codes: dict[str, str] = {}  # intern the few layer codes: a first run moves every customer
        current_kind, moves = None, []
        while rows := cursor.fetchmany(batch):
            for kind, customer_id, from_code, to_code in rows:
                if kind != current_kind or len(moves) >= batch:
                    if moves:
                        yield current_kind, moves
                    current_kind, moves = kind, []
                moves.append((customer_id, codes.setdefault(from_code, from_code), codes.setdefault(to_code, to_code)))
        if moves:
            yield current_kind, moves


# --- the lifetimes summary ---------------------------------------------------------------------------------

def _shanghai_day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).date() if value.tzinfo else value.date()
    return value


def rfm_summary(*, workspace_id: int, observation_end: date | datetime,
                customer_ids: Iterable[int] | None = None) -> dict[int, tuple[int, int, int, float]]:
    """``lifetimes.utils.summary_data_from_transaction_data`` (freq "D", first purchase excluded) for every
    customer who bought by the end day, read from the purchase rollup (work proportional to customers):

    - purchases are bucketed by calendar day in Asia/Shanghai (amounts of a day summed);
    - frequency = buying days − 1; recency = last buying day − first; T = end day − first buying day;
    - monetary_value = mean amount (fen) of the buying days after the first, 0 when there are none.

    Purchases after the end day (Asia/Shanghai) are left out: customers who bought both by and after the end
    day are summarised from their orders instead. Returns {customer_id: (frequency, recency, T,
    monetary_value)}; customer ids are the orders' own (no merge mapping), like the transactions fed to
    lifetimes.
    """
    end_day = _shanghai_day(observation_end)
    end = (end_day - date(1970, 1, 1)).days
    table = PurchaseRollup._meta.db_table
    customer_filter = ""
    if customer_ids is not None:
        customer_filter = f"AND r.customer_id IN ({_ids(customer_ids) or 'NULL'})"
    real = "float8" if _postgres() else "REAL"
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT r.customer_id, r.days - 1, r.last_day - r.first_day, %(end)s - r.first_day,
                COALESCE(CAST(r.total_fen - r.first_day_fen AS {real}) / NULLIF(r.days - 1, 0), 0.0)
            FROM {table} r WHERE r.workspace_id = %(ws)s AND r.last_day <= %(end)s {customer_filter}
        """, {"ws": workspace_id, "end": end})
        summary = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(f"SELECT r.customer_id FROM {table} r WHERE r.workspace_id = %(ws)s "
                       f"AND r.first_day <= %(end)s AND r.last_day > %(end)s {customer_filter}",
                       {"ws": workspace_id, "end": end})
        straddling = [row[0] for row in cursor.fetchall()]
    if straddling:
        summary.update(rfm_summary_from_orders(workspace_id=workspace_id, observation_end=end_day,
                                               customer_ids=straddling))
    return summary


def rfm_summary_from_orders(*, workspace_id: int, observation_end: date | datetime,
                customer_ids: Iterable[int] | None = None) -> dict[int, tuple[int, int, int, float]]:
    """``rfm_summary`` computed from the orders table alone (one statement over every purchase): the
    reference the rollup is checked against, and the fallback for customers who bought after the end day.

    - purchases are bucketed by calendar day in Asia/Shanghai (amounts of a day summed);
    - frequency = buying days − 1; recency = last buying day − first; T = end day − first buying day;
    - monetary_value = mean amount (fen) of the buying days after the first, 0 when there are none.

    Purchases after the end day (Asia/Shanghai) are left out. Returns {customer_id: (frequency, recency,
    T, monetary_value)}; customer ids are the orders' own (no merge mapping), like the transactions fed to
    lifetimes.
    """
    end_day = _shanghai_day(observation_end)
    end_exclusive = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=SHANGHAI)
    customer_filter = ""
    if customer_ids is not None:
        customer_filter = f"AND o.customer_id IN ({_ids(customer_ids) or 'NULL'})"
    real = "float8" if _postgres() else "REAL"
    # The first day's amount without a second pass: MIN(day · 2^40 + fen) is the first day's pair
    # (a customer-day's amount stays below 2^40 fen).
    sql = f"""
        SELECT customer_id, COUNT(*) - 1, MAX(day) - MIN(day), %(end_day)s - MIN(day),
            COALESCE(CAST(SUM(fen) - MIN(day * {PACK} + fen) %% {PACK} AS {real}) / NULLIF(COUNT(*) - 1, 0), 0)
        FROM ({purchase_days_sql(f"o.workspace_id = %(ws)s AND o.paid_at < %(end)s {customer_filter}")}) AS days
        GROUP BY customer_id
    """
    params = {"ws": workspace_id, "end": _param(end_exclusive), "end_day": (end_day - date(1970, 1, 1)).days}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0]: (int(row[1]), int(row[2]), int(row[3]), float(row[4])) for row in cursor.fetchall()}
