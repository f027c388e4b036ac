"""Console page for RFM 分层与生命周期: both presets side by side (customers per layer, the rule and the
recommended strategy beside each layer), editable thresholds, lifecycle stages, moves over time, "recompute
now" with progress, the customers of a layer, and the RFM panel of the customer 360 page.

Roles: admins and operators edit thresholds and recompute; analysts read; service staff get 403.
Bad input is refused with a clear message and nothing is written.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console import customer_panels
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.engagement.rfm import selectors
from siyu.engagement.rfm.models import RunState
from siyu.engagement.rfm.presets import KINDS, LIFECYCLE, PRESETS, RFM5, RFM6, Preset
from siyu.engagement.rfm.services import (
    rfm_run_request,
    rfm_settings_of,
    rfm_thresholds_update,
    thresholds_of,
)

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})
KIND_NAMES = {RFM5: gettext_lazy("五层分层"), RFM6: gettext_lazy("六类 RFM"), LIFECYCLE: gettext_lazy("生命周期")}


def _english() -> bool:
    return not (get_language() or "zh").startswith("zh")


def _layer_rows(preset: Preset, counts: dict[str, int], english: bool) -> list[dict]:
    total = sum(counts.values()) or 1
    return [{"code": layer.code, "name": layer.name_en if english else layer.name_zh,
             "rule": layer.rule_en if english else layer.rule_zh,
             "strategy": layer.strategy_en if english else layer.strategy_zh,
             "count": counts[layer.code], "share": f"{100 * counts[layer.code] / total:.1f}"}
            for layer in preset.layers]


def _threshold_rows(preset: Preset, values: dict[str, int], english: bool) -> list[dict]:
    rows = []
    for item in preset.thresholds:
        value = values[item.key]
        rows.append({"key": item.key, "label": item.label_en if english else item.label_zh, "unit": item.unit,
                     "value": f"{value / 100:.2f}" if item.unit == "fen" else str(value),
                     "step": "0.01" if item.unit == "fen" else "1"})
    return rows


def _chart(rows: list[dict]) -> dict:
    if not any(row["count"] for row in rows):
        return {"x": [], "series": []}
    return {"x": [row["name"] for row in rows], "series": [{"name": _("客户数"), "y": [row["count"] for row in rows]}]}


@console_view(roles=VIEW_ROLES)
def rfm_overview(request):
    workspace = request.workspace
    english = _english()
    settings_row = rfm_settings_of(workspace=workspace)
    thresholds = thresholds_of(settings_row)
    presets = []
    charts = {}
    for kind in KINDS:
        preset = PRESETS[kind]
        rows = _layer_rows(preset, selectors.layer_counts(workspace=workspace, kind=kind), english)
        charts[kind] = _chart(rows)
        presets.append({"kind": kind, "title": preset.name_en if english else preset.name_zh, "rows": rows,
                        "thresholds": _threshold_rows(preset, thresholds[kind], english),
                        "total": sum(row["count"] for row in rows)})
    moves = selectors.moves_daily(workspace=workspace, days=30)
    charts["moves"] = {"x": moves["days"] if any(sum(v) for v in moves["series"].values()) else [],
                       "series": [{"name": str(KIND_NAMES[kind]), "y": moves["series"][kind]} for kind in KINDS]}
    return page(request, "console/engagement/rfm/overview.html", {
        "presets": presets[:2], "lifecycle": presets[2], "charts": charts, "run": settings_row,
        "running": settings_row.run_state in (RunState.QUEUED, RunState.RUNNING),
        "can_configure": request.membership.role in MANAGER_ROLES,
    }, active="rfm")


def _parse(preset: Preset, post) -> dict[str, int]:
    values = {}
    for item in preset.thresholds:
        raw = (post.get(item.key) or "").strip()
        label_zh, label_en = item.label_zh, item.label_en
        if item.unit == "fen":
            try:
                amount = Decimal(raw)
            except InvalidOperation as error:
                raise SiyuError("rfm_threshold_invalid", f"“{label_zh}”必须是金额（元）",
                                f"“{label_en}” must be an amount in yuan", details={"key": item.key}) from error
            if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")) or abs(amount) > 10**10:
                raise SiyuError("rfm_threshold_invalid", f"“{label_zh}”最多两位小数",
                                f"“{label_en}” takes at most two decimals", details={"key": item.key})
            values[item.key] = int(amount * 100)
        else:
            digits = raw[1:] if raw.startswith("-") else raw
            if not digits.isdigit() or len(digits) > 12:
                raise SiyuError("rfm_threshold_invalid", f"“{label_zh}”必须是整数",
                                f"“{label_en}” must be a whole number", details={"key": item.key})
            values[item.key] = int(raw)
    return values


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def rfm_thresholds_save(request, kind: str):
    preset = PRESETS.get(kind)
    if preset is None:
        raise SiyuError("rfm_preset_unknown", "未知的分层方案", "Unknown layering preset", status=404)
    rfm_thresholds_update(workspace=request.workspace, kind=kind, values=_parse(preset, request.POST),
                          actor=request.user)
    messages.success(request, _("已保存阈值；点击“立即重新计算”或等待每日凌晨的计算后生效"))
    return redirect(reverse("console:rfm") + f"#preset-{kind}")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def rfm_recompute_now(request):
    from siyu.engagement.rfm.tasks import rfm_recompute_task

    rfm_run_request(workspace=request.workspace, actor=request.user)
    rfm_recompute_task(request.workspace.pk)
    messages.success(request, _("已开始重新计算，进度见下方"))
    return redirect(reverse("console:rfm") + "#run")


@console_view(roles=VIEW_ROLES)
def rfm_status(request):
    row = rfm_settings_of(workspace=request.workspace)
    return JsonResponse({"state": row.run_state, "phase": row.run_phase, "progress": row.run_progress,
                         "error": row.run_error, "summary": row.run_summary})


@console_view(roles=VIEW_ROLES)
def rfm_layer_customers(request):
    kind, code = request.GET.get("kind", ""), request.GET.get("layer", "")
    preset = PRESETS.get(kind)
    layer = preset.layer(code) if preset else None
    if layer is None:
        raise SiyuError("rfm_layer_unknown", "未知的分层", "Unknown layer", status=404)
    english = _english()
    paginator = Paginator(selectors.layer_members(workspace=request.workspace, kind=kind, code=code), 50)
    page_obj = paginator.get_page(request.GET.get("page", "1"))
    return page(request, "console/engagement/rfm/customers.html", {
        "kind": kind, "kind_name": preset.name_en if english else preset.name_zh,
        "layer_name": layer.name_en if english else layer.name_zh, "layer_rule": layer.rule_en if english else layer.rule_zh,
        "strategy": layer.strategy_en if english else layer.strategy_zh, "page_obj": page_obj,
        "query_string": f"kind={kind}&layer={code}", "param": "page",
    }, active="rfm")


def _layer_name(kind: str, code: str, english: bool) -> str:
    layer = PRESETS[kind].layer(code)
    if layer is None:
        return code or "—"
    return layer.name_en if english else layer.name_zh


def rfm_panel_context(request, customer) -> dict | None:
    membership = getattr(request, "membership", None)
    if membership is None or membership.role not in VIEW_ROLES:
        return None
    english = _english()
    score = selectors.customer_score(customer=customer)
    moves = [{"at": move.at, "kind": str(KIND_NAMES.get(move.kind, move.kind)),
              "from": _layer_name(move.kind, move.from_code, english) if move.from_code else "—",
              "to": _layer_name(move.kind, move.to_code, english)}
             for move in selectors.customer_moves(customer=customer)] if score else []
    layers = [{"kind": kind, "kind_name": str(KIND_NAMES[kind]), "code": getattr(score, kind),
               "name": _layer_name(kind, getattr(score, kind), english)} for kind in KINDS] if score else []
    return {"score": score, "layers": layers, "moves": moves}


customer_panels.register(customer_panels.CustomerPanel(
    key="rfm", title=gettext_lazy("RFM 分层与生命周期"), order=10,
    template="console/engagement/rfm/_customer_panel.html", context=rfm_panel_context))

urlpatterns = [
    path("rfm/", rfm_overview, name="rfm"),
    path("rfm/thresholds/<slug:kind>/", rfm_thresholds_save, name="rfm_thresholds_save"),
    path("rfm/recompute/", rfm_recompute_now, name="rfm_recompute"),
    path("rfm/status/", rfm_status, name="rfm_status"),
    path("rfm/customers/", rfm_layer_customers, name="rfm_customers"),
]
