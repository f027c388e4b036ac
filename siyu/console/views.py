"""Console shell: dashboard, workspace switcher, and the honest "not built yet" pages."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from siyu.console.access import console_view
from siyu.console.dashboard import dashboard_context
from siyu.console.navigation import ITEMS_BY_KEY
from siyu.console.rendering import page
from siyu.core.middleware import WorkspaceMiddleware
from siyu.core.models import Membership


@console_view()
def dashboard(request):
    return page(request, "console/dashboard.html",
                dashboard_context(workspace=request.workspace), active="dashboard")


@console_view()
def not_built(request, key: str):
    item = ITEMS_BY_KEY.get(key)
    if item is None or item.built:
        raise Http404
    return page(request, "console/not_built.html", {"item": item}, active=key)


@require_POST
@console_view()
def workspace_switch(request):
    workspace_id = request.POST.get("workspace_id", "")
    membership = Membership.objects.filter(user=request.user, workspace_id=workspace_id).first() \
        if workspace_id.isdigit() else None
    if membership is None:
        raise Http404
    request.session[WorkspaceMiddleware.SESSION_KEY] = membership.workspace_id
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)
