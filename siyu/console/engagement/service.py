"""Console page for 智能客服 (SPEC O9): the bot's switch and confidence threshold, the FAQ (question,
variants, synonyms, answer), keyword rules, a "try it" box (tokens, top matches, scores, what the bot would
do), and answered-by-bot vs handed-off per day. Also the conversation panel of the customer 360 page.

Roles: admins and operators edit; analysts and service staff read (service staff use the staff inbox).
Bad input is refused with a clear message and nothing is written.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from siyu.console import customer_panels
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.engagement.service import selectors, services
from siyu.engagement.service.models import FaqEntry, KeywordRule, MatchKind
from siyu.engagement.service.text import MAX_TEXT

TRY_MAX = MAX_TEXT


def _posted_id(request, field: str) -> int | None:
    raw = request.POST.get(field, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise SiyuError("not_found", "记录不存在", "Record not found", status=404)
    return int(raw)


@console_view()
def service_home(request):
    workspace = request.workspace
    settings_row = services.service_settings(workspace=workspace)
    stats = selectors.stats_daily(workspace=workspace)
    charts = {"service_daily": {"x": stats["days"] if (stats["total_answered"] + stats["total_handed"]
                                                       + stats["total_other"]) else [],
                                "series": [{"name": _("机器人回答"), "y": stats["answered"]},
                                           {"name": _("转人工"), "y": stats["handed"]},
                                           {"name": _("公众号已回复 / 人工处理中"), "y": stats["other"]}]}}
    text = request.GET.get("q", "").strip()[:TRY_MAX]
    trial = None
    if text:
        decision, threshold = selectors.try_it(workspace=workspace, text=text)
        trial = {"text": text, "decision": decision, "threshold": threshold}
    editing = None
    raw_faq = request.GET.get("faq", "")
    if raw_faq.isdigit() and len(raw_faq) <= 18:
        editing = FaqEntry.objects.filter(workspace=workspace, pk=int(raw_faq)).first()
    return page(request, "console/engagement/service/index.html", {
        "settings_row": settings_row, "stats": stats, "charts": charts, "trial": trial,
        "daily_rows": list(zip(stats["days"], stats["answered"], stats["handed"], stats["other"], strict=True)),
        "faqs": selectors.faq_entries(workspace=workspace), "editing": editing,
        "rules": KeywordRule.objects.filter(workspace=workspace).order_by("-priority", "pk"),
        "match_kinds": MatchKind.choices, "can_configure": request.membership.role in MANAGER_ROLES,
    }, active="service")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def service_settings_save(request):
    services.settings_update(workspace=request.workspace, actor=request.user,
                             enabled=request.POST.get("enabled") == "on", threshold=request.POST.get("threshold", ""),
                             handoff_reply=request.POST.get("handoff_reply", ""),
                             handoff_sla_minutes=request.POST.get("handoff_sla_minutes", ""),
                             priority_sla_minutes=request.POST.get("priority_sla_minutes", ""))
    messages.success(request, _("已保存智能客服设置"))
    return redirect("console:service")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def service_faq_save(request):
    entry = services.faq_save(workspace=request.workspace, actor=request.user,
                              faq_id=_posted_id(request, "faq_id"), question=request.POST.get("question", ""),
                              answer=request.POST.get("answer", ""), variants=request.POST.get("variants", ""),
                              synonyms=request.POST.get("synonyms", ""),
                              enabled=request.POST.get("enabled", "on") == "on")
    messages.success(request, _("已保存问答：%(question)s") % {"question": entry.question})
    return redirect(reverse("console:service") + "#faq")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def service_faq_delete(request):
    faq_id = _posted_id(request, "faq_id")
    if faq_id is None:
        raise SiyuError("not_found", "问答不存在", "FAQ entry not found", status=404)
    services.faq_delete(workspace=request.workspace, actor=request.user, faq_id=faq_id)
    messages.success(request, _("已删除问答"))
    return redirect(reverse("console:service") + "#faq")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def service_rule_save(request):
    services.rule_save(workspace=request.workspace, actor=request.user, rule_id=_posted_id(request, "rule_id"),
                       pattern=request.POST.get("pattern", ""), match=request.POST.get("match", ""),
                       reply=request.POST.get("reply", ""), priority=request.POST.get("priority", "0"))
    messages.success(request, _("已保存关键词规则"))
    return redirect(reverse("console:service") + "#rules")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def service_rule_delete(request):
    rule_id = _posted_id(request, "rule_id")
    if rule_id is None:
        raise SiyuError("not_found", "关键词规则不存在", "Keyword rule not found", status=404)
    services.rule_delete(workspace=request.workspace, actor=request.user, rule_id=rule_id)
    messages.success(request, _("已删除关键词规则"))
    return redirect(reverse("console:service") + "#rules")


def conversation_panel_context(request, customer):
    membership = request.membership
    if membership is None or not membership.sees_personal_data:
        return None  # analysts: conversations are personal data
    return {"messages": selectors.customer_conversation(workspace=request.workspace, customer_id=customer.pk)}


customer_panels.register(customer_panels.CustomerPanel(
    key="service_conversation", title=gettext_lazy("客服会话"), order=40,
    template="console/engagement/service/_customer_panel.html", context=conversation_panel_context))

urlpatterns = [
    path("service/", service_home, name="service"),
    path("service/settings/", service_settings_save, name="service_settings_save"),
    path("service/faq/", service_faq_save, name="service_faq_save"),
    path("service/faq/delete/", service_faq_delete, name="service_faq_delete"),
    path("service/rules/", service_rule_save, name="service_rule_save"),
    path("service/rules/delete/", service_rule_delete, name="service_rule_delete"),
]
