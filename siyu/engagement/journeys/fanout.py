"""Set-based planning of a 公众号 template-message step for many runs at once (PostgreSQL).

When thousands of runs wait at the same message step (a segment of a million customers entering together),
planning them one ORM call at a time is far too slow. Here one transaction per chunk: lock the due runs
(``FOR UPDATE SKIP LOCKED``), lock the customers' limiter rows in id order (the same lock the per-run path
takes, so both paths together still respect the caps), and write with ``INSERT … SELECT`` the outbox rows —
suppressed (consent withdrawn, not following), capped (the exact rolling-week and daily rules of
``schedule.allowed``), deferred past quiet hours or planned — the step executions and the runs' next step.
The result is the same as ``engine`` would produce run by run.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count

from siyu.core.timeutil import local_day
from siyu.customers.models import ConsentRecord, Identity
from siyu.engagement.journeys import definition as rules
from siyu.engagement.journeys.models import (
    CAP_COUNTED,
    ContactLimiter,
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
CHANNELS = ("official_template",)


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


def fanout_chunk(*, journey_id: int, version: int, step_id: str, now: datetime, chunk: int = CHUNK) -> int:
    from siyu.engagement.journeys.engine import journey_settings
    from siyu.wechat.models import WeChatApp
    from siyu.wechat.official.models import Follower

    definition = JourneyVersion.objects.get(journey_id=journey_id, version=version).definition
    step = rules.steps_by_id(definition)[step_id]
    run_table, message_table = JourneyRun._meta.db_table, JourneyMessage._meta.db_table
    journey_row = JourneyRun._meta.get_field("journey").related_model.objects.get(pk=journey_id)
    guards = journey_settings(journey_row.workspace_id)
    due = after_quiet_hours(now, start=guards.quiet_start, end=guards.quiet_end)
    day = local_day(due)
    ok_status = "deferred" if due > now else "planned"
    caps = caps_for(step["channel"], guards.caps)
    app = WeChatApp.objects.filter(workspace_id=journey_row.workspace_id, pk=int(step["app_id"])).first()
    appid, app_id = (app.appid, app.pk) if app else ("", 0)
    payload = json.dumps({key: step.get(key) for key in ("app_id", "template_id", "data", "url", "text", "page")
                          if key in step}, ensure_ascii=False)
    following = step.get("next") or ""
    count_columns, allow_test, count_params = _caps_sql(day, caps)
    counted = list(CAP_COUNTED)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE jr_due (run_id bigint PRIMARY KEY, customer_id bigint) ON COMMIT DROP")
        cursor.execute(
            f"INSERT INTO jr_due SELECT id, customer_id FROM {run_table} WHERE journey_id = %s AND version = %s "
            f"AND current_step = %s AND status = 'active' AND next_at <= %s ORDER BY id LIMIT %s "
            f"FOR UPDATE SKIP LOCKED", [journey_id, version, step_id, now, chunk])
        taken = cursor.rowcount
        if not taken:
            return 0
        cursor.execute("ANALYZE jr_due")
        limiter = ContactLimiter._meta.db_table
        cursor.execute(f"INSERT INTO {limiter} (customer_id, channel) SELECT DISTINCT customer_id, %s FROM jr_due "
                       f"ON CONFLICT DO NOTHING", [step["channel"]])
        cursor.execute(f"SELECT 1 FROM {limiter} WHERE channel = %s AND customer_id IN (SELECT customer_id FROM jr_due) "
                       f"ORDER BY customer_id FOR UPDATE", [step["channel"]])
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
            reach AS (SELECT DISTINCT i.customer_id FROM {Identity._meta.db_table} i
                      JOIN {Follower._meta.db_table} f ON f.app_id = %s AND f.openid = i.value AND f.subscribed
                      WHERE i.kind = 'openid' AND i.namespace = %s AND i.customer_id IN (SELECT customer_id FROM jr_due))
            SELECT p.run_id, p.customer_id,
                   CASE WHEN r.granted IS FALSE THEN 'suppressed'
                        WHEN reach.customer_id IS NULL THEN 'suppressed'
                        WHEN NOT ({allow_test}) THEN 'capped'
                        ELSE %s END AS status,
                   CASE WHEN r.granted IS FALSE THEN '客户已退订营销消息 / unsubscribed from marketing'
                        WHEN reach.customer_id IS NULL THEN '未关注公众号（已取消关注视为退订）/ not following'
                        WHEN NOT ({allow_test}) THEN %s
                        ELSE '' END AS error
            FROM p LEFT JOIN k ON k.customer_id = p.customer_id
                   LEFT JOIN refused r ON r.customer_id = p.customer_id
                   LEFT JOIN reach ON reach.customer_id = p.customer_id""",
            [*count_params, step["channel"], counted, day - timedelta(days=6), day + timedelta(days=6), app_id, appid,
             ok_status, f"超出频次上限 {caps['day']}/天 {caps['week']}/周 / over the cap"])
        cursor.execute(
            f"""INSERT INTO {message_table} (workspace_id, journey_id, run_id, step_id, customer_id, channel, status,
                    idempotency_key, payload, due_at, cap_day, attempts, provider_ref, error, created_at)
                SELECT %s, %s, run_id, %s, customer_id, %s, status, 'j' || %s || '-r' || run_id || '-' || %s,
                       %s::jsonb, %s, %s, 0, '', error, %s FROM jr_plan""",
            [journey_row.workspace_id, journey_id, step_id, step["channel"], journey_id, step_id, payload, due, day, now])
        cursor.execute(
            f"""INSERT INTO {StepExecution._meta.db_table} (run_id, step_id, step_type, outcome, detail, executed_at)
                SELECT run_id, %s, 'message', status, '{{"fanout": true}}'::jsonb, %s FROM jr_plan""", [step_id, now])
        if following:
            cursor.execute(f"UPDATE {run_table} SET current_step = %s, next_at = %s "
                           f"WHERE id IN (SELECT run_id FROM jr_due)", [following, now])
        else:
            cursor.execute(f"UPDATE {run_table} SET current_step = '', status = 'completed', next_at = NULL, "
                           f"finished_at = %s WHERE id IN (SELECT run_id FROM jr_due)", [now])
    return taken
