"""Render a console page with what the layout needs: navigation, memberships, the current role."""

from __future__ import annotations

from django.shortcuts import render

from siyu.console.navigation import NAVIGATION
from siyu.core.models import Membership


def page(request, template: str, context: dict, *, active: str = "", status: int = 200):
    memberships = list(Membership.objects.filter(user=request.user).select_related("workspace")
                       .order_by("workspace__name")) if request.user.is_authenticated else []
    layout = {
        "navigation": NAVIGATION,
        "active_nav": active,
        "memberships": memberships,
        "membership": request.membership,
        "can_edit": bool(request.membership and request.membership.can_edit),
    }
    return render(request, template, {**layout, **context}, status=status)
