"""Tag management: groups, manual tags, rule tags, and bulk tagging of a filtered customer list."""

from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import MANAGER_ROLES, console_view, posted_object
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.customers import tagging
from siyu.customers.models import Tag, TagGroup, TagKind
from siyu.customers.selectors import CustomerFilter, customer_search, tag_groups_with_counts


@console_view()
def tags_page(request):
    return page(request, "console/tags.html", {
        "groups": tag_groups_with_counts(workspace=request.workspace),
        "can_manage": request.membership.role in MANAGER_ROLES,
        "rule_example": json.dumps(RULE_EXAMPLE, ensure_ascii=False, indent=2),
    }, active="tags")


RULE_EXAMPLE = {"all": [{"event": "order_paid", "min_count": 2, "within_days": 90},
                        {"attribute": "first_channel", "equals": "store"}]}


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def tag_group_create(request):
    group = tagging.tag_group_create(workspace=request.workspace, name=request.POST.get("name", "").strip(),
                                     exclusive=request.POST.get("exclusive") == "on", actor=request.user)
    messages.success(request, _("已创建标签组：%(name)s") % {"name": group.name})
    return redirect("console:tags")


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def tag_create(request):
    group = posted_object(request, TagGroup, "group_id", "标签组", "Tag group")
    rule_text = request.POST.get("rule", "").strip()
    if rule_text:
        try:
            rule = json.loads(rule_text)
        except json.JSONDecodeError as error:
            raise SiyuError("rule_invalid_json", "规则不是有效的 JSON", "The rule is not valid JSON",
                            details={"error": str(error)}) from error
        tag = tagging.tag_create(workspace=request.workspace, group_id=group.pk, name=request.POST.get("name", ""),
                                 kind=TagKind.RULE, rule=rule, actor=request.user)
    else:
        tag = tagging.tag_create(workspace=request.workspace, group_id=group.pk, name=request.POST.get("name", ""),
                                 actor=request.user)
    messages.success(request, _("已创建标签：%(name)s") % {"name": tag.name})
    return redirect("console:tags")


@require_POST
@console_view(edit=True)
def tags_bulk_apply(request):
    """Tag every customer matching the list page's filter (the one the staff member sees)."""
    tag = posted_object(request, Tag, "tag_id", "标签", "Tag")
    search = CustomerFilter.from_dict({"q": request.POST.get("q", ""), "channel": request.POST.get("channel", ""),
                                       "tag_id": request.POST.get("filter_tag", "") or None})
    if search.is_empty and request.POST.get("confirm_all") != "on":
        raise SiyuError("bulk_needs_filter", "请先筛选客户，或确认对全部客户打标签",
                        "Filter the list first, or confirm tagging every customer")
    customer_ids = list(customer_search(workspace=request.workspace, membership=request.membership, search=search)
                        .values_list("pk", flat=True))
    added = tagging.tags_bulk_add(workspace=request.workspace, customer_ids=customer_ids, tag=tag,
                                  actor=request.user)
    messages.success(request, _("已为 %(count)s 位客户添加标签「%(tag)s」（共匹配 %(matched)s 位）")
                     % {"count": added, "tag": tag.name, "matched": len(customer_ids)})
    return redirect(request.POST.get("back") if str(request.POST.get("back", "")).startswith("/customers")
                    else "console:customer_list")
