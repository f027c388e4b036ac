"""Console pages for 社群运营 (SPEC O7): groups by type linked to WeCom customer groups, each group's
activity against its type's expected range, rules and moderation, the weekly rhythm per type, KOC and
their incentives, and the message-bridge key.

Roles: admins and operators edit; service staff read the groups they own (and their moderation log);
analysts read numbers without personal data (no member lists, senders, excerpts or KOC names).
Bad input is refused with a clear message and nothing is written.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from siyu.console import customer_panels
from siyu.console.access import MANAGER_ROLES, console_view, error_page
from siyu.console.rendering import page
from siyu.core.errors import SiyuError, not_found
from siyu.core.models import Membership
from siyu.core.timeutil import local_day
from siyu.engagement.communities import domain, selectors
from siyu.engagement.communities.koc import koc_evaluate, period_of
from siyu.engagement.communities.models import (
    EVERY_DAY,
    CommunityRule,
    CommunityType,
    RhythmAction,
    RhythmRun,
    RuleAction,
    RuleKind,
)
from siyu.engagement.communities.rhythm import rhythm_run_due, rhythm_slot_save, rhythm_slots
from siyu.engagement.communities.services import (
    bridge_secret_rotate,
    community_create,
    community_rule_save,
    community_update,
    member_set_by_hand,
    members_sync,
    settings_for,
    settings_update,
)

PERSONAL_ROLES = frozenset({"admin", "operator", "service"})  # may see who said what
WEEKDAYS = [(0, gettext_lazy("周一")), (1, gettext_lazy("周二")), (2, gettext_lazy("周三")), (3, gettext_lazy("周四")),
            (4, gettext_lazy("周五")), (5, gettext_lazy("周六")), (6, gettext_lazy("周日")),
            (EVERY_DAY, gettext_lazy("每天"))]


def _role(request) -> str:
    return request.membership.role


def _visible(request):
    return selectors.communities_visible(workspace=request.workspace, user=request.user, role=_role(request))


def _community(request, community_id):
    community = _visible(request).filter(pk=community_id).first()
    if community is None:
        raise not_found("社群", "Community")
    return community


def _refused(request, error: SiyuError, back: str):
    messages.error(request, error.message_zh if (request.LANGUAGE_CODE or "zh").startswith("zh")
                   else error.message_en)
    return redirect(back)


@console_view()
def community_list(request):
    rows = selectors.community_rows(communities=_visible(request))
    owners = Membership.objects.filter(workspace=request.workspace).select_related("user").order_by("user__username")
    return page(request, "console/engagement/communities/list.html", {
        "rows": rows, "types": CommunityType.choices, "can_manage": _role(request) in MANAGER_ROLES,
        "groups": selectors.unlinked_groups(workspace=request.workspace) if _role(request) in MANAGER_ROLES else [],
        "owners": owners, "ranges": [(label, *domain.expected_range(value)) for value, label in CommunityType.choices],
    }, active="community")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_create_view(request):
    back = reverse("console:communities")
    try:
        community = community_create(workspace=request.workspace, name=request.POST.get("name"),
                                     type=request.POST.get("type"), chat_id=request.POST.get("chat_id", ""),
                                     owner_id=request.POST.get("owner_id"), actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    messages.success(request, _("已创建社群：%(name)s") % {"name": community.name})
    return redirect("console:community_detail", community_id=community.pk)


@console_view()
def community_detail(request, community_id: int):
    community = _community(request, community_id)
    personal = _role(request) in PERSONAL_ROLES
    metrics = selectors.daily_metrics(community=community)
    low, high = domain.expected_range(community.type, community.expected_min, community.expected_max)
    days = [row["day"].strftime("%m-%d") for row in metrics]
    has_data = any(row["messages"] or row["joins"] or row["leaves"] for row in metrics)
    charts = {
        "messages_daily": {"x": days if has_data else [], "series": [
            {"name": _("日发言量"), "y": [row["messages"] for row in metrics]}]},
        "members_daily": {"x": days if has_data else [], "series": [
            {"name": _("活跃成员"), "y": [row["active"] for row in metrics]},
            {"name": _("入群"), "y": [row["joins"] for row in metrics]},
            {"name": _("退群"), "y": [row["leaves"] for row in metrics]}]},
    }
    rules = {rule.kind: rule for rule in CommunityRule.objects.filter(community=community)}
    owners = Membership.objects.filter(workspace=request.workspace).select_related("user").order_by("user__username")
    return page(request, "console/engagement/communities/detail.html", {
        "community": community, "metrics": metrics, "charts": charts, "low": low, "high": high,
        "rule_rows": [(kind, label, rules.get(kind)) for kind, label in RuleKind.choices],
        "actions": RuleAction.choices, "types": CommunityType.choices, "owners": owners,
        "members": selectors.members(community=community) if personal else None,
        "member_count": community.members.filter(left_at=None).count(),
        "records": selectors.moderation_log(workspace=request.workspace, community=community, limit=50),
        "personal": personal, "can_manage": _role(request) in MANAGER_ROLES,
    }, active="community")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_update_view(request, community_id: int):
    community = _community(request, community_id)
    back = reverse("console:community_detail", args=[community.pk])
    try:
        community_update(workspace=request.workspace, community=community, name=request.POST.get("name"),
                         type=request.POST.get("type"), owner_id=request.POST.get("owner_id"),
                         rules_text=request.POST.get("rules", ""), expected_min=request.POST.get("expected_min"),
                         expected_max=request.POST.get("expected_max"),
                         escalate_after=request.POST.get("escalate_after"), active=bool(request.POST.get("active")),
                         actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    messages.success(request, _("已保存社群设置"))
    return redirect(back)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_rule_view(request, community_id: int):
    community = _community(request, community_id)
    back = reverse("console:community_detail", args=[community.pk]) + "#rules"
    try:
        community_rule_save(workspace=request.workspace, community=community, kind=request.POST.get("kind"),
                            keywords=request.POST.get("keywords", ""), threshold=request.POST.get("threshold") or 0,
                            window_seconds=request.POST.get("window_seconds") or 0,
                            actions=request.POST.getlist("actions"), active=bool(request.POST.get("active")),
                            actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    messages.success(request, _("已保存规则"))
    return redirect(back)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_sync_view(request, community_id: int):
    community = _community(request, community_id)
    result = members_sync(community=community)
    messages.success(request, _("已同步成员：新入群 %(joined)s，退群 %(left)s") % result)
    return redirect("console:community_detail", community_id=community.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_member_view(request, community_id: int):
    community = _community(request, community_id)
    back = reverse("console:community_detail", args=[community.pk]) + "#members"
    present = request.POST.get("present") == "1"
    try:
        changed = member_set_by_hand(workspace=request.workspace, community=community,
                                     customer_id=request.POST.get("customer_id", ""), present=present,
                                     actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    if changed:
        messages.success(request, _("已加入社群") if present else _("已移出社群"))
    else:
        messages.info(request, _("没有变化"))
    return redirect(back)


@console_view()
def community_moderation(request):
    personal = _role(request) in PERSONAL_ROLES
    return page(request, "console/engagement/communities/moderation.html", {
        "records": selectors.moderation_log(workspace=request.workspace, communities=_visible(request)),
        "personal": personal,
    }, active="community")


@console_view()
def community_rhythm(request):
    kind = request.GET.get("type") or CommunityType.NEWCOMER
    if kind not in CommunityType.values:
        return error_page(request, SiyuError("community_type_invalid", "未知的群类型", "Unknown group type"))
    slots = rhythm_slots(workspace=request.workspace, community_type=kind)
    runs = (RhythmRun.objects.filter(community__in=_visible(request)).select_related("community", "slot")
            .order_by("-planned_at")[:30])
    return page(request, "console/engagement/communities/rhythm.html", {
        "kind": kind, "kind_label": CommunityType(kind).label, "types": CommunityType.choices,
        "slots": sorted(slots, key=lambda s: (s.weekday, s.at)), "weekdays": WEEKDAYS,
        "rhythm_actions": RhythmAction.choices, "runs": runs, "can_manage": _role(request) in MANAGER_ROLES,
    }, active="community")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_rhythm_save(request):
    kind = request.POST.get("type", "")
    back = reverse("console:community_rhythm") + f"?type={kind if kind in CommunityType.values else ''}"
    try:
        rhythm_slot_save(workspace=request.workspace, community_type=kind, slot_id=request.POST.get("slot_id"),
                         weekday=request.POST.get("weekday"), at=request.POST.get("at"),
                         theme=request.POST.get("theme"), content=request.POST.get("content", ""),
                         action=request.POST.get("action"), active=bool(request.POST.get("active")),
                         actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    messages.success(request, _("已保存节奏项"))
    return redirect(back)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_rhythm_run(request):
    produced = rhythm_run_due(workspace=request.workspace)
    messages.success(request, _("已生成 %(n)s 项到点的节奏任务（已生成过的不会重复）") % {"n": produced})
    return redirect(reverse("console:community_rhythm") + f"?type={request.POST.get('type', '')}")


@console_view()
def community_koc(request):
    today = local_day(timezone.now())
    period = request.GET.get("period") or domain.previous_period(period_of(timezone.now()))
    if not domain.valid_period(period):
        return error_page(request, SiyuError("koc_period_invalid", "周期格式应为 YYYY-MM", "The period must be YYYY-MM"))
    personal = _role(request) in PERSONAL_ROLES
    awards = selectors.koc_awards(workspace=request.workspace, period=period, communities=_visible(request),
                                  workspace_wide=_role(request) != selectors.SERVICE_ROLE)
    config = settings_for(workspace=request.workspace)
    incentives = selectors.koc_incentives(workspace=request.workspace, period=period) if personal else {}
    for award in awards:
        award.incentive = incentives.get(award.customer_id)
    return page(request, "console/engagement/communities/koc.html", {
        "period": period, "this_period": today.strftime("%Y-%m"), "awards": awards if personal else [],
        "award_count": len(awards), "config": config, "weights": domain.WEIGHTS, "cap": domain.DAILY_MESSAGE_CAP,
        "steps": [(step, *names, (config.step_points or [0, 0, 0])[step - 1]) for step, names in
                  domain.STEP_NAMES.items()],
        "communities": _visible(request).order_by("name"), "personal": personal,
        "can_manage": _role(request) in MANAGER_ROLES, "is_admin": _role(request) == "admin",
    }, active="community")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_koc_evaluate(request):
    period = request.POST.get("period", "")
    back = reverse("console:community_koc") + (f"?period={period}" if domain.valid_period(period) else "")
    try:
        result = koc_evaluate(workspace=request.workspace, period=period, actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    messages.success(request, _("已评选 %(period)s：KOC %(kocs)s 位，新发放激励 %(incentives)s 份") % {
        "period": period, **result})
    return redirect(back)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def community_settings_view(request):
    back = reverse("console:community_koc")
    try:
        settings_update(workspace=request.workspace, koc_percent=request.POST.get("koc_percent"),
                        step_points=[request.POST.get(f"step{n}") for n in (1, 2, 3)],
                        coupon_template_id=request.POST.get("coupon_template_id"),
                        honor_community_id=request.POST.get("honor_community_id"), actor=request.user)
    except SiyuError as error:
        return _refused(request, error, back)
    messages.success(request, _("已保存 KOC 设置"))
    return redirect(back)


@require_POST
@console_view(edit=True, roles=frozenset({"admin"}))
def community_bridge_key(request):
    key_id, secret = bridge_secret_rotate(workspace=request.workspace, actor=request.user)
    return page(request, "console/engagement/communities/bridge_key.html", {"key_id": key_id, "secret": secret,
                                                                            "url": "/api/v1/communities/messages"},
                active="community")


def _customer_panel(request, customer):
    if request.membership is None or request.membership.role not in PERSONAL_ROLES:
        return None
    return selectors.customer_communities(customer=customer)


customer_panels.register(customer_panels.CustomerPanel(
    key="communities", title=gettext_lazy("社群"), order=40,
    template="console/engagement/communities/_customer_panel.html", context=_customer_panel))

urlpatterns = [
    path("communities/", community_list, name="communities"),
    path("communities/new/", community_create_view, name="community_create"),
    path("communities/<int:community_id>/", community_detail, name="community_detail"),
    path("communities/<int:community_id>/edit/", community_update_view, name="community_update"),
    path("communities/<int:community_id>/rules/", community_rule_view, name="community_rule"),
    path("communities/<int:community_id>/sync/", community_sync_view, name="community_sync"),
    path("communities/<int:community_id>/members/", community_member_view, name="community_member"),
    path("communities/moderation/", community_moderation, name="community_moderation"),
    path("communities/rhythm/", community_rhythm, name="community_rhythm"),
    path("communities/rhythm/save/", community_rhythm_save, name="community_rhythm_save"),
    path("communities/rhythm/run/", community_rhythm_run, name="community_rhythm_run"),
    path("communities/koc/", community_koc, name="community_koc"),
    path("communities/koc/evaluate/", community_koc_evaluate, name="community_koc_evaluate"),
    path("communities/settings/", community_settings_view, name="community_settings"),
    path("communities/bridge-key/", community_bridge_key, name="community_bridge_key"),
]
