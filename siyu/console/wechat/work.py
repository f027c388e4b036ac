"""Console pages for 企业微信: the overview (staff with customers and today's adds against their caps,
customer groups, mass-send and moments tasks, transfers) and the 「联系我」 codes per channel.
Operators and admins edit; analysts read; service staff have no access."""

from __future__ import annotations

from django.contrib import messages
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.channels.models import Channel
from siyu.console.access import MANAGER_ROLES, console_view
from siyu.console.rendering import page
from siyu.console.wechat.accounts import account_back, account_chosen, account_required
from siyu.core.channel_codes import CHANNELS, channel_label
from siyu.core.errors import SiyuError
from siyu.core.timeutil import local_day
from siyu.customers.models import Tag
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.credentials import apps_of
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.work import campaigns, contact_ways, selectors, transfers
from siyu.wechat.work.models import (
    ContactWay,
    MassSend,
    MomentTask,
    Staff,
    StaffStatus,
    Transfer,
)
from siyu.wechat.work.tasks import app_sync_task
from siyu.wechat.work.wecom import RateLimited

READERS = frozenset({"admin", "operator", "analyst"})


def _app(request) -> WeChatApp | None:
    return account_chosen(request, AppKind.WORK)


def _posted_app(request) -> WeChatApp:
    return account_required(request, AppKind.WORK)


def _back(app: WeChatApp, name: str = "console:wechat_work", anchor: str = ""):
    return account_back(app, name, anchor)


@console_view(roles=READERS)
def work_overview(request):
    app = _app(request)
    context: dict = {"corps": apps_of(workspace=request.workspace, kind=AppKind.WORK), "app": app, "can_manage": request.membership.role in MANAGER_ROLES}
    if app is not None:
        context.update(
            staff_rows=selectors.staff_rows(app=app),
            active_staff=Staff.objects.filter(app=app, status=StaffStatus.ACTIVE).order_by("userid"),
            left_staff=Staff.objects.filter(app=app, status=StaffStatus.LEFT).order_by("userid"),
            customers=selectors.customer_count(app=app),
            groups=selectors.groups_with_members(app=app),
            sends=selectors.mass_sends(app=app),
            moments=MomentTask.objects.filter(app=app).order_by("-pk")[:20],
            transfers=Transfer.objects.filter(app=app).select_related("handover", "takeover").order_by("-pk")[:50],
            tags=Tag.objects.filter(workspace=request.workspace, kind="manual").select_related("group")
            .order_by("group__name", "name"),
            month_limit=campaigns.monthly_limit(),
        )
    return page(request, "console/wechat/work/overview.html", context, active="wechat_work")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def work_sync(request):
    app = _posted_app(request)
    app_sync_task(app.pk)
    messages.success(request, _("已开始同步成员、客户标签和客户群"))
    return _back(app)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def work_mass_send_create(request):
    app = _posted_app(request)
    customer_ids = campaigns.mass_send_customers(app=app, tag_id=request.POST.get("tag_id") or None)
    try:
        mass = campaigns.mass_send_create(workspace=request.workspace, app=app, text=request.POST.get("text", ""),
                                          customer_ids=customer_ids, actor=request.user,
                                          skip_over_limit=request.POST.get("skip_over_limit") == "on")
    except RateLimited:
        messages.warning(request, _("企业微信接口繁忙，群发任务已排队，稍后自动重试"))
        return _back(app, anchor="sends")
    except WeChatApiError as error:
        raise SiyuError(error.code, error.message_zh, error.message_en, status=502) from error
    if mass.status == "failed":
        messages.error(request, _("企业微信拒绝了群发任务：%(error)s") % {"error": mass.error})
    else:
        note = _("（%(n)s 位客户本月已达上限，已跳过）") % {"n": mass.skipped_over_limit} if mass.skipped_over_limit else ""
        messages.success(request, _("群发任务已创建，等待各成员在企业微信中确认发送") + note)
    return _back(app, anchor="sends")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def work_moment_create(request):
    app = _posted_app(request)
    task = campaigns.moment_create(workspace=request.workspace, app=app, text=request.POST.get("text", ""),
                                   staff_ids=request.POST.getlist("staff_id"), actor=request.user)
    if task.status == "failed":
        messages.error(request, _("企业微信拒绝了朋友圈任务：%(error)s") % {"error": task.error})
    else:
        messages.success(request, _("朋友圈任务已创建，成员在企业微信中发表"))
    return _back(app, anchor="moments")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def work_refresh(request):
    """Ask WeCom now for confirmations, delivery, moments and transfers (the task does it every 5 min)."""
    app = _posted_app(request)
    try:
        for mass in MassSend.objects.filter(app=app, status="created"):
            campaigns.mass_send_refresh(mass)
        for task in MomentTask.objects.filter(app=app, status="running"):
            campaigns.moment_refresh(task)
        transfers.transfers_refresh(app)
    except (RateLimited, WeChatApiError) as error:
        raise SiyuError("wecom_refresh_failed", "企业微信暂时无法查询，请稍后再试", "WeCom cannot be queried now; "
                        "try again later", status=503, details={"error": str(error)}) from error
    messages.success(request, _("已从企业微信更新任务状态"))
    return _back(app)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def work_transfer(request):
    app = _posted_app(request)
    count = transfers.transfer_request(workspace=request.workspace, app=app, actor=request.user,
                                       handover_id=request.POST.get("handover_id", ""),
                                       takeover_id=request.POST.get("takeover_id", ""))
    messages.success(request, _("已提交 %(n)s 位客户的转接，企业微信 24 小时后完成") % {"n": count})
    return _back(app, anchor="transfers")


# --- 「联系我」 -----------------------------------------------------------------------------------------

@console_view(roles=READERS)
def contact_ways_page(request):
    app = _app(request)
    context: dict = {"corps": apps_of(workspace=request.workspace, kind=AppKind.WORK), "app": app, "can_manage": request.membership.role in MANAGER_ROLES}
    if app is not None:
        ways = list(ContactWay.objects.filter(app=app, active=True).select_related("fallback")
                    .prefetch_related("tags", "members__staff").order_by("channel", "pk"))
        today = local_day(timezone.now())
        for way in ways:
            added = contact_ways.adds_today(way, today=today)
            way.channel_name = channel_label(way.channel)
            way.rotation_rows = [{"member": member, "added": added.get(member.staff_id, 0),
                                  "paused": member.paused_on == today} for member in way.members.all()]
            way.by_day = selectors.adds_by_day(way=way, today=today)
            way.full = contact_ways.is_full(way, today=today)
        edit = None
        edit_id = request.GET.get("edit", "")
        if edit_id.isdigit():
            edit = next((way for way in ways if way.pk == int(edit_id)), None)
        members = {member.staff_id: member for member in edit.members.all()} if edit else {}
        context.update(
            ways=ways, edit=edit,
            staff_choices=[{"staff": staff, "member": members.get(staff.pk)} for staff in
                           Staff.objects.filter(app=app, status=StaffStatus.ACTIVE).order_by("userid")],
            channels=_channel_choices(request.workspace),
            tags=Tag.objects.filter(workspace=request.workspace, kind="manual").select_related("group")
            .order_by("group__name", "name"),
            edit_tag_ids={tag.pk for tag in edit.tags.all()} if edit else set(),
            default_cap=100,
        )
    return page(request, "console/wechat/work/contact_ways.html", context, active="contact_ways")


def _channel_choices(workspace) -> list[tuple[str, str]]:
    """The workspace's registered channels (SPEC T1), or the standard ones before any are registered."""
    registered = list(Channel.objects.filter(workspace=workspace, active=True).order_by("pk").values_list("code", "name"))
    return registered or [(channel.code, channel_label(channel.code)) for channel in CHANNELS]


def _posted_members(request) -> list[tuple[str, str]]:
    """The checked staff in form order with their caps (``staff_id`` list and ``cap_<id>`` fields)."""
    return [(staff_id, request.POST.get(f"cap_{staff_id}", "").strip()) for staff_id in request.POST.getlist("staff_id")]


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def contact_way_save(request):
    app = _posted_app(request)
    way_id = request.POST.get("way_id", "")
    try:
        way = contact_ways.contact_way_save(
            workspace=request.workspace, app=app, name=request.POST.get("name", ""),
            channel=request.POST.get("channel", ""), members=_posted_members(request),
            tag_ids=request.POST.getlist("tag_id"), welcome_text=request.POST.get("welcome_text", ""),
            fallback_id=request.POST.get("fallback_id") or None,
            way_id=int(way_id) if way_id.isdigit() else None, actor=request.user)
    except (RateLimited, WeChatApiError) as error:
        raise SiyuError("wecom_contact_way_failed", f"企业微信未能保存「联系我」码：{error.message_zh}",
                        f"WeCom did not save the contact code: {error.message_en}", status=502) from error
    messages.success(request, _("已保存「联系我」码：%(name)s") % {"name": way.name})
    return _back(app, "console:wechat_contact_ways")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def contact_way_delete(request):
    app = _posted_app(request)
    way_id = request.POST.get("way_id", "")
    try:
        contact_ways.contact_way_delete(workspace=request.workspace, way_id=int(way_id) if way_id.isdigit() else 0,
                                        actor=request.user)
    except (RateLimited, WeChatApiError) as error:
        raise SiyuError("wecom_contact_way_failed", f"企业微信未能删除「联系我」码：{error.message_zh}",
                        f"WeCom did not delete the contact code: {error.message_en}", status=502) from error
    messages.success(request, _("已停用该「联系我」码"))
    return _back(app, "console:wechat_contact_ways")


urlpatterns = [
    path("work/", work_overview, name="wechat_work"),
    path("work/sync", work_sync, name="wechat_work_sync"),
    path("work/refresh", work_refresh, name="wechat_work_refresh"),
    path("work/mass-send", work_mass_send_create, name="wechat_work_mass_send"),
    path("work/moments", work_moment_create, name="wechat_work_moment"),
    path("work/transfer", work_transfer, name="wechat_work_transfer"),
    path("work/contact-ways/", contact_ways_page, name="wechat_contact_ways"),
    path("work/contact-ways/save", contact_way_save, name="wechat_contact_way_save"),
    path("work/contact-ways/delete", contact_way_delete, name="wechat_contact_way_delete"),
]
