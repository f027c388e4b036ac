"""Console pages for 客户分群: list, the visual builder with a live count, members, export, refresh.

Roles: admins and operators build and refresh; analysts read (names and phones masked, also in exports);
service staff get 403. The builder posts its condition tree as JSON (``segments.conditions``); the live
count endpoint answers ``{"count", "text"}`` or ``{"error"}`` as the user edits.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from io import BytesIO

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console import customer_panels
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.channel_codes import channel_label
from siyu.core.crypto import mask_name, mask_phone
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.core.timeutil import SHANGHAI
from siyu.engagement.segments import selectors, services
from siyu.engagement.segments.models import SegmentMember

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})
PAGE_SIZE = 25
CSV_EXPORT_MAX = 1_000_000  # streamed
XLSX_EXPORT_MAX = 100_000
LIVE_COUNT_TIMEOUT_MS = 20_000  # built in memory; bigger segments export as CSV
EXAMPLE = {"version": 1, "root": {"and": [
    {"field": "event", "type": "product_view", "op": "gte", "count": 2, "days": 7},
    {"field": "event", "type": "order_paid", "op": "eq", "count": 0, "days": 7}]}}


def _english() -> bool:
    return (get_language() or "zh").startswith("en")


def _page_number(request) -> int:
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 10**6 else 1


def _operator_labels() -> dict[str, str]:
    return {"eq": _("等于"), "ne": _("不等于"), "in": _("属于"), "not_in": _("不属于"),
            "within_days": _("在近 N 天内"), "older_than_days": _("在 N 天以前"),
            "exists": _("已填写"), "not_exists": _("未填写"), "has": _("有"), "has_not": _("没有"),
            "gte": "≥", "lte": "≤", "member": _("在群中"), "not_member": _("不在群中")}


def _builder_context(request, *, definition: dict | None) -> dict:
    options = selectors.builder_options(workspace=request.workspace, english=_english())
    options["operators"] = _operator_labels()
    return {
        "options_json": options,
        "definition_json": definition or {"version": 1, "root": {"and": []}},
        "count_url": reverse("console:segment_count"),
    }


def _parse_definition(raw: str) -> dict:
    try:
        definition = json.loads(raw or "")
    except ValueError as error:
        raise SiyuError("segment_bad_json", "分群条件不是有效的 JSON", "The conditions are not valid JSON") from error
    return definition


def _refresh_minutes(raw: str | None) -> int:
    text = (raw or "60").strip()
    if not text.isdigit() or len(text) > 6:
        raise SiyuError("segment_bad_refresh", "自动刷新间隔必须是分钟数", "The refresh interval must be whole minutes")
    return int(text)


@console_view(roles=VIEW_ROLES)
def segment_list(request):
    segments = list(selectors.segment_list(workspace=request.workspace))
    english = _english()
    rows = [{"segment": segment,
             "text": selectors.segment_describe(segment_or_definition=segment, workspace=request.workspace,
                                                english=english)} for segment in segments]
    return page(request, "console/engagement/segments/list.html", {
        "rows": rows, "can_manage": request.membership.role in MANAGER_ROLES,
    }, active="segments")


@console_view(roles=MANAGER_ROLES, edit=True)
def segment_new(request):
    form = {"name": "", "description": "", "refresh_minutes": 60}
    definition = None
    if request.method == "POST":
        form = {key: request.POST.get(key, "") for key in ("name", "description", "refresh_minutes")}
        raw = request.POST.get("definition", "")
        try:
            definition = _parse_definition(raw)
            segment = services.segment_create(workspace=request.workspace, actor=request.user, name=form["name"],
                                              description=form["description"], definition=definition,
                                              refresh_minutes=_refresh_minutes(form["refresh_minutes"]))
        except SiyuError as error:
            messages.error(request, error.message_en if _english() else error.message_zh)
            definition = definition if isinstance(definition, dict) else None
            return page(request, "console/engagement/segments/edit.html", {
                "form": form, "segment": None, **_builder_context(request, definition=definition),
            }, active="segments", status=error.status)
        messages.success(request, _("已创建分群：%(name)s") % {"name": segment.name})
        return redirect("console:segment_detail", segment_id=segment.pk)
    return page(request, "console/engagement/segments/edit.html", {
        "form": form, "segment": None, **_builder_context(request, definition=definition),
    }, active="segments")


@console_view(roles=MANAGER_ROLES, edit=True)
def segment_edit(request, segment_id: int):
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    form = {"name": segment.name, "description": segment.description, "refresh_minutes": segment.refresh_minutes}
    definition = segment.definition
    status = 200
    if request.method == "POST":
        form = {key: request.POST.get(key, "") for key in ("name", "description", "refresh_minutes")}
        try:
            definition = _parse_definition(request.POST.get("definition", ""))
            services.segment_update(segment=segment, actor=request.user, name=form["name"],
                                    description=form["description"], definition=definition,
                                    refresh_minutes=_refresh_minutes(form["refresh_minutes"]))
        except SiyuError as error:
            messages.error(request, error.message_en if _english() else error.message_zh)
            definition = definition if isinstance(definition, dict) else segment.definition
            status = error.status
        else:
            messages.success(request, _("已保存分群"))
            return redirect("console:segment_detail", segment_id=segment.pk)
    return page(request, "console/engagement/segments/edit.html", {
        "form": form, "segment": segment, **_builder_context(request, definition=definition),
    }, active="segments", status=status)


def _personal(customer, membership) -> tuple[str, str]:
    name, phone = customer.name or "", customer.phone or ""
    if membership.sees_personal_data:
        return name, phone
    return mask_name(name), mask_phone(phone)


@console_view(roles=VIEW_ROLES)
def segment_detail(request, segment_id: int):
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    members = Paginator(selectors.segment_members(segment=segment), PAGE_SIZE).get_page(_page_number(request))
    language = get_language() or "zh-hans"
    entered = dict(SegmentMember.objects.filter(segment=segment, customer_id__in=[c.pk for c in members.object_list])
                   .values_list("customer_id", "entered_at"))
    rows = []
    for customer in members.object_list:
        name, phone = _personal(customer, request.membership)
        rows.append({"customer": customer, "name": name, "phone": phone, "entered_at": entered.get(customer.pk),
                     "first_channel_label": channel_label(customer.first_channel, language)})
    return page(request, "console/engagement/segments/detail.html", {
        "segment": segment,
        "text": selectors.segment_describe(segment_or_definition=segment, workspace=request.workspace,
                                           english=_english()),
        "members": members,
        "rows": rows,
        "param": "page",
        "can_manage": request.membership.role in MANAGER_ROLES,
        "definition_pretty": json.dumps(segment.definition, ensure_ascii=False, indent=2),
        "xlsx_max": XLSX_EXPORT_MAX,
    }, active="segments")


@console_view(roles=VIEW_ROLES)
def segment_count(request):
    """The live count: POST {"definition": {...}} → {"count": n, "text": "…"}; bad trees → 400 {"error"}."""
    if request.method != "POST":
        return JsonResponse({"error": {"code": "method_not_allowed", "message": "请使用 POST",
                                       "message_en": "Use POST"}}, status=405)
    try:
        body = json.loads(request.body or b"{}")
        definition = body.get("definition") if isinstance(body, dict) else None
    except ValueError:
        definition = None
    if definition is None:
        error = SiyuError("segment_bad_json", "请求必须是 {\"definition\": …} JSON", 'Send JSON {"definition": …}')
        return JsonResponse({"error": error.as_dict()}, status=400)
    try:
        count = services.segment_count(workspace=request.workspace, definition=definition,
                                       timeout_ms=LIVE_COUNT_TIMEOUT_MS)
    except SiyuError as error:
        return JsonResponse({"error": error.as_dict()}, status=error.status)
    text = selectors.segment_describe(segment_or_definition=definition, workspace=request.workspace,
                                      english=_english())
    return JsonResponse({"count": count, "text": text})


@require_POST
@console_view(roles=MANAGER_ROLES, edit=True)
def segment_refresh_now(request, segment_id: int):
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    result = services.segment_refresh(segment=segment)
    audit_record(workspace=request.workspace, actor=request.user, action="segment.refresh", target_type="segment",
                 target_id=segment.pk, **result)
    messages.success(request, _("已刷新：新进入 %(entered)s 人，退出 %(exited)s 人，共 %(members)s 人") % result)
    return redirect("console:segment_detail", segment_id=segment.pk)


@require_POST
@console_view(roles=MANAGER_ROLES, edit=True)
def segment_archive(request, segment_id: int):
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    services.segment_archive(segment=segment, actor=request.user)
    messages.success(request, _("已归档分群：%(name)s") % {"name": segment.name})
    return redirect("console:segments")


# --- export -----------------------------------------------------------------------------------------

def _export_header() -> list[str]:
    return [_("客户编号"), _("姓名"), _("手机号"), _("性别"), _("城市"), _("首次来源渠道"), _("首次访问"), _("最近访问"),
            _("进入分群时间")]


def _local(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _export_rows(segment, membership, limit: int, language: str):
    members = (SegmentMember.objects.filter(segment=segment, customer__status="active")
               .select_related("customer").order_by("customer_id")[:limit])
    for member in members.iterator(chunk_size=2000):
        customer = member.customer
        name, phone = _personal(customer, membership)
        yield [customer.pk, name, phone, customer.gender, customer.city, channel_label(customer.first_channel, language),
               _local(customer.first_seen_at), _local(customer.last_seen_at), _local(member.entered_at)]


class _Echo:
    def write(self, value):
        return value


@console_view(roles=VIEW_ROLES)
def segment_export(request, segment_id: int):
    segment = selectors.segment_get(workspace=request.workspace, segment_id=segment_id)
    kind = request.GET.get("format", "csv")
    if kind not in ("csv", "xlsx"):
        raise SiyuError("segment_bad_export_format", "导出格式只支持 csv 或 xlsx", "Export formats: csv or xlsx")
    membership = request.membership
    language = get_language() or "zh-hans"
    total = SegmentMember.objects.filter(segment=segment).count()
    limit = CSV_EXPORT_MAX if kind == "csv" else XLSX_EXPORT_MAX
    stamp = timezone.now().astimezone(SHANGHAI).strftime("%Y%m%d-%H%M")
    filename = f"segment-{segment.pk}-{stamp}.{kind}"
    audit_record(workspace=request.workspace, actor=request.user, action="segment.export", target_type="segment",
                 target_id=segment.pk, format=kind, rows=min(total, limit), truncated=total > limit,
                 personal_data_in_clear=membership.sees_personal_data)
    if kind == "csv":
        writer = csv.writer(_Echo())

        def stream():
            yield "\ufeff"  # Excel opens UTF-8 CSV with Chinese text correctly only with a BOM
            yield writer.writerow(_export_header())
            for row in _export_rows(segment, membership, limit, language):
                yield writer.writerow(row)

        response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    else:
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(title=_("分群成员")[:31])
        sheet.append(_export_header())
        for row in _export_rows(segment, membership, limit, language):
            sheet.append(row)
        buffer = BytesIO()
        workbook.save(buffer)
        response = HttpResponse(buffer.getvalue(),
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Segment-Rows"] = str(min(total, limit))
    return response


# --- customer 360 panel -----------------------------------------------------------------------------

def _customer_panel(request, customer) -> dict | None:
    return {"segments": selectors.customer_segments(customer=customer),
            "can_open": request.membership is not None and request.membership.role in VIEW_ROLES}


customer_panels.register(customer_panels.CustomerPanel(
    key="segments", title=gettext_lazy("所在分群"), order=20,
    template="console/engagement/segments/_customer_panel.html", context=_customer_panel))


urlpatterns = [
    path("segments/", segment_list, name="segments"),
    path("segments/new/", segment_new, name="segment_new"),
    path("segments/count/", segment_count, name="segment_count"),
    path("segments/<int:segment_id>/", segment_detail, name="segment_detail"),
    path("segments/<int:segment_id>/edit/", segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/refresh/", segment_refresh_now, name="segment_refresh"),
    path("segments/<int:segment_id>/archive/", segment_archive, name="segment_archive"),
    path("segments/<int:segment_id>/export/", segment_export, name="segment_export"),
]
