"""A journey definition (pure, no ORM): its shape, its validation with messages in Chinese and English, and
the deterministic choices a run makes (A/B split, 721 routing).

Shape::

    {"trigger": {"type": "segment_entered", "segment_id": 3, "include_existing": true, "reentry": "once"},
     "entry": "s1",
     "goal": {"event_type": "order_paid", "days": 7},
     "steps": [{"id": "s1", "type": "wait", "minutes": 60, "next": "s2"},
               {"id": "s2", "type": "condition", "check": {"kind": "tag", "tag_id": 5}, "yes": "s3", "no": ""},
               {"id": "s3", "type": "message", "channel": "official_template", "app_id": 1, ...}]}

A step without ``next`` ends the run. The graph must be acyclic, so a run always ends.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from siyu.core.errors import SiyuError

TRIGGER_TYPES = ("event", "segment_entered", "segment_exited", "layer", "date", "tag")
STEP_TYPES = ("wait", "condition", "split", "route721", "message", "tag", "coupon", "points", "task", "webhook",
              "end")
CHANNELS = ("official_template", "official_custom", "miniapp_subscribe", "wecom_mass")
CHECK_KINDS = ("segment", "tag", "lifecycle", "rfm5", "rfm6", "event_since_entry")
LAYER_KINDS = ("lifecycle", "rfm5", "rfm6")
DATE_KINDS = ("birthday", "anniversary", "fixed")
ROUTES = ("auto", "junior", "expert")
DEFAULT_721 = {"auto": 70, "junior": 20, "expert": 10}
STEP_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_STEPS = 50
MAX_WAIT_MINUTES = 60 * 24 * 365


@dataclass(frozen=True)
class Problem:
    where: str  # "trigger", "goal" or a step id
    zh: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "zh": self.zh, "en": self.en}


def _positive_int(value: Any) -> int | None:
    """A positive whole number given as an int or digits ("5"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value) or None
    return None


def _trigger_problems(trigger: Any) -> list[Problem]:
    if not isinstance(trigger, dict) or trigger.get("type") not in TRIGGER_TYPES:
        return [Problem("trigger", "请选择触发方式", "Choose a trigger")]
    kind, found = trigger["type"], []
    if trigger.get("reentry", "once") not in ("once", "every"):
        found.append(Problem("trigger", "重复进入方式只能是 once 或 every", "Re-entry must be once or every"))
    if kind == "event" and not str(trigger.get("event_type") or "").strip():
        found.append(Problem("trigger", "请选择触发事件类型", "Choose the event type"))
    if kind in ("segment_entered", "segment_exited") and _positive_int(trigger.get("segment_id")) is None:
        found.append(Problem("trigger", "请选择人群", "Choose a segment"))
    if kind == "layer":
        if trigger.get("kind") not in LAYER_KINDS:
            found.append(Problem("trigger", "请选择分层类型（生命周期 / RFM）", "Choose the layering (lifecycle / RFM)"))
        if not str(trigger.get("to") or "").strip():
            found.append(Problem("trigger", "请选择进入的层级", "Choose the layer moved into"))
    if kind == "date":
        if trigger.get("kind") not in DATE_KINDS:
            found.append(Problem("trigger", "请选择日期类型（生日 / 首次到访周年 / 固定日期）",
                                 "Choose the date kind (birthday / anniversary / fixed date)"))
        if trigger.get("kind") == "fixed" and not DATE.fullmatch(str(trigger.get("date") or "")):
            found.append(Problem("trigger", "固定日期格式应为 YYYY-MM-DD", "The fixed date must be YYYY-MM-DD"))
        if not HHMM.fullmatch(str(trigger.get("time") or "10:00")):
            found.append(Problem("trigger", "时间格式应为 HH:MM", "The time must be HH:MM"))
    if kind == "tag":
        if _positive_int(trigger.get("tag_id")) is None:
            found.append(Problem("trigger", "请选择标签", "Choose a tag"))
        if trigger.get("change", "added") not in ("added", "removed"):
            found.append(Problem("trigger", "标签变化只能是添加或移除", "The tag change must be added or removed"))
    return found


def _targets(step: dict) -> list[str]:
    kind = step.get("type")
    if kind == "condition":
        return [step.get("yes") or "", step.get("no") or ""]
    if kind == "split":
        return [branch.get("next") or "" for branch in step.get("branches") or [] if isinstance(branch, dict)]
    if kind == "route721":
        return [step.get("auto") or "", step.get("next") or ""]
    return [step.get("next") or ""]


def _step_problems(step: dict) -> list[Problem]:
    sid, kind, found = step["id"], step["type"], []

    def bad(zh: str, en: str) -> None:
        found.append(Problem(sid, zh, en))

    if kind == "wait":
        until = step.get("until")
        if until:
            if not isinstance(until, dict) or not HHMM.fullmatch(str(until.get("time") or "")):
                bad("等待到的时间格式应为 HH:MM", "Wait-until time must be HH:MM")
            elif until.get("weekday") not in (None, "", *range(7), *map(str, range(7))):
                bad("星期应为 0（周一）到 6（周日）", "The weekday must be 0 (Monday) to 6 (Sunday)")
        else:
            minutes = _positive_int(step.get("minutes"))
            if minutes is None or minutes > MAX_WAIT_MINUTES:
                bad("等待时长应为 1 分钟到 365 天之间的整数分钟", "Wait a whole number of minutes, 1 minute to 365 days")
    elif kind == "condition":
        check = step.get("check")
        if not isinstance(check, dict) or check.get("kind") not in CHECK_KINDS:
            bad("请选择判断条件", "Choose what the condition checks")
        else:
            need = {"segment": "segment_id", "tag": "tag_id"}.get(check["kind"])
            if need and _positive_int(check.get(need)) is None:
                bad("请选择判断所用的人群或标签", "Choose the segment or tag the condition checks")
            if check["kind"] in LAYER_KINDS and not str(check.get("value") or "").strip():
                bad("请选择判断的层级", "Choose the layer the condition checks")
            if check["kind"] == "event_since_entry" and not str(check.get("event_type") or "").strip():
                bad("请选择事件类型（例如 order_paid 表示「已下单」）", "Choose the event type (e.g. order_paid for 'ordered')")
    elif kind == "split":
        branches = step.get("branches")
        if not isinstance(branches, list) or not 2 <= len(branches) <= 5 or not all(
                isinstance(branch, dict) for branch in branches):
            bad("A/B 分流需要 2 到 5 个分支", "An A/B split needs 2 to 5 branches")
        else:
            weights = [_positive_int(branch.get("weight")) for branch in branches]
            if any(weight is None for weight in weights):
                bad("每个分支的权重应为正整数", "Each branch weight must be a positive whole number")
            names = [str(branch.get("name") or "").strip() for branch in branches]
            if any(not name for name in names) or len(set(names)) != len(names):
                bad("每个分支需要不同的名称（如 A、B）", "Each branch needs its own name (e.g. A, B)")
    elif kind == "route721":
        weights = step.get("weights") or DEFAULT_721
        if not isinstance(weights, dict) or set(weights) != set(ROUTES) or any(
                isinstance(weights[route], bool) or not isinstance(weights[route], int) or weights[route] < 0
                for route in ROUTES) or not sum(weights.values()):
            bad("721 分配需要自动/初级/专家三个非负整数权重，且总和大于 0",
                "The 721 routing needs three non-negative whole weights (auto/junior/expert) that sum above 0")
        if not str(step.get("title") or "").strip():
            bad("请填写人工任务标题", "Enter the staff task title")
    elif kind == "message":
        channel = step.get("channel")
        if channel not in CHANNELS:
            bad("请选择发送渠道", "Choose a channel")
        if _positive_int(step.get("app_id")) is None:
            bad("请选择发送的公众号 / 小程序 / 企业微信", "Choose the account to send from")
        if channel in ("official_template", "miniapp_subscribe"):
            if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", str(step.get("template_id") or "")):
                bad("请填写模板 ID", "Enter the template id")
            data = step.get("data")
            if not isinstance(data, dict) or not data:
                bad("模板数据不能为空，例如 {\"first\": \"…\"}", "Template data cannot be empty, e.g. {\"first\": \"…\"}")
        if channel in ("official_custom", "wecom_mass") and not str(step.get("text") or "").strip():
            bad("请填写消息内容", "Enter the message text")
        url = str(step.get("url") or "")
        if url and not url.startswith(("http://", "https://")):
            bad("跳转链接必须以 http(s):// 开头", "The link must start with http(s)://")
    elif kind == "tag":
        if step.get("action", "add") not in ("add", "remove"):
            bad("标签操作只能是添加或移除", "The tag action must be add or remove")
        if _positive_int(step.get("tag_id")) is None:
            bad("请选择标签", "Choose a tag")
    elif kind == "coupon":
        if _positive_int(step.get("template_id")) is None:
            bad("请选择优惠券", "Choose a coupon")
    elif kind == "points":
        amount = _positive_int(step.get("amount"))
        if amount is None or amount > 100_000:
            bad("积分数量应为 1 到 100000 的整数", "Points must be a whole number from 1 to 100,000")
    elif kind == "task":
        if not str(step.get("title") or "").strip():
            bad("请填写任务标题", "Enter the task title")
        if step.get("level", "junior") not in ("junior", "expert"):
            bad("任务级别只能是初级或专家", "The task level must be junior or expert")
        if step.get("sla_minutes") not in (None, "") and _positive_int(step.get("sla_minutes")) is None:
            bad("SLA 时长应为正整数分钟", "The SLA must be a positive number of minutes")
    elif kind == "webhook":
        url = str(step.get("url") or "")
        if not url.startswith(("http://", "https://")):
            bad("Webhook 地址必须以 http(s):// 开头", "The webhook URL must start with http(s)://")
        if not isinstance(step.get("secret_enc"), str) or not step["secret_enc"]:
            bad("请设置签名密钥（至少 8 个字符）", "Set the signing secret (8 characters at least)")
    return found


def problems(definition: Any) -> list[Problem]:
    """Everything wrong with a definition (empty: valid)."""
    if not isinstance(definition, dict):
        return [Problem("journey", "旅程定义格式不正确", "The journey definition is malformed")]
    found = _trigger_problems(definition.get("trigger"))
    goal = definition.get("goal")
    if goal not in (None, {}) and (not isinstance(goal, dict) or not str(goal.get("event_type") or "").strip()
                                   or _positive_int(goal.get("days")) is None):
        found.append(Problem("goal", "转化目标需要事件类型和天数", "The goal needs an event type and a number of days"))
    steps = definition.get("steps")
    if not isinstance(steps, list) or not steps:
        return [*found, Problem("steps", "至少需要一个步骤", "Add at least one step")]
    if len(steps) > MAX_STEPS:
        return [*found, Problem("steps", f"步骤最多 {MAX_STEPS} 个", f"At most {MAX_STEPS} steps")]
    by_id: dict[str, dict] = {}
    for index, step in enumerate(steps, 1):
        if not isinstance(step, dict) or not STEP_ID.fullmatch(str(step.get("id") or "")):
            found.append(Problem(f"#{index}", "步骤 ID 只能是 1-32 位字母、数字、_ 或 -",
                                 "A step id is 1-32 letters, digits, _ or -"))
            continue
        if step.get("type") not in STEP_TYPES:
            found.append(Problem(step["id"], "未知的步骤类型", "Unknown step type"))
            continue
        if step["id"] in by_id:
            found.append(Problem(step["id"], "步骤 ID 重复", "Duplicate step id"))
            continue
        by_id[step["id"]] = step
        found.extend(_step_problems(step))
    entry = definition.get("entry") or (steps[0].get("id") if isinstance(steps[0], dict) else "")
    if entry not in by_id:
        found.append(Problem("entry", "起始步骤不存在", "The first step does not exist"))
    for sid, step in by_id.items():
        for target in _targets(step):
            if target and target not in by_id:
                found.append(Problem(sid, f"指向的步骤「{target}」不存在", f"Points to a missing step '{target}'"))
    if not found:
        cycle = _cycle(by_id)
        if cycle:
            found.append(Problem(cycle, "步骤之间形成了循环，旅程将无法结束", "The steps form a loop; the journey could never end"))
    return found


def _cycle(by_id: dict[str, dict]) -> str:
    state: dict[str, int] = {}

    def visit(sid: str) -> str:
        state[sid] = 1
        for target in _targets(by_id[sid]):
            if not target:
                continue
            if state.get(target) == 1:
                return target
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[sid] = 2
        return ""

    for sid in by_id:
        if sid not in state:
            found = visit(sid)
            if found:
                return found
    return ""


def validate(definition: Any) -> dict:
    """The definition, or a ``journey_invalid`` error listing every problem in both languages."""
    found = problems(definition)
    if found:
        raise SiyuError("journey_invalid", "旅程设置有误：" + "；".join(f"[{p.where}] {p.zh}" for p in found),
                        "The journey is not valid: " + "; ".join(f"[{p.where}] {p.en}" for p in found),
                        details={"problems": [p.as_dict() for p in found]})
    return definition


def steps_by_id(definition: dict) -> dict[str, dict]:
    return {step["id"]: step for step in definition.get("steps") or []}


def entry_step(definition: dict) -> str:
    return definition.get("entry") or definition["steps"][0]["id"]


def bucket(*, key: str, customer_id: int) -> float:
    """A stable number in [0, 1) per (key, customer): the same customer always takes the same branch."""
    digest = hashlib.sha256(f"{key}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def weighted_choice(*, weights: list[tuple[str, int]], key: str, customer_id: int) -> str:
    """The name whose share of the total weight holds this customer's bucket."""
    total = sum(weight for _, weight in weights)
    point = bucket(key=key, customer_id=customer_id) * total
    for name, weight in weights:
        if point < weight:
            return name
        point -= weight
    return weights[-1][0]
