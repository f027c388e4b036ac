"""Attach the signed-in staff member's current workspace and membership to the request."""

from __future__ import annotations

from siyu.core.models import Membership


class WorkspaceMiddleware:
    SESSION_KEY = "siyu_workspace_id"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = None
        request.workspace = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            memberships = Membership.objects.select_related("workspace").filter(user=user)
            wanted = request.session.get(self.SESSION_KEY)
            membership = None
            if wanted is not None:
                membership = memberships.filter(workspace_id=wanted).first()
            if membership is None:
                membership = memberships.order_by("workspace_id").first()
            if membership is not None:
                request.membership = membership
                request.workspace = membership.workspace
        return self.get_response(request)
