"""Customer tags kept in sync both ways between the corp tag library (企业客户标签) and Siyu.

WeCom → Siyu: the library is mirrored into the Siyu tag group "企业微信" (one Siyu tag per corp tag,
renamed and deleted with it) on change_external_tag; a member's marks on a customer
(edit_external_contact) add or remove the mirrored Siyu tags.
Siyu → WeCom: a mirrored tag a customer gains or loses in Siyu is marked or unmarked in WeCom on every
active relation (``mark_tag``), by a background task. Siyu tags of the "企业微信" group that WeCom does
not know yet are created there first (group "Siyu").

:class:`RelationTag` is what WeCom has on each relation, as last seen or set: the base both directions
diff against, so a change made on one side is never undone by a sync from the other.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.customers import tagging
from siyu.customers.models import CustomerTag, Tag, TagGroup
from siyu.wechat.models import WeChatApp
from siyu.wechat.work import wecom
from siyu.wechat.work.contacts import live_customer
from siyu.wechat.work.models import ContactRelation, RelationStatus, RelationTag, WorkTag

logger = logging.getLogger(__name__)
MIRROR_GROUP = "企业微信"
EXPORT_GROUP = "Siyu"
CHUNK = 500


def mirror_group(workspace) -> TagGroup:
    group = TagGroup.objects.filter(workspace=workspace, name=MIRROR_GROUP).first()
    if group is None:
        try:
            group = tagging.tag_group_create(workspace=workspace, name=MIRROR_GROUP)
        except SiyuError:  # created concurrently
            group = TagGroup.objects.get(workspace=workspace, name=MIRROR_GROUP)
    return group


def _mirror_tag(workspace, group: TagGroup, group_name: str, name: str) -> Tag:
    for candidate in (name[:32], f"{group_name}·{name}"[:32]):
        tag = Tag.objects.filter(workspace=workspace, group=group, name=candidate).first()
        taken = tag is not None and WorkTag.objects.filter(tag=tag, deleted_at=None).exists()
        if tag is not None and not taken:
            return tag
        if tag is None:
            return tagging.tag_create(workspace=workspace, group_id=group.pk, name=candidate)
    return tagging.tag_create(workspace=workspace, group_id=group.pk, name=f"{name[:24]}·{group.pk}")


@transaction.atomic
def _library_apply(app: WeChatApp, groups: list[dict[str, Any]]) -> dict[str, int]:
    workspace = app.workspace
    group = mirror_group(workspace)
    counts = {"created": 0, "renamed": 0, "deleted": 0}
    seen: set[str] = set()
    for tag_group in groups:
        if tag_group.get("deleted"):
            continue
        for item in tag_group.get("tag") or []:
            if item.get("deleted"):
                continue
            wecom_id, name = str(item.get("id") or ""), str(item.get("name") or "")[:30]
            if not wecom_id or not name:
                continue
            seen.add(wecom_id)
            row = WorkTag.objects.select_for_update().filter(app=app, wecom_id=wecom_id).first()
            group_name = str(tag_group.get("group_name") or "")[:30]
            if row is None:
                row = WorkTag.objects.create(workspace=workspace, app=app, wecom_id=wecom_id, name=name,
                                             wecom_group_id=str(tag_group.get("group_id") or ""),
                                             group_name=group_name, tag=_mirror_tag(workspace, group, group_name, name))
                counts["created"] += 1
            elif row.name != name or row.group_name != group_name or row.deleted_at is not None:
                if row.tag_id and row.name != name and not Tag.objects.filter(
                        group=group, name=name[:32]).exclude(pk=row.tag_id).exists():
                    Tag.objects.filter(pk=row.tag_id).update(name=name[:32])
                row.name, row.group_name, row.deleted_at = name, group_name, None
                if row.tag_id is None:
                    row.tag = _mirror_tag(workspace, group, group_name, name)
                row.save()
                counts["renamed"] += 1
    for row in WorkTag.objects.select_for_update().filter(app=app, deleted_at=None).exclude(wecom_id__in=seen):
        row.deleted_at = timezone.now()
        row.save(update_fields=["deleted_at"])
        RelationTag.objects.filter(work_tag=row).delete()
        if row.tag_id and Tag.objects.filter(pk=row.tag_id, group=group).exists():
            tagging.tag_delete(workspace=workspace, tag_id=row.tag_id)
        counts["deleted"] += 1
    return counts


def corp_tags_pull(app: WeChatApp) -> dict[str, int]:
    """Mirror the corp tag library into Siyu (created, renamed, deleted tags)."""
    answer = wecom.call(app, "externalcontact/get_corp_tag_list", wecom.client(app).external_contact.get_corp_tag_list)
    return _library_apply(app, answer.get("tag_group") or [])


def _work_tags(app: WeChatApp, wecom_ids: list[str]) -> dict[str, WorkTag]:
    rows = {row.wecom_id: row for row in WorkTag.objects.filter(app=app, wecom_id__in=wecom_ids, deleted_at=None)}
    if len(rows) < len(set(wecom_ids)):  # a tag we have not mirrored yet: the library changed
        corp_tags_pull(app)
        rows = {row.wecom_id: row for row in WorkTag.objects.filter(app=app, wecom_id__in=wecom_ids, deleted_at=None)}
    return rows


def relation_tags_pull(relation: ContactRelation, wecom_tag_ids: list[str]) -> dict[str, int]:
    """A member's marks on the customer as WeCom reports them now: Siyu tags follow the change."""
    app = relation.app
    now = _work_tags(app, wecom_tag_ids)
    with transaction.atomic():
        known = {row.work_tag_id: row for row in RelationTag.objects.select_for_update().filter(relation=relation)
                 .select_related("work_tag")}
        current = {row.pk: row for row in now.values()}
        added = [current[pk] for pk in current.keys() - known.keys()]
        removed = [known[pk].work_tag for pk in known.keys() - current.keys()]
        customer = live_customer(relation.customer_id)
        for work_tag in added:
            RelationTag.objects.get_or_create(relation=relation, work_tag=work_tag)
            if work_tag.tag_id:
                tagging.customer_tag_add(workspace=app.workspace, customer_id=customer.pk, tag_id=work_tag.tag_id,
                                         source="wecom")
        for work_tag in removed:
            RelationTag.objects.filter(relation=relation, work_tag=work_tag).delete()
            still = RelationTag.objects.filter(work_tag=work_tag, relation__customer=customer,
                                               relation__status=RelationStatus.ACTIVE).exists()
            if work_tag.tag_id and not still:
                CustomerTag.objects.filter(customer=customer, tag_id=work_tag.tag_id).delete()
    return {"added": len(added), "removed": len(removed)}


def siyu_tags_export(app: WeChatApp) -> int:
    """Create in WeCom (group "Siyu") the tags of Siyu's "企业微信" group that WeCom does not know."""
    group = mirror_group(app.workspace)
    mirrored = set(WorkTag.objects.filter(app=app, deleted_at=None).values_list("tag_id", flat=True))
    missing = list(Tag.objects.filter(group=group).exclude(pk__in=mirrored).order_by("pk"))
    if not missing:
        return 0
    export = WorkTag.objects.filter(app=app, deleted_at=None, group_name=EXPORT_GROUP).first()
    answer = wecom.call(app, "externalcontact/add_corp_tag", wecom.client(app).external_contact.add_corp_tag,
                        export.wecom_group_id if export else None, None if export else EXPORT_GROUP, None,
                        [{"name": tag.name[:30]} for tag in missing])
    tag_group = answer.get("tag_group") or {}
    by_name = {tag.name[:30]: tag for tag in missing}
    with transaction.atomic():
        for item in tag_group.get("tag") or []:
            tag = by_name.get(item.get("name"))
            if tag is not None:
                WorkTag.objects.update_or_create(app=app, wecom_id=str(item["id"]), defaults={
                    "workspace": app.workspace, "wecom_group_id": str(tag_group.get("group_id") or ""),
                    "group_name": str(tag_group.get("group_name") or EXPORT_GROUP)[:30], "name": tag.name[:30],
                    "tag": tag, "deleted_at": None})
    return len(missing)


def _desired(app: WeChatApp, relations: list[ContactRelation]) -> dict[int, set[int]]:
    """Per relation: the WorkTag ids its customer's Siyu tags call for."""
    by_tag = {row.tag_id: row.pk for row in WorkTag.objects.filter(app=app, deleted_at=None, tag__isnull=False)}
    customers = {relation.pk: relation.customer_id for relation in relations}  # kept live by customers_realign
    tags: dict[int, set[int]] = defaultdict(set)
    for customer_id, tag_id in CustomerTag.objects.filter(customer_id__in=set(customers.values()),
                                                          tag_id__in=by_tag).values_list("customer_id", "tag_id"):
        tags[customer_id].add(by_tag[tag_id])
    return {relation_id: tags.get(customer_id, set()) for relation_id, customer_id in customers.items()}


def relations_tags_push(app: WeChatApp, relations: list[ContactRelation]) -> int:
    """Mark and unmark in WeCom what Siyu changed on these relations' customers; returns calls made."""
    desired = _desired(app, relations)
    known: dict[int, set[int]] = defaultdict(set)
    for relation_id, work_tag_id in RelationTag.objects.filter(relation__in=relations).values_list(
            "relation_id", "work_tag_id"):
        known[relation_id].add(work_tag_id)
    ids = {row.pk: row.wecom_id for row in WorkTag.objects.filter(app=app)}
    calls = 0
    wecom_client = None
    for relation in relations:
        add, remove = desired[relation.pk] - known[relation.pk], known[relation.pk] - desired[relation.pk]
        if not add and not remove:
            continue
        wecom_client = wecom_client or wecom.client(app)
        wecom.call(app, "externalcontact/mark_tag", wecom_client.external_contact.mark_tag, relation.staff.userid,
                   relation.external_userid, [ids[pk] for pk in sorted(add)], [ids[pk] for pk in sorted(remove)])
        calls += 1
        with transaction.atomic():
            RelationTag.objects.filter(relation=relation, work_tag_id__in=remove).delete()
            RelationTag.objects.bulk_create([RelationTag(relation=relation, work_tag_id=pk) for pk in add],
                                            ignore_conflicts=True)
    return calls


def app_tags_push(app: WeChatApp) -> int:
    """Every active relation of the corp (in chunks): push Siyu's mirrored-tag changes to WeCom."""
    siyu_tags_export(app)
    calls = 0
    queryset = ContactRelation.objects.filter(app=app, status=RelationStatus.ACTIVE).select_related("staff", "app")
    last = 0
    while True:
        chunk = list(queryset.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not chunk:
            return calls
        calls += relations_tags_push(app, chunk)
        last = chunk[-1].pk
