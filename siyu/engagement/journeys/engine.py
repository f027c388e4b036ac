"""Running journeys: customers enter (one run per journey, customer and entry key), and due runs move through
their steps in batches.

Each due run is taken with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers) and
advanced in one transaction that also writes the ``StepExecution`` rows, the database-only actions (tags,
coupons, points, staff tasks) and the outbox rows of messages and webhooks. A worker that dies mid-way rolls
all of it back; the next one redoes it from the same step — so a step happens exactly once. Messages leave
through ``delivery``, which never sends one twice. Every function takes ``now`` (clock injection).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.customers.models import ConsentPurpose, ConsentRecord, Customer, CustomerTag, Event, Identity
from siyu.engagement.inbox.models import StaffTask, TaskLevel, TaskStatus
from siyu.engagement.inbox.services import DEFAULT_SLA_MINUTES, task_create
from siyu.engagement.journeys import definition as rules
from siyu.engagement.journeys import reasons
from siyu.engagement.journeys.models import (
    CAP_COUNTED,
    ContactLimiter,
    Journey,
    JourneyMessage,
    JourneyRun,
    JourneySettings,
    JourneyStatus,
    JourneyVersion,
    MessageStatus,
    RunStatus,
    StepExecution,
)
from siyu.engagement.journeys.schedule import after_quiet_hours, caps_for, wait_until
from siyu.engagement.journeys.schedule import allowed as cap_allows
from siyu.engagement.rfm.models import CustomerScore
from siyu.engagement.segments.models import SegmentMember

logger = logging.getLogger(__name__)
BATCH = 200
MAX_STEPS_PER_PASS = 60  # more than any acyclic definition can chain without a wait


# --- entering ---------------------------------------------------------------------------------------------

def runs_enter(*, journey: Journey, customer_ids, entry_key: str | dict[int, str] = "once",
               now: datetime | None = None, start_at: datetime | None = None) -> int:
    """Let customers into an active journey. Replays are harmless: the unique (journey, customer, entry key)
    keeps a second entry out. Returns how many runs were created."""
    now = now or timezone.now()
    if journey.status != JourneyStatus.ACTIVE or not journey.version:
        return 0
    version = JourneyVersion.objects.get(journey=journey, version=journey.version)
    first = rules.entry_step(version.definition)
    ids = sorted({int(pk) for pk in customer_ids})
    live = set(Customer.objects.filter(workspace_id=journey.workspace_id, pk__in=ids, merged_into__isnull=True)
               .values_list("pk", flat=True)) if ids else set()
    rows = [JourneyRun(workspace_id=journey.workspace_id, journey=journey, version=journey.version, customer_id=pk,
                       entry_key=(entry_key.get(pk, "once") if isinstance(entry_key, dict) else entry_key)[:96],
                       current_step=first, next_at=start_at or now, entered_at=now)
            for pk in ids if pk in live]
    created = 0
    for start in range(0, len(rows), 1000):
        chunk = rows[start:start + 1000]
        before = JourneyRun.objects.filter(journey=journey).count()
        JourneyRun.objects.bulk_create(chunk, ignore_conflicts=True)
        created += JourneyRun.objects.filter(journey=journey).count() - before
    return created


# --- advancing --------------------------------------------------------------------------------------------

def runs_due(*, now: datetime, limit: int = BATCH) -> list[int]:
    return list(JourneyRun.objects.filter(status=RunStatus.ACTIVE, next_at__lte=now,
                                          journey__status=JourneyStatus.ACTIVE)
                .order_by("next_at", "pk").values_list("pk", flat=True)[:limit])


def runs_process(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """Advance up to ``limit`` due runs; returns how many this worker advanced."""
    from siyu.engagement.journeys.fanout import fanout_due

    now = now or timezone.now()
    done = fanout_due(now=now)  # large groups at one message step, set-based (PostgreSQL)
    versions: dict[tuple[int, int], dict] = {}
    for run_id in runs_due(now=now, limit=limit):
        try:
            if run_advance(run_id=run_id, now=now, versions=versions):
                done += 1
        except Exception:  # one broken run never stops the batch; it is marked so nobody retries it blindly
            logger.exception("journey run %s failed", run_id)
            JourneyRun.objects.filter(pk=run_id, status=RunStatus.ACTIVE).update(
                status=RunStatus.FAILED, error="内部错误 / internal error", next_at=None, finished_at=now)
    return done


def _definition(run: JourneyRun, versions: dict) -> dict:
    key = (run.journey_id, run.version)
    if key not in versions:
        versions[key] = JourneyVersion.objects.get(journey_id=run.journey_id, version=run.version).definition
    return versions[key]


def run_advance(*, run_id: int, now: datetime, versions: dict | None = None) -> bool:
    """Take one due run (skipping it if another worker holds it) and move it as far as it goes now."""
    versions = {} if versions is None else versions
    with transaction.atomic():
        # only the run row is locked (of self): locking its journey and customer too would serialise a journey's
        # runs across workers and deadlock against the set-based planner's limiter and foreign-key locks
        run = (JourneyRun.objects.select_for_update(skip_locked=True, of=("self",)).select_related("journey", "customer")
               .filter(pk=run_id, status=RunStatus.ACTIVE, next_at__lte=now).first())
        if run is None or run.journey.status != JourneyStatus.ACTIVE:
            return False
        if not run.customer.is_live:
            _finish(run, RunStatus.EXITED, now, error="客户已合并 / customer merged")
            return True
        steps = rules.steps_by_id(_definition(run, versions))
        for _ in range(MAX_STEPS_PER_PASS):
            step = steps.get(run.current_step)
            if step is None or step["type"] == "end":
                if step is not None:
                    StepExecution.objects.get_or_create(run=run, step_id=step["id"], defaults={
                        "step_type": "end", "outcome": "end", "executed_at": now})
                _finish(run, RunStatus.COMPLETED, now)
                return True
            if StepExecution.objects.filter(run=run, step_id=step["id"]).exists():
                # Only reachable if a definition reused a step; never do it twice.
                _finish(run, RunStatus.FAILED, now, error=f"步骤 {step['id']} 已执行过 / step already done")
                return True
            outcome, following, resume_at, detail = _execute(run, step, now)
            StepExecution.objects.create(run=run, step_id=step["id"], step_type=step["type"], outcome=outcome,
                                         detail=detail, executed_at=now)
            run.current_step = following or ""
            if not following:
                _finish(run, RunStatus.COMPLETED, now)
                return True
            if resume_at is not None and resume_at > now:
                run.next_at = resume_at
                run.save(update_fields=["current_step", "next_at", "variant", "route"])
                return True
        _finish(run, RunStatus.FAILED, now, error="步骤过多 / too many steps in one pass")
        return True


def _finish(run: JourneyRun, status: str, now: datetime, *, error: str = "") -> None:
    run.status, run.next_at, run.finished_at, run.error = status, None, now, error[:255]
    run.save(update_fields=["status", "next_at", "finished_at", "error", "current_step", "variant", "route"])


def _execute(run: JourneyRun, step: dict, now: datetime) -> tuple[str, str, datetime | None, dict]:
    """Do one step: (outcome, next step id, resume time or None, detail)."""
    kind = step["type"]
    if kind == "wait":
        until = wait_until(now, step)
        return "waited", step.get("next") or "", until, {"until": until.isoformat()}
    if kind == "condition":
        yes = condition_holds(run=run, check=step["check"], now=now)
        return ("yes" if yes else "no"), (step.get("yes") if yes else step.get("no")) or "", None, {}
    if kind == "split":
        branches = step["branches"]
        name = rules.weighted_choice(weights=[(str(b["name"]), int(b["weight"])) for b in branches],
                                     key=f"{run.journey_id}:{step['id']}", customer_id=run.customer_id)
        branch = next(b for b in branches if str(b["name"]) == name)
        if not run.variant:
            run.variant = name[:32]
        return name, branch.get("next") or "", None, {}
    if kind == "route721":
        return _route721(run, step, now)
    if kind == "message":
        return _plan_message(run, step, now)
    if kind == "webhook":
        return _plan_webhook(run, step, now)
    try:
        with transaction.atomic():
            outcome, detail = _action(run, step, now)
    except SiyuError as error:
        outcome, detail = "error", {"code": error.code, "message": error.message_zh}
    return outcome, step.get("next") or "", None, detail


def _action(run: JourneyRun, step: dict, now: datetime) -> tuple[str, dict]:
    from siyu.commerce.promotions.services import coupon_issue
    from siyu.customers.tagging import customer_tag_add, customer_tag_remove
    from siyu.loyalty.points import points_earn

    workspace, kind = run.journey.workspace, step["type"]
    if kind == "tag":
        if step.get("action", "add") == "remove":
            changed = customer_tag_remove(workspace=workspace, customer_id=run.customer_id, tag_id=int(step["tag_id"]))
        else:
            changed = customer_tag_add(workspace=workspace, customer_id=run.customer_id, tag_id=int(step["tag_id"]),
                                       source="auto")
        return ("done" if changed else "unchanged"), {}
    if kind == "coupon":
        result = coupon_issue(workspace=workspace, template_id=int(step["template_id"]), customer_ids=[run.customer_id],
                              now=now)
        return ("issued" if result["issued"] else "skipped"), {"skipped": result["skipped"]}
    if kind == "points":
        tx = points_earn(workspace=workspace, customer=run.customer, amount=int(step["amount"]), reason="task",
                         ref=f"journey:{run.pk}:{step['id']}", at=now, note=run.journey.name[:64])
        return "earned", {"transaction": tx.pk}
    if kind == "task":
        level = step.get("level") or TaskLevel.JUNIOR
        task, _ = _task(run, step, level=level, now=now)
        return "task", {"task": task.pk}
    raise SiyuError("journey_step_unknown", "未知的步骤类型", "Unknown step type")


def _task(run: JourneyRun, step: dict, *, level: str, now: datetime):
    sla = int(step.get("sla_minutes") or 0) or DEFAULT_SLA_MINUTES[TaskLevel(level)]
    return task_create(workspace=run.journey.workspace, source="journey", ref=f"run:{run.pk}:step:{step['id']}",
                       title=str(step.get("title") or run.journey.name), customer_id=run.customer_id, level=level,
                       body=str(step.get("body") or ""), sla_minutes=sla, now=now,
                       payload={"journey_id": run.journey_id, "run_id": run.pk, "step_id": step["id"]})


def _route721(run: JourneyRun, step: dict, now: datetime) -> tuple[str, str, datetime | None, dict]:
    weights = step.get("weights") or rules.DEFAULT_721
    route = rules.weighted_choice(weights=[(name, int(weights[name])) for name in rules.ROUTES],
                                  key=f"721:{run.journey_id}:{step['id']}", customer_id=run.customer_id)
    run.route = route
    if route == "auto":
        return route, step.get("auto") or step.get("next") or "", None, {}
    sla_key = "sla_junior" if route == "junior" else "sla_expert"
    task, _ = _task(run, {**step, "sla_minutes": step.get(sla_key)}, level=route, now=now)
    return route, step.get("next") or "", None, {"task": task.pk}


# --- conditions -------------------------------------------------------------------------------------------

def condition_holds(*, run: JourneyRun, check: dict, now: datetime) -> bool:
    kind, customer_id = check["kind"], run.customer_id
    if kind == "segment":
        return SegmentMember.objects.filter(segment_id=int(check["segment_id"]), customer_id=customer_id).exists()
    if kind == "tag":
        return CustomerTag.objects.filter(customer_id=customer_id, tag_id=int(check["tag_id"])).exists()
    if kind in ("lifecycle", "rfm5", "rfm6"):
        score = CustomerScore.objects.filter(customer_id=customer_id).values_list(kind, flat=True).first()
        if score is None and kind == "lifecycle":
            score = "new"
        return score == str(check["value"])
    if kind == "event_since_entry":
        event_type = str(check["event_type"])
        if event_type == "order_paid":
            from siyu.commerce.orders.models import Order

            if Order.objects.filter(customer_id=customer_id, paid_at__gte=run.entered_at, paid_at__lte=now).exists():
                return True
        identities = Identity.objects.filter(customer_id=customer_id).values("pk")
        return Event.objects.filter(workspace_id=run.workspace_id, identity_id__in=identities, type=event_type,
                                    occurred_at__gte=run.entered_at, occurred_at__lte=now).exists()
    return False


# --- messages: guards, then the outbox ---------------------------------------------------------------------

def journey_settings(workspace_id: int) -> JourneySettings:
    row = JourneySettings.objects.filter(workspace_id=workspace_id).first()
    return row or JourneySettings(workspace_id=workspace_id)


def marketing_refused(customer_id: int) -> bool:
    """The customer's latest marketing consent is a withdrawal (no record: not refused)."""
    latest = (ConsentRecord.objects.filter(customer_id=customer_id, purpose=ConsentPurpose.MARKETING)
              .order_by("-recorded_at", "-pk").values_list("granted", flat=True).first())
    return latest is False


def _recipient_problem(run: JourneyRun, step: dict, now: datetime) -> str:
    """Why WeChat would not accept this message for this customer ("" when it would).

    ``fanout`` asks the same questions for many runs at once in SQL; keep the two in step (same order, same
    ``reasons`` texts — tests/engagement/journeys/test_fanout_agrees.py)."""
    from siyu.wechat.models import WeChatApp

    channel = step["channel"]
    app = WeChatApp.objects.filter(workspace_id=run.workspace_id, pk=int(step["app_id"]), is_active=True).first()
    if app is None:
        return reasons.NO_ACCOUNT
    if channel in reasons.OPENID_CHANNELS:
        openids = list(Identity.objects.filter(customer_id=run.customer_id, kind="openid", namespace=app.appid)
                       .values_list("value", flat=True))
        if not openids:
            return reasons.NO_OPENID
        if channel in reasons.FOLLOWER_CHANNELS:
            from siyu.wechat.official.models import Follower

            # the follower who wrote last (a merged customer may hold two openids of one account)
            follower = (Follower.objects.filter(app=app, openid__in=openids, subscribed=True)
                        .order_by(F("last_interaction_at").desc(nulls_last=True), "pk").first())
            if follower is None:
                return reasons.NOT_FOLLOWING
            if channel == "official_custom":
                from siyu.wechat.official.rules import custom_window_check

                try:
                    custom_window_check(last_interaction_at=follower.last_interaction_at, sent_since=0, now=now)
                except SiyuError as error:
                    return f"{error.message_zh} / {error.message_en}"[:255]
    return ""


def _limiter(customer_id: int, channel: str) -> None:
    """Lock this customer's counter row for the channel (created on first use) until the transaction ends."""
    ContactLimiter.objects.bulk_create([ContactLimiter(customer_id=customer_id, channel=channel)],
                                       ignore_conflicts=True)
    ContactLimiter.objects.select_for_update().filter(customer_id=customer_id, channel=channel).first()


def cap_counts(*, customer_id: int, channel: str, around) -> dict:
    """Counted messages per Shanghai day within six days either side of ``around``."""
    from django.db.models import Count

    rows = (JourneyMessage.objects.filter(customer_id=customer_id, channel=channel, status__in=CAP_COUNTED,
                                          cap_day__gte=around - timedelta(days=6),
                                          cap_day__lte=around + timedelta(days=6))
            .values("cap_day").annotate(n=Count("pk")).order_by())
    return {row["cap_day"]: row["n"] for row in rows}


def _plan_message(run: JourneyRun, step: dict, now: datetime) -> tuple[str, str, datetime | None, dict]:
    from siyu.core.timeutil import local_day

    channel, following = step["channel"], step.get("next") or ""
    settings_row = journey_settings(run.workspace_id)
    due = after_quiet_hours(now, start=settings_row.quiet_start, end=settings_row.quiet_end)
    day = local_day(due)
    status, error = (MessageStatus.DEFERRED if due > now else MessageStatus.PLANNED), ""
    if marketing_refused(run.customer_id):
        status, error = MessageStatus.SUPPRESSED, reasons.REFUSED
    else:
        error = _recipient_problem(run, step, now)
        if error:
            status = MessageStatus.SUPPRESSED
    if status not in (MessageStatus.SUPPRESSED,):
        _limiter(run.customer_id, channel)
        counts = cap_counts(customer_id=run.customer_id, channel=channel, around=day)
        caps = caps_for(channel, settings_row.caps)
        if not cap_allows(day_count=counts.get(day, 0), week_counts=counts, day=day, caps=caps):
            status, error = MessageStatus.CAPPED, reasons.capped(caps)
    payload = {key: step.get(key) for key in ("app_id", "template_id", "data", "url", "text", "page") if key in step}
    message = JourneyMessage.objects.create(
        workspace_id=run.workspace_id, journey_id=run.journey_id, run=run, step_id=step["id"],
        customer_id=run.customer_id, channel=channel, status=status, payload=payload, due_at=due, cap_day=day,
        idempotency_key=f"j{run.journey_id}-r{run.pk}-{step['id']}"[:64], error=error[:255], created_at=now)
    return status, following, None, {"message": message.pk}


def _plan_webhook(run: JourneyRun, step: dict, now: datetime) -> tuple[str, str, datetime | None, dict]:
    from siyu.core.timeutil import local_day

    message = JourneyMessage.objects.create(
        workspace_id=run.workspace_id, journey_id=run.journey_id, run=run, step_id=step["id"],
        customer_id=run.customer_id, channel="webhook", status=MessageStatus.PLANNED,
        payload={"url": step["url"]}, due_at=now, cap_day=local_day(now),
        idempotency_key=f"j{run.journey_id}-r{run.pk}-{step['id']}"[:64], created_at=now)
    return "queued", step.get("next") or "", None, {"message": message.pk}


# --- staff tasks: SLA escalation ----------------------------------------------------------------------------

def tasks_escalate(*, now: datetime | None = None) -> int:
    """Journey tasks past their SLA: a junior task goes to the experts (with the expert SLA from now); an
    overdue expert task is flagged in its payload for the inbox to show. Returns how many changed."""
    now = now or timezone.now()
    changed = 0
    overdue = StaffTask.objects.filter(source="journey", status__in=[TaskStatus.OPEN, TaskStatus.CLAIMED],
                                       due_at__lt=now).exclude(payload__has_key="overdue_at")
    for task in overdue.order_by("pk")[:500]:
        with transaction.atomic():
            task = StaffTask.objects.select_for_update().filter(pk=task.pk, due_at__lt=now).first()
            if task is None:
                continue
            payload = dict(task.payload)
            if task.level == TaskLevel.JUNIOR and task.status == TaskStatus.OPEN:
                payload["escalated_at"] = now.isoformat()
                task.level = TaskLevel.EXPERT
                task.due_at = now + timedelta(minutes=DEFAULT_SLA_MINUTES[TaskLevel.EXPERT])
            else:
                payload["overdue_at"] = now.isoformat()
            task.payload = payload
            task.save(update_fields=["level", "due_at", "payload"])
            changed += 1
    return changed


def journey_exit_all(*, journey: Journey, now: datetime) -> int:
    """Archiving ends every open run of the journey."""
    return JourneyRun.objects.filter(journey=journey, status=RunStatus.ACTIVE).update(
        status=RunStatus.EXITED, next_at=None, finished_at=now, error="旅程已归档 / journey archived")

