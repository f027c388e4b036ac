"""Who may open which console page: login, a membership in the current workspace, and a role that may edit.

A refusal is a ``SiyuError`` rendered as a friendly page with its HTTP status (403/404), never a trace.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.utils.translation import get_language

from siyu.console.rendering import page
from siyu.core.errors import SiyuError, forbidden


def console_view(*, edit: bool = False, roles: frozenset[str] | None = None):
    """Decorate a console view.

    edit: POST requests need a role that can edit (analysts are read-only).
    roles: when given, only these roles may use the view at all.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = request.membership
            try:
                if membership is None:
                    raise SiyuError("no_workspace", "您还不属于任何工作空间", "You are not a member of any workspace",
                                    status=403)
                if roles is not None and membership.role not in roles:
                    raise forbidden()
                if edit and request.method == "POST" and not membership.can_edit:
                    raise SiyuError("read_only", "您的角色只能查看，不能修改", "Your role is read-only", status=403)
                return view(request, *args, **kwargs)
            except SiyuError as error:
                return error_page(request, error)

        return wrapped

    return decorator


def error_page(request, error: SiyuError):
    message = error.message_zh if (get_language() or "zh").startswith("zh") else error.message_en
    return page(request, "console/error.html", {"error": error, "message": message}, status=error.status)


MANAGER_ROLES = frozenset({"admin", "operator"})


def posted_object(request, model, field: str, what_zh: str, what_en: str):
    """The row of ``model`` in the current workspace whose id the form posted as ``field``, or a 404."""
    raw = request.POST.get(field, "")
    row = model.objects.filter(workspace=request.workspace, pk=raw).first() if raw.isdigit() else None
    if row is None:
        raise SiyuError("not_found", f"{what_zh}不存在", f"{what_en} not found", status=404)
    return row

