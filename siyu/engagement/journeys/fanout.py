"""Set-based planning of a message step for many runs at once (PostgreSQL).

When thousands of runs wait at the same message step (a segment of a million customers entering together),
planning them one ORM call at a time is far too slow. Here one transaction per chunk: lock the due runs
(``FOR UPDATE SKIP LOCKED``), lock the customers' limiter rows in id order (the same lock the per-run path
takes, so both paths together still respect the caps), and write with ``INSERT … SELECT`` the outbox rows —
suppressed (consent withdrawn, account missing or disabled, no openid for the account, not following the
公众号, outside the 48-hour customer-service window), capped (the exact rolling-week and daily rules of
``schedule.allowed``), deferred past quiet hours or planned — the step executions and the runs' next step.

Every per-customer message channel fans out: 公众号 template and customer-service (custom) messages,
小程序 subscribe messages and WeCom mass sends (one per customer, as ``delivery`` sends them). Each run gets
exactly the plan ``engine`` would give it run by run — same status, reason, due time and cap day
(tests/engagement/journeys/test_fanout_agrees.py). Runs the per-run path treats specially are left to it:
customers no longer live (their runs exit) and runs that already executed the step (they fail).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count

from siyu.core.timeutil import local_day
from siyu.customers.models import ConsentRecord, Customer, Identity
from siyu.engagement.journeys import definition as rules
from siyu.engagement.journeys import reasons
from siyu.engagement.journeys.models import (
    CAP_COUNTED,
    ContactLimiter,
    Journey,
    JourneyMessage,
    JourneyRun,
    JourneyStatus,
    JourneyVersion,
    RunStatus,
    StepExecution,
)
from siyu.engagement.journeys.schedule import after_quiet_hours, caps_for

FANOUT_MIN = 200  # below this many runs at one step, the per-run path is as good
CHUNK = 50_000
CHANNELS = ("official_template", "official_custom", "miniapp_subscribe", "wecom_mass")


def fanout_groups(*, now: datetime) -> list[tuple[int, int, str, int]]:
    """(journey, version, step, runs) groups of due runs waiting at a fan-out-able message step."""
    groups = (JourneyRun.objects.filter(status=RunStatus.ACTIVE, next_at__lte=now, journey__status=JourneyStatus.ACTIVE)
              .values_list("journey_id", "version", "current_step").annotate(n=Count("pk")).filter(n__gte=FANOUT_MIN)
              .order_by())
    found = []
    for journey_id, version, step_id, count in groups:
        definition = JourneyVersion.objects.get(journey_id=journey_id, version=version).definition
        step = rules.steps_by_id(definition).get(step_id)
        if step and step["type"] == "message" and step.get("channel") in CHANNELS:
            found.append((journey_id, version, step_id, count))
    return found


def fanout_due(*, now: datetime) -> int:
    """Plan every large group of due runs at a message step; returns the number of messages planned."""
    if connection.vendor != "postgresql":
        return 0
    planned = 0
    for journey_id, version, step_id, _count in fanout_groups(now=now):
        while True:
            done = fanout_chunk(journey_id=journey_id, version=version, step_id=step_id, now=now)
            planned += done
            if done < CHUNK:
                break
    return planned


def _caps_sql(day, caps: dict[str, int]) -> tuple[str, str, list]:
    """Columns counting each customer's messages per day offset -6..6, and the exact allow test."""
    columns, params = [], []
    for offset in range(-6, 7):
        columns.append(f"SUM(CASE WHEN m.cap_day = %s THEN 1 ELSE 0 END) AS c{offset + 6}")
        params.append(day + timedelta(days=offset))
    windows = [" + ".join(f"COALESCE(k.c{index}, 0)" for index in range(end, end + 7)) for end in range(7)]
    # rn - 1: earlier runs of the same customer in this chunk take their place first
    test = (f"COALESCE(k.c6, 0) + p.rn - 1 < {int(caps['day'])} AND "
            + " AND ".join(f"({window}) + p.rn - 1 < {int(caps['week'])}" for window in windows))
    return ", ".join(columns), test, params


def _recipient_sql(channel: str, app, now: datetime) -> tuple[str, list, list[tuple[str, str]]]:
    """Who the step's account reaches, and the suppression tests in ``engine._recipient_problem``'s order:
    (CTE ``reach`` one row per customer holding an openid of the account, its params,
    [(SQL condition over ``reach``, reason), …])."""
    from siyu.wechat.official.models import Follower
    from siyu.wechat.official.rules import CUSTOM_WINDOW

    nobody = "reach AS (SELECT NULL::bigint AS customer_id WHERE false)"
    if app is None:
        return nobody, [], [("TRUE", reasons.NO_ACCOUNT)]
    if channel not in reasons.OPENID_CHANNELS:
        return nobody, [], []
    tests = [("reach.customer_id IS NULL", reasons.NO_OPENID)]
    if channel not in reasons.FOLLOWER_CHANNELS:
        return (f"""reach AS (SELECT DISTINCT i.customer_id FROM {Identity._meta.db_table} i
                       WHERE i.kind = 'openid' AND i.namespace = %s
                         AND i.customer_id IN (SELECT customer_id FROM jr_due))""", [app.appid], tests)
    # following: a subscribed follower among the customer's openids; in_window: the one who wrote last did so
    # within the 48-hour customer-service window (custom_window_check: never wrote, or too long ago, is closed)
    cte = f"""reach AS (SELECT i.customer_id, bool_or(f.id IS NOT NULL) AS following,
                              COALESCE(max(f.last_interaction_at) >= %s, FALSE) AS in_window
                       FROM {Identity._meta.db_table} i
                       LEFT JOIN {Follower._meta.db_table} f ON f.app_id = %s AND f.openid = i.value AND f.subscribed
                       WHERE i.kind = 'openid' AND i.namespace = %s
                         AND i.customer_id IN (SELECT customer_id FROM jr_due)
                       GROUP BY i.customer_id)"""
    tests.append(("NOT reach.following", reasons.NOT_FOLLOWING))
    if channel == "official_custom":
        tests.append(("NOT reach.in_window", reasons.window_closed()))
    return cte, [now - CUSTOM_WINDOW, app.pk, app.appid], tests


def fanout_chunk(*, journey_id: int, version: int, step_id: str, now: datetime, chunk: int = CHUNK) -> int:
    """Plan up to ``chunk`` due runs at ``step_id`` in one transaction; returns how many were planned."""
    from siyu.engagement.journeys.engine import journey_settings
    from siyu.wechat.models import WeChatApp

    definition = JourneyVersion.objects.get(journey_id=journey_id, version=version).definition
    step = rules.steps_by_id(definition)[step_id]
    channel = step["channel"]
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel} does not fan out")
    run_table, message_table = JourneyRun._meta.db_table, JourneyMessage._meta.db_table
    workspace_id = Journey.objects.values_list("workspace_id", flat=True).get(pk=journey_id)
    guards = journey_settings(workspace_id)
    due = after_quiet_hours(now, start=guards.quiet_start, end=guards.quiet_end)
    day = local_day(due)
    ok_status = "deferred" if due > now else "planned"
    caps = caps_for(channel, guards.caps)
    app = WeChatApp.objects.filter(workspace_id=workspace_id, pk=int(step["app_id"]), is_active=True).first()
    payload = json.dumps({key: step.get(key) for key in ("app_id", "template_id", "data", "url", "text", "page")
                          if key in step}, ensure_ascii=False)
    following = step.get("next") or ""
    count_columns, allow_test, count_params = _caps_sql(day, caps)
    reach_cte, reach_params, tests = _recipient_sql(channel, app, now)
    # suppressed first (consent, then the account's reach, in engine's order), then capped, else planned
    cases = [("r.granted IS FALSE", reasons.REFUSED), *tests]
    status_sql = " ".join(f"WHEN {sql} THEN 'suppressed'" for sql, _text in cases)
    error_sql = " ".join(f"WHEN {sql} THEN %s" for sql, _text in cases)
    error_params = [text[:255] for _sql, text in cases]
    counted = list(CAP_COUNTED)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # big row estimates switch JIT on; compiling costs more than it saves
        cursor.execute("DROP TABLE IF EXISTS jr_due, jr_plan")
        cursor.execute("CREATE TEMP TABLE jr_due (run_id bigint PRIMARY KEY, customer_id bigint) ON COMMIT DROP")
        cursor.execute(
            f"""INSERT INTO jr_due SELECT r.id, r.customer_id FROM {run_table} r
                WHERE r.journey_id = %s AND r.version = %s AND r.current_step = %s AND r.status = 'active'
                  AND r.next_at <= %s
                  AND EXISTS (SELECT 1 FROM {Journey._meta.db_table} j WHERE j.id = r.journey_id AND j.status = 'active')
                  AND EXISTS (SELECT 1 FROM {Customer._meta.db_table} c WHERE c.id = r.customer_id AND c.status = 'active')
                  AND NOT EXISTS (SELECT 1 FROM {StepExecution._meta.db_table} e WHERE e.run_id = r.id AND e.step_id = %s)
                ORDER BY r.id LIMIT %s FOR UPDATE OF r SKIP LOCKED""",
            [journey_id, version, step_id, now, step_id, chunk])
        taken = cursor.rowcount
        if not taken:
            return 0
        cursor.execute("ANALYZE jr_due")
        limiter = ContactLimiter._meta.db_table
        # in customer order, like the locks below: two planners inserting the same new rows never wait in a cycle
        cursor.execute(f"INSERT INTO {limiter} (customer_id, channel) SELECT DISTINCT customer_id, %s FROM jr_due "
                       f"ORDER BY customer_id ON CONFLICT DO NOTHING", [channel])
        # one unique-index probe per customer, in customer order: independent of the limiter table's statistics
        # (a planner that believed the table tiny after a bulk entry chose a nested-loop scan of it per customer)
        cursor.execute(f"SELECT 1 FROM (SELECT DISTINCT customer_id FROM jr_due ORDER BY customer_id) d "
                       f"CROSS JOIN LATERAL (SELECT 1 FROM {limiter} l WHERE l.customer_id = d.customer_id "
                       f"AND l.channel = %s FOR UPDATE) locked", [channel])
        cursor.execute(
            f"""CREATE TEMP TABLE jr_plan ON COMMIT DROP AS
            WITH p AS (SELECT run_id, customer_id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY run_id) AS rn
                       FROM jr_due),
            k AS (SELECT m.customer_id, {count_columns} FROM {message_table} m
                  WHERE m.channel = %s AND m.status = ANY(%s) AND m.cap_day BETWEEN %s AND %s
                    AND m.customer_id IN (SELECT customer_id FROM jr_due) GROUP BY m.customer_id),
            refused AS (SELECT DISTINCT ON (c.customer_id) c.customer_id, c.granted FROM {ConsentRecord._meta.db_table} c
                        WHERE c.purpose = 'marketing' AND c.customer_id IN (SELECT customer_id FROM jr_due)
                        ORDER BY c.customer_id, c.recorded_at DESC, c.id DESC),
            {reach_cte}
            SELECT p.run_id, p.customer_id,
                   CASE {status_sql} WHEN NOT ({allow_test}) THEN 'capped' ELSE %s END AS status,
                   CASE {error_sql} WHEN NOT ({allow_test}) THEN %s ELSE '' END AS error
            FROM p LEFT JOIN k ON k.customer_id = p.customer_id
                   LEFT JOIN refused r ON r.customer_id = p.customer_id
                   LEFT JOIN reach ON reach.customer_id = p.customer_id""",
            [*count_params, channel, counted, day - timedelta(days=6), day + timedelta(days=6), *reach_params,
             ok_status, *error_params, reasons.capped(caps)])
        cursor.execute(
            f"""INSERT INTO {message_table} (workspace_id, journey_id, run_id, step_id, customer_id, channel, status,
                    idempotency_key, payload, due_at, cap_day, attempts, provider_ref, error, created_at)
                SELECT %s, %s, run_id, %s, customer_id, %s, status, left('j' || %s || '-r' || run_id || '-' || %s, 64),
                       %s::jsonb, %s, %s, 0, '', error, %s FROM jr_plan""",
            [workspace_id, journey_id, step_id, channel, journey_id, step_id, payload, due, day, now])
        cursor.execute(
            f"""INSERT INTO {StepExecution._meta.db_table} (run_id, step_id, step_type, outcome, detail, executed_at)
                SELECT run_id, %s, 'message', status, '{{"fanout": true}}'::jsonb, %s FROM jr_plan""", [step_id, now])
        if following:
            cursor.execute(f"UPDATE {run_table} SET current_step = %s, next_at = %s "
                           f"WHERE id IN (SELECT run_id FROM jr_due)", [following, now])
        else:
            cursor.execute(f"UPDATE {run_table} SET current_step = '', status = 'completed', next_at = NULL, "
                           f"finished_at = %s WHERE id IN (SELECT run_id FROM jr_due)", [now])
        cursor.execute("DROP TABLE jr_due, jr_plan")
    return taken
