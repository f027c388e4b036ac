"""Console page for 消费者登录(小程序与网页授权): logins per day, live sessions, subscribe-message
authorisations per template, recent logins (masked), and revoking a customer's sessions."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import console_view
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.customers.selectors import customer_get
from siyu.wechat.consumer.selectors import (
    logins_daily,
    logins_recent,
    sessions_active,
    subscribe_authorisations_by_template,
)
from siyu.wechat.consumer.sessions import consumer_sessions_revoke

DAYS = 30
REVOKE_ROLES = frozenset({"admin", "operator", "service"})


@console_view()
def consumer_page(request):
    workspace = request.workspace
    daily = logins_daily(workspace=workspace, days=DAYS)
    chart = {"x": daily["days"] if daily["total"] else [],
             "series": [{"name": _("小程序"), "y": daily["series"]["miniapp"]},
                        {"name": _("H5 网页授权"), "y": daily["series"]["h5"]}]}
    return page(request, "console/wechat/consumer/index.html", {
        "charts": {"logins_daily": chart},
        "logins_total": daily["total"],
        "active": sessions_active(workspace=workspace),
        "templates": subscribe_authorisations_by_template(workspace=workspace),
        "recent": logins_recent(workspace=workspace, membership=request.membership),
        "can_revoke": request.membership.role in REVOKE_ROLES,
        "days": DAYS,
    }, active="wechat_consumer")


@require_POST
@console_view(edit=True, roles=REVOKE_ROLES)
def consumer_sessions_revoke_view(request):
    raw = request.POST.get("customer_id", "").strip()
    if not raw.isdigit():
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    customer = customer_get(workspace=request.workspace, membership=request.membership, customer_id=int(raw))
    count = consumer_sessions_revoke(workspace=request.workspace, customer=customer, actor=request.user)
    messages.success(request, _("已让客户 #%(id)s 的 %(count)s 个登录会话失效") % {"id": customer.pk, "count": count})
    return redirect("console:wechat_consumer")


urlpatterns = [
    path("consumer/", consumer_page, name="wechat_consumer"),
    path("consumer/revoke/", consumer_sessions_revoke_view, name="wechat_consumer_revoke"),
]
