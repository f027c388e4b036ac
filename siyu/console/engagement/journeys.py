"""Console pages for 自动化旅程 (SOP automation): list and guards, the editor, the report, the customer panel.

Roles: admins and operators create, edit, activate and pause; analysts read; service staff get 403. The editor
posts the definition as JSON (``siyu.engagement.journeys.definition``); refusals list every problem in the
console's language. "Run time forward" is offered only when Siyu talks to the WeChat simulator.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from siyu.console import customer_panels
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.engagement.journeys import selectors, services, webhook_secrets
from siyu.engagement.journeys.definition import CHANNELS, DEFAULT_721
from siyu.engagement.journeys.engine import journey_settings
from siyu.engagement.journeys.models import Channel, MessageStatus
from siyu.engagement.journeys.schedule import DEFAULT_CAPS, caps_for

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})


def _english() -> bool:
    return (get_language() or "zh").startswith("en")


def _say(error: SiyuError) -> str:
    return error.message_en if _english() else error.message_zh


def _problems(error: SiyuError) -> list[dict]:
    english = _english()
    return [{"where": item["where"], "text": item["en" if english else "zh"]}
            for item in (error.details or {}).get("problems", [])]


def _can_manage(request) -> bool:
    return request.membership.role in MANAGER_ROLES


def _simulated() -> bool:
    return bool(getattr(settings, "SIYU_WECHAT_BASE_URL", ""))


@console_view(roles=VIEW_ROLES, edit=True)
def journey_list(request):
    workspace = request.workspace
    if request.method == "POST":
        try:
            if request.POST.get("action") == "settings":
                caps = {channel: {"day": request.POST.get(f"{channel}_day", ""),
                                  "week": request.POST.get(f"{channel}_week", "")} for channel in DEFAULT_CAPS}
                services.settings_update(workspace=workspace, caps=caps, quiet_start=request.POST.get("quiet_start"),
                                         quiet_end=request.POST.get("quiet_end"), actor=request.user)
                messages.success(request, _("已保存频次上限和免打扰时段"))
                return redirect("console:journeys")
            journey = services.journey_create(workspace=workspace, name=request.POST.get("name"), actor=request.user,
                                              description=request.POST.get("description", ""))
        except SiyuError as error:
            messages.error(request, _say(error))
            return redirect("console:journeys")
        return redirect("console:journey_edit", journey_id=journey.pk)
    guards = journey_settings(workspace.pk)
    caps = [{"channel": channel, "label": Channel(channel).label, **caps_for(channel, guards.caps)}
            for channel in DEFAULT_CAPS]
    return page(request, "console/engagement/journeys/list.html", {
        "rows": selectors.journey_list(workspace=workspace), "can_manage": _can_manage(request),
        "caps": caps, "guards": guards,
    }, active="journeys")


def _options(request) -> dict:
    """What the editor's pickers offer: this workspace's segments, tags, coupons, accounts, events, layers."""
    from siyu.commerce.promotions.models import CouponTemplate
    from siyu.customers.event_catalogue import BUILTIN
    from siyu.customers.models import EventDefinition, Tag
    from siyu.engagement.rfm.presets import PRESETS
    from siyu.engagement.segments.models import Segment
    from siyu.wechat.models import WeChatApp

    workspace, english = request.workspace, _english()
    events = {item.name: (item.label_en if english else item.label_zh) for item in BUILTIN}
    for name, label in EventDefinition.objects.filter(workspace=workspace).values_list("name", "label"):
        events.setdefault(name, label or name)
    layers = {kind: [[layer.code, layer.name_en if english else layer.name_zh] for layer in preset.layers]
              for kind, preset in PRESETS.items()}
    return {
        "segments": [[pk, name] for pk, name in Segment.objects.filter(workspace=workspace, archived=False)
                     .order_by("name").values_list("pk", "name")],
        "tags": [[pk, f"{group} / {name}"] for pk, group, name in Tag.objects.filter(workspace=workspace)
                 .exclude(kind="rule").order_by("group__name", "name").values_list("pk", "group__name", "name")],
        "coupons": [[pk, name] for pk, name in CouponTemplate.objects.filter(workspace=workspace)
                    .order_by("-pk").values_list("pk", "name")[:200]],
        "apps": [[pk, f"{name} ({kind})", kind] for pk, name, kind in WeChatApp.objects.filter(
            workspace=workspace, is_active=True, kind__in=["official", "miniapp", "work"]).values_list("pk", "name", "kind")],
        "events": sorted([[name, f"{label} ({name})"] for name, label in events.items()]),
        "layers": layers,
        "channels": [[channel, str(Channel(channel).label)] for channel in CHANNELS],
    }


def _labels() -> dict:
    """Every label the editor script shows, in the console's language."""
    return {
        "trigger_types": [["segment_entered", _("进入人群")], ["segment_exited", _("离开人群")],
                          ["event", _("客户事件")], ["layer", _("生命周期 / RFM 分层变化")],
                          ["date", _("日期 / 周年")], ["tag", _("标签变化")]],
        "step_types": [["wait", _("等待")], ["condition", _("条件判断")], ["split", _("A/B 分流")],
                       ["route721", _("721 人工分配")], ["message", _("发送微信消息")], ["tag", _("打标签")],
                       ["coupon", _("发优惠券")], ["points", _("发积分")], ["task", _("员工任务")],
                       ["webhook", _("Webhook")], ["end", _("结束")]],
        "check_kinds": [["segment", _("在人群中")], ["tag", _("有标签")], ["lifecycle", _("生命周期阶段")],
                        ["rfm5", _("五层分层")], ["rfm6", _("六类分层")],
                        ["event_since_entry", _("进入后发生过事件（如已下单）")]],
        "layer_kinds": [["lifecycle", _("生命周期")], ["rfm5", _("五层分层（种子 002）")],
                        ["rfm6", _("六类分层（种子 003）")]],
        "date_kinds": [["birthday", _("生日（客户属性 birthday）")], ["anniversary", _("首次到访周年")],
                       ["fixed", _("固定日期")]],
        "weekdays": [["", _("每天")], ["0", _("周一")], ["1", _("周二")], ["2", _("周三")], ["3", _("周四")],
                     ["4", _("周五")], ["5", _("周六")], ["6", _("周日")]],
        "tag_actions": [["add", _("添加")], ["remove", _("移除")]],
        "tag_changes": [["added", _("被添加")], ["removed", _("被移除")]],
        "levels": [["junior", _("初级员工")], ["expert", _("专家")]],
        "reentry": [["once", _("每位客户只进入一次")], ["every", _("每次触发都进入")]],
        "f": {
            "segment_id": _("人群"), "event_type": _("事件类型"), "kind": _("类型"), "to": _("进入层级"),
            "from": _("原层级（可空）"), "date": _("日期 YYYY-MM-DD"), "time": _("时间 HH:MM"), "tag_id": _("标签"),
            "change": _("变化"), "include_existing": _("启用时纳入当前成员"), "reentry": _("重复进入"),
            "minutes": _("等待分钟数"), "until_time": _("或等到时间 HH:MM"), "until_weekday": _("星期"),
            "check_kind": _("判断"), "value": _("层级"), "yes": _("满足时 →"), "no": _("不满足时 →"),
            "next": _("下一步 →"), "branch_a": _("分支 A 权重"), "branch_b": _("分支 B 权重"),
            "a_next": _("分支 A →"), "b_next": _("分支 B →"), "auto": _("自动化 % "), "junior": _("初级员工 %"),
            "expert": _("专家 %"), "auto_next": _("自动化路径 →"), "title": _("任务标题"), "body": _("任务说明"),
            "sla_junior": _("初级 SLA（分钟）"), "sla_expert": _("专家 SLA（分钟）"), "channel": _("渠道"),
            "app_id": _("发送账号"), "template_id": _("模板 ID"), "data": _("模板数据（JSON）"), "url": _("跳转链接"),
            "text": _("消息内容"), "page": _("小程序页面"), "action": _("操作"), "coupon": _("优惠券"),
            "amount": _("积分"), "level": _("级别"), "sla_minutes": _("SLA（分钟）"), "webhook_url": _("地址"),
            "secret": _("签名密钥"), "secret_set": _("已设置，留空则保持不变"), "secret_unset": _("未设置"),
            "goal_event": _("转化目标事件"), "goal_days": _("转化窗口（天）"),
        },
        "end": _("结束"), "remove": _("删除"), "up": _("上移"), "add": _("添加步骤"), "none": _("（请选择）"),
        "bad_json": _("模板数据不是有效的 JSON"),
    }


def _editor(request, journey, *, status: int = 200, problems=None, definition=None):
    report_runs = journey.runs.exists() if journey.pk else False
    return page(request, "console/engagement/journeys/edit.html", {
        # never a secret in the page, not even one just typed into a refused form: only "set" or not
        "journey": journey,
        "definition": webhook_secrets.public(definition if definition is not None else journey.definition),
        "options": _options(request), "labels": _labels(), "problems": problems or [],
        "can_manage": _can_manage(request), "has_runs": report_runs, "default_721": DEFAULT_721,
    }, active="journeys", status=status)


@console_view(roles=VIEW_ROLES, edit=True)
def journey_edit(request, journey_id: int):
    workspace = request.workspace
    journey = services.journey_get(workspace=workspace, journey_id=journey_id)
    if request.method != "POST":
        return _editor(request, journey)
    action = request.POST.get("action", "save")
    try:
        if action in ("save", "activate"):
            try:
                definition = json.loads(request.POST.get("definition") or "")
            except ValueError:
                raise SiyuError("journey_bad_json", "旅程定义不是有效的 JSON", "The journey definition is not valid JSON") \
                    from None
            journey = services.journey_save(workspace=workspace, journey_id=journey.pk, definition=definition,
                                            name=request.POST.get("name", journey.name),
                                            description=request.POST.get("description", journey.description),
                                            actor=request.user)
            if action == "activate":
                services.journey_activate(workspace=workspace, journey_id=journey.pk, actor=request.user)
                messages.success(request, _("旅程已启用（版本 %(version)s）") % {"version": journey.version + 1})
            else:
                messages.success(request, _("草稿已保存"))
        elif action == "pause":
            services.journey_pause(workspace=workspace, journey_id=journey.pk, actor=request.user)
            messages.success(request, _("旅程已暂停"))
        elif action == "resume":
            services.journey_resume(workspace=workspace, journey_id=journey.pk, actor=request.user)
            messages.success(request, _("旅程已恢复"))
        elif action == "archive":
            services.journey_archive(workspace=workspace, journey_id=journey.pk, actor=request.user)
            messages.success(request, _("旅程已归档"))
        else:
            raise SiyuError("invalid_input", "未知操作", "Unknown action")
    except SiyuError as error:
        journey.refresh_from_db()
        messages.error(request, _("未保存：请修改下列问题") if error.code == "journey_invalid" else _say(error))
        posted = request.POST.get("definition")
        try:
            definition = json.loads(posted) if posted else None
        except ValueError:
            definition = None
        return _editor(request, journey, status=error.status, problems=_problems(error),
                       definition=definition if isinstance(definition, dict) else None)
    return redirect("console:journey_edit", journey_id=journey.pk)


def _fen(value: int) -> str:
    return f"¥{value / 100:,.2f}"


@console_view(roles=VIEW_ROLES, edit=True)
def journey_report(request, journey_id: int):
    journey = services.journey_get(workspace=request.workspace, journey_id=journey_id)
    if request.method == "POST":
        return _run_forward(request, journey)
    report = selectors.journey_report(journey=journey)
    statuses = [(status, MessageStatus(status).label, report["messages"].get(status, 0)) for status in MessageStatus]
    charts = {
        "entries": {"x": [day for day, _n in report["per_day"]], "y": [n for _d, n in report["per_day"]],
                    "name": _("进入人数")},
        "messages": {"x": [str(label) for _s, label, _n in statuses],
                     "series": [{"name": _("消息"), "y": [n for _s, _l, n in statuses]}]},
        "steps": {"x": [row["id"] for row in report["steps"]],
                  "series": [{"name": _("当前停留"), "y": [row["current"] for row in report["steps"]]}]},
    }
    variants = [{"name": name, **row, "revenue": _fen(row["revenue_fen"])} for name, row in report["variants"].items()]
    return page(request, "console/engagement/journeys/report.html", {
        "journey": journey, "report": report, "statuses": statuses, "charts": charts, "variants": variants,
        "revenue": _fen(report["total"]["revenue_fen"]), "can_run": _can_manage(request) and _simulated(),
        "run_default": (timezone.now() + timedelta(days=1)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M"),
    }, active="journeys")


def _run_forward(request, journey):
    """Simulator mode only: process everything due up to the chosen time (as ``siyu journeys_run --until``)."""
    from siyu.engagement.journeys.runner import run_until

    if not _can_manage(request) or not _simulated():
        raise SiyuError("forbidden", "只有在微信模拟器模式下，管理员和运营才能快进时间",
                        "Only admins and operators, in simulator mode, may run time forward", status=403)
    raw = request.POST.get("until", "")
    try:
        until = datetime.fromisoformat(raw)
    except ValueError:
        messages.error(request, _("时间格式不正确"))
        return redirect("console:journey_report", journey_id=journey.pk)
    until = until if until.tzinfo else until.replace(tzinfo=SHANGHAI)
    now = timezone.now()
    if until <= now or until > now + timedelta(days=60):
        messages.error(request, _("请选择未来 60 天内的时间"))
        return redirect("console:journey_report", journey_id=journey.pk)
    totals = run_until(until=until, start=now)
    messages.success(request, _("已运行到 %(until)s：推进 %(advanced)s 次，发送 %(delivered)s 条") % {
        "until": until.strftime("%Y-%m-%d %H:%M"), "advanced": totals["advanced"], "delivered": totals["delivered"]})
    return redirect("console:journey_report", journey_id=journey.pk)


def _customer_panel(request, customer):
    if request.membership is None or request.membership.role not in VIEW_ROLES:
        return None
    return {"runs": selectors.customer_runs(customer=customer),
            "messages": selectors.customer_messages(customer=customer, limit=10)}


customer_panels.register(customer_panels.CustomerPanel(
    key="journeys", title=gettext_lazy("自动化旅程"), order=40,
    template="console/engagement/journeys/_customer_panel.html", context=_customer_panel))

urlpatterns = [
    path("journeys/", journey_list, name="journeys"),
    path("journeys/<int:journey_id>/", journey_edit, name="journey_edit"),
    path("journeys/<int:journey_id>/report/", journey_report, name="journey_report"),
]
