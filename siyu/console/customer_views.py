"""Customer list, search, the customer 360 page and its actions (tags, un-merge, link)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import MANAGER_ROLES, console_view, posted_object
from siyu.console.customer_panels import panels_for
from siyu.console.rendering import page
from siyu.core.channel_codes import CHANNELS, channel_label
from siyu.core.errors import SiyuError
from siyu.core.services import audit_record
from siyu.customers import tagging
from siyu.customers.identity import customer_link, customer_unmerge
from siyu.customers.models import Tag, TagKind
from siyu.customers.selectors import (
    CustomerFilter,
    customer_channel_touches,
    customer_consents,
    customer_events,
    customer_get,
    customer_identities,
    customer_merge_history,
    customer_personal_data,
    customer_rows,
    customer_search,
    customer_tag_list,
    event_labels,
)

PAGE_SIZE = 25
TIMELINE_PAGE_SIZE = 30


def _filter_from(request) -> CustomerFilter:
    tag_id = request.GET.get("tag", "")
    return CustomerFilter(q=request.GET.get("q", "").strip()[:128],
                          tag_id=int(tag_id) if tag_id.isdigit() else None,
                          channel=request.GET.get("channel", "").strip()[:32])


def _page_number(request, key: str = "page") -> int:
    value = request.GET.get(key, "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


@console_view()
def customer_list(request):
    search = _filter_from(request)
    language = get_language() or "zh-hans"
    queryset = customer_search(workspace=request.workspace, membership=request.membership, search=search)
    paginator = Paginator(queryset, PAGE_SIZE)
    page_obj = paginator.get_page(_page_number(request))
    tags = Tag.objects.filter(workspace=request.workspace).select_related("group")
    query = request.GET.copy()
    query.pop("page", None)
    return page(request, "console/customer_list.html", {
        "search": search,
        "page_obj": page_obj,
        "rows": customer_rows(customers=page_obj.object_list, membership=request.membership, language=language),
        "tags": tags,
        "manual_tags": [tag for tag in tags if tag.kind == TagKind.MANUAL],
        "channels": [(channel.code, channel_label(channel.code, language)) for channel in CHANNELS],
        "query_string": query.urlencode(),
    }, active="customers")


@console_view()
def customer_detail(request, customer_id: int):
    workspace, membership = request.workspace, request.membership
    customer = customer_get(workspace=workspace, membership=membership, customer_id=customer_id)
    personal = customer_personal_data(customer=customer, membership=membership)
    if personal.in_clear:
        audit_record(workspace=workspace, actor=request.user, action="customer.personal_data.view",
                     target_type="customer", target_id=customer.pk, fields=["name", "phone"])
    latest_consents, consent_history = customer_consents(customer=customer)
    timeline = Paginator(customer_events(customer=customer), TIMELINE_PAGE_SIZE).get_page(
        _page_number(request, "events_page"))
    language = get_language() or "zh-hans"
    labels = event_labels(workspace=workspace, language=language)
    events = [{"event": event, "label": labels.get(event.type, event.type),
               "channel_label": channel_label(event.channel, language) if event.channel else ""}
              for event in timeline.object_list]
    tag_rows = customer_tag_list(customer=customer)
    has_tags = {row.tag_id for row in tag_rows}
    return page(request, "console/customer_detail.html", {
        "customer": customer,
        "personal": personal,
        "first_channel_label": channel_label(customer.first_channel, language),
        "identities": customer_identities(customer=customer, membership=membership),
        "customer_tags": tag_rows,
        "addable_tags": Tag.objects.filter(workspace=workspace, kind=TagKind.MANUAL).exclude(pk__in=has_tags)
                        .select_related("group"),
        "latest_consents": latest_consents,
        "consent_history": consent_history,
        "touches": customer_channel_touches(customer=customer, language=language),
        "timeline": timeline,
        "events": events,
        "merges": customer_merge_history(customer=customer),
        "can_merge": membership.role in MANAGER_ROLES,
        "panels": panels_for(request, customer),
    }, active="customers")


def _tag_from_post(request) -> Tag:
    return posted_object(request, Tag, "tag_id", "标签", "Tag")


@require_POST
@console_view(edit=True)
def customer_tag_add(request, customer_id: int):
    customer = customer_get(workspace=request.workspace, membership=request.membership, customer_id=customer_id)
    tag = _tag_from_post(request)
    tagging.customer_tag_add(workspace=request.workspace, customer_id=customer.pk, tag_id=tag.pk, actor=request.user)
    messages.success(request, _("已添加标签：%(tag)s") % {"tag": tag.name})
    return redirect("console:customer_detail", customer_id=customer.pk)


@require_POST
@console_view(edit=True)
def customer_tag_remove(request, customer_id: int):
    customer = customer_get(workspace=request.workspace, membership=request.membership, customer_id=customer_id)
    tag = _tag_from_post(request)
    tagging.customer_tag_remove(workspace=request.workspace, customer_id=customer.pk, tag_id=tag.pk,
                                actor=request.user)
    messages.success(request, _("已移除标签：%(tag)s") % {"tag": tag.name})
    return redirect("console:customer_detail", customer_id=customer.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def customer_unmerge_view(request, customer_id: int):
    customer = customer_get(workspace=request.workspace, membership=request.membership, customer_id=customer_id)
    record_id = request.POST.get("record_id", "")
    if not record_id.isdigit() or not any(record.pk == int(record_id)
                                          for record in customer_merge_history(customer=customer)):
        raise SiyuError("not_found", "合并记录不存在", "Merge record not found", status=404)
    restored = customer_unmerge(workspace=request.workspace, record_id=int(record_id), actor=request.user)
    audit_record(workspace=request.workspace, actor=request.user, action="customer.unmerge",
                 target_type="customer", target_id=customer.pk, record_id=int(record_id), restored=restored.pk)
    messages.success(request, _("已撤销合并，客户 #%(id)s 已恢复") % {"id": restored.pk})
    return redirect("console:customer_detail", customer_id=customer.pk)


@require_POST
@console_view(edit=True, roles=MANAGER_ROLES)
def customer_link_view(request, customer_id: int):
    customer = customer_get(workspace=request.workspace, membership=request.membership, customer_id=customer_id)
    other_id = request.POST.get("other_id", "").strip().lstrip("#")
    if not other_id.isdigit():
        raise SiyuError("link_invalid", "请输入要关联的客户编号", "Enter the number of the customer to link")
    other = customer_get(workspace=request.workspace, membership=request.membership, customer_id=int(other_id))
    kept = customer_link(workspace=request.workspace, customer_ids=[customer.pk, other.pk], actor=request.user)
    audit_record(workspace=request.workspace, actor=request.user, action="customer.link",
                 target_type="customer", target_id=kept.pk, customer_ids=[customer.pk, other.pk])
    messages.success(request, _("已关联为同一客户 #%(id)s") % {"id": kept.pk})
    return redirect("console:customer_detail", customer_id=kept.pk)
