"""Writes of the communities area: groups (linked to WeCom customer groups or tracked by hand), their
rules, membership kept in step with WeCom, and the workspace settings. Each write is one transaction;
joins and leaves are published as domain events on commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.crypto import decrypt_text, encrypt_text
from siyu.core.domain_events import publish
from siyu.core.errors import SiyuError, not_found
from siyu.core.models import Membership, Workspace
from siyu.core.services import audit_record
from siyu.customers.models import Customer, Tag, TagGroup
from siyu.engagement.communities import COMMUNITY_JOINED, COMMUNITY_LEFT, domain
from siyu.engagement.communities.models import (
    Community,
    CommunityMember,
    CommunityRule,
    CommunitySettings,
    CommunityType,
    RuleAction,
    RuleKind,
)
from siyu.wechat.work.models import CustomerGroup, GroupMember

TAG_GROUP = "社群"
KOC_TAG = "KOC"
VIOLATION_TAG = "社群违规"
MAX_KEYWORDS = 200


def _clean_text(value: Any, *, field: str, max_length: int, required: bool = False) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise SiyuError("community_field_required", "请填写必填项", "This field is required", details={"field": field})
    if len(text) > max_length:
        raise SiyuError("community_field_too_long", f"内容过长（最多 {max_length} 字）",
                        f"Too long ({max_length} characters at most)", details={"field": field})
    return text


def _optional_int(value: Any, *, field: str, low: int = 0, high: int = 100_000) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise SiyuError("community_number_invalid", f"必须是 {low}–{high} 之间的整数",
                        f"Must be a whole number from {low} to {high}", details={"field": field})
    return int(text)


def _type(value: Any) -> str:
    if value not in CommunityType.values:
        raise SiyuError("community_type_invalid", "未知的群类型", "Unknown group type", details={"field": "type"})
    return str(value)


def _owner(workspace: Workspace, owner_id: Any):
    if owner_id in (None, ""):
        return None
    if not str(owner_id).isdigit() or not Membership.objects.filter(workspace=workspace, user_id=int(owner_id)).exists():
        raise SiyuError("community_owner_invalid", "负责人不是本工作空间的成员", "The owner is not a member of this workspace",
                        details={"field": "owner"})
    return get_user_model().objects.get(pk=int(owner_id))


def _wecom_group(workspace: Workspace, chat_id: str) -> CustomerGroup:
    group = CustomerGroup.objects.filter(workspace=workspace, chat_id=chat_id, dismissed_at=None) \
        .select_related("app").first()
    if group is None:
        raise SiyuError("community_group_unknown", "未找到该企业微信客户群（请先同步企业微信）",
                        "No such WeCom customer group (sync WeCom first)", status=404, details={"field": "chat_id"})
    return group


def community_get(*, workspace: Workspace, community_id: Any) -> Community:
    community = Community.objects.filter(workspace=workspace, pk=community_id).first() \
        if str(community_id).isdigit() else None
    if community is None:
        raise not_found("社群", "Community")
    return community


def community_create(*, workspace: Workspace, name: Any, type: Any, chat_id: Any = "", owner_id: Any = None,
                     rules_text: Any = None, actor: Any = None, now: datetime | None = None) -> Community:
    """A group of a type; with ``chat_id`` it is linked to that WeCom customer group and takes its members.

    WeCom has no API to create a customer group (staff create them in the client), so a new WeCom group
    is linked once a sync has brought it over; any other group can be tracked by hand."""
    name = _clean_text(name, field="name", max_length=64, required=True)
    kind = _type(type)
    chat_id = _clean_text(chat_id, field="chat_id", max_length=64)
    owner = _owner(workspace, owner_id)
    group = _wecom_group(workspace, chat_id) if chat_id else None
    text = domain.DEFAULT_GROUP_RULES_TEXT if rules_text is None else _clean_text(rules_text, field="rules",
                                                                                   max_length=4000)
    with transaction.atomic():
        if chat_id and Community.objects.filter(workspace=workspace, wecom_chat_id=chat_id).exists():
            raise SiyuError("community_group_linked", "该企业微信客户群已关联到其他社群",
                            "This WeCom group is already linked to another community", status=409,
                            details={"field": "chat_id"})
        try:
            with transaction.atomic():
                community = Community.objects.create(workspace=workspace, name=name, type=kind, wecom_chat_id=chat_id,
                                                     app=group.app if group else None, rules=text, owner=owner)
        except IntegrityError as error:
            raise SiyuError("community_group_linked", "该企业微信客户群已关联到其他社群",
                            "This WeCom group is already linked to another community", status=409) from error
        CommunityRule.objects.bulk_create([
            CommunityRule(workspace=workspace, community=community, kind=kind_name, keywords=spec.get("keywords", []),
                          threshold=spec.get("threshold", 0), window_seconds=spec.get("window_seconds", 0),
                          actions=list(spec["actions"])) for kind_name, spec in domain.DEFAULT_RULES])
        audit_record(workspace=workspace, actor=actor, action="community.create", target_type="community",
                     target_id=community.pk, name=name, type=kind, chat_id=chat_id)
    if group is not None:
        members_sync(community=community, now=now)
    return community


def community_update(*, workspace: Workspace, community: Community, name: Any, type: Any, owner_id: Any = None,
                     rules_text: Any = "", expected_min: Any = None, expected_max: Any = None,
                     escalate_after: Any = 3, active: bool = True, actor: Any = None) -> Community:
    name = _clean_text(name, field="name", max_length=64, required=True)
    kind = _type(type)
    owner = _owner(workspace, owner_id)
    text = _clean_text(rules_text, field="rules", max_length=4000)
    low = _optional_int(expected_min, field="expected_min")
    high = _optional_int(expected_max, field="expected_max")
    if low is not None and high is not None and low > high:
        raise SiyuError("community_range_invalid", "日发言量下限不能大于上限", "The lower bound exceeds the upper bound",
                        details={"field": "expected_min"})
    escalate = _optional_int(escalate_after, field="escalate_after", low=1, high=100) or 3
    with transaction.atomic():
        locked = Community.objects.select_for_update().get(pk=community.pk, workspace=workspace)
        locked.name, locked.type, locked.owner, locked.rules = name, kind, owner, text
        locked.expected_min, locked.expected_max, locked.escalate_after = low, high, escalate
        locked.active = bool(active)
        locked.save()
        audit_record(workspace=workspace, actor=actor, action="community.update", target_type="community",
                     target_id=locked.pk, name=name, type=kind, expected=[low, high], escalate_after=escalate)
    return locked


def community_rule_save(*, workspace: Workspace, community: Community, kind: Any, keywords: Any = (),
                        threshold: Any = 0, window_seconds: Any = 0, actions: Any = (), active: bool = True,
                        actor: Any = None) -> CommunityRule:
    """Set one structured rule of a group (keywords one per line or comma-separated; actions warn/tag/remove)."""
    if kind not in RuleKind.values:
        raise SiyuError("community_rule_kind_invalid", "未知的规则类型", "Unknown rule kind", details={"field": "kind"})
    if isinstance(keywords, str):
        keywords = [part for chunk in keywords.splitlines() for part in chunk.replace("，", ",").split(",")]
    words = list(dict.fromkeys(str(word).strip() for word in keywords or [] if str(word).strip()))
    if len(words) > MAX_KEYWORDS or any(len(word) > 32 for word in words):
        raise SiyuError("community_keywords_invalid", f"关键词最多 {MAX_KEYWORDS} 个，每个不超过 32 字",
                        f"At most {MAX_KEYWORDS} keywords of up to 32 characters", details={"field": "keywords"})
    if kind == RuleKind.KEYWORD and active and not words:
        raise SiyuError("community_keywords_required", "关键词规则至少需要一个关键词", "A keyword rule needs keywords",
                        details={"field": "keywords"})
    chosen = [action for action in RuleAction.values if action in set(actions or [])]
    if len(chosen) != len(set(actions or [])):
        raise SiyuError("community_rule_action_invalid", "未知的处理方式", "Unknown action", details={"field": "actions"})
    limit = _optional_int(threshold, field="threshold", high=1000) or 0
    window = _optional_int(window_seconds, field="window_seconds", high=86_400) or 0
    if kind in (RuleKind.REPEAT, RuleKind.FLOOD) and active and (limit < 2 or window < 10):
        raise SiyuError("community_rule_threshold_invalid", "刷屏规则需要次数（≥2）和时间窗口（≥10 秒）",
                        "Repeat and flood rules need a count (≥2) and a window (≥10 s)", details={"field": "threshold"})
    with transaction.atomic():
        rule, _created = CommunityRule.objects.update_or_create(
            community=community, kind=kind, defaults={"workspace": workspace, "keywords": words, "threshold": limit,
                                                      "window_seconds": window, "actions": chosen,
                                                      "active": bool(active)})
        audit_record(workspace=workspace, actor=actor, action="community.rule_save", target_type="community",
                     target_id=community.pk, kind=kind, keywords=len(words), actions=chosen, active=bool(active))
    return rule


# --- membership ------------------------------------------------------------------------------------------

def live_customer_id(customer_id: int) -> int:
    """Follow merges to the live profile (a merged customer's memberships belong to the winner)."""
    seen = 0
    while seen < 10:
        merged = Customer.objects.filter(pk=customer_id).values_list("merged_into_id", flat=True).first()
        if not merged:
            return customer_id
        customer_id, seen = merged, seen + 1
    return customer_id


def _publish(name: str, community: Community, ids: set[int]) -> None:
    if ids:
        publish(name, workspace_id=community.workspace_id, community_id=community.pk, customer_ids=sorted(ids))


def member_join(*, community: Community, customer_id: int, at: datetime, member_id: str = "",
                invited_by_id: int | None = None) -> bool:
    """Record a join (or a re-join after leaving); False when the customer was already a member since then."""
    customer_id = live_customer_id(customer_id)
    with transaction.atomic():
        row = CommunityMember.objects.select_for_update().filter(community=community, customer_id=customer_id).first()
        if row is not None and (row.left_at is None or row.left_at >= at):
            return False
        if row is None:
            try:
                with transaction.atomic():
                    CommunityMember.objects.create(workspace_id=community.workspace_id, community=community,
                                                   customer_id=customer_id, joined_at=at, member_id=member_id[:64],
                                                   invited_by_id=invited_by_id)
            except IntegrityError:  # joined concurrently
                return False
        else:
            row.joined_at, row.left_at = at, None
            row.member_id = member_id[:64] or row.member_id
            row.save(update_fields=["joined_at", "left_at", "member_id"])
        _publish(COMMUNITY_JOINED, community, {customer_id})
    return True


def member_set_by_hand(*, workspace: Workspace, community: Community, customer_id: Any, present: bool,
                       actor: Any = None, now: datetime | None = None) -> bool:
    """Add or remove a member of a group tracked by hand (a WeCom-linked group follows WeCom only)."""
    if community.wecom_chat_id:
        raise SiyuError("community_linked_members", "关联企业微信的群成员随企业微信同步，不能手动修改",
                        "Members of a WeCom-linked group follow WeCom and cannot be edited by hand", status=409)
    customer = Customer.objects.filter(workspace=workspace, pk=customer_id).first() \
        if str(customer_id).strip().isdigit() else None
    if customer is None:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404, details={"field": "customer_id"})
    now = now or timezone.now()
    changed = member_join(community=community, customer_id=customer.pk, at=now) if present else \
        member_leave(community=community, customer_id=customer.pk, at=now)
    if changed:
        audit_record(workspace=workspace, actor=actor, action="community.member_" + ("add" if present else "remove"),
                     target_type="community", target_id=community.pk, customer_id=customer.pk)
    return changed


def member_leave(*, community: Community, customer_id: int, at: datetime) -> bool:
    customer_id = live_customer_id(customer_id)
    with transaction.atomic():
        updated = CommunityMember.objects.filter(community=community, customer_id=customer_id, left_at=None,
                                                 joined_at__lte=at).update(left_at=at)
        if updated:
            _publish(COMMUNITY_LEFT, community, {customer_id})
    return bool(updated)


def members_sync(*, community: Community, now: datetime | None = None) -> dict[str, int]:
    """Bring the linked WeCom group's customer members over: new ones join, missing ones leave.

    The work area keeps GroupMember in step with WeCom (callbacks plus a nightly reconciliation); this
    reads it, so the sync costs no WeCom call."""
    now = now or timezone.now()
    if not community.wecom_chat_id:
        return {"joined": 0, "left": 0}
    group = CustomerGroup.objects.filter(workspace_id=community.workspace_id, chat_id=community.wecom_chat_id) \
        .order_by("-synced_at").first()
    if group is None:
        return {"joined": 0, "left": 0}
    current: dict[int, GroupMember] = {}
    if group.dismissed_at is None:
        for member in GroupMember.objects.filter(group=group, is_staff=False, left_at=None, customer__isnull=False):
            current.setdefault(live_customer_id(member.customer_id), member)
    with transaction.atomic():
        rows = {row.customer_id: row for row in CommunityMember.objects.select_for_update().filter(community=community)}
        joined, left = set(), set()
        for customer_id, member in current.items():
            row = rows.get(customer_id)
            if row is not None and row.left_at is None:
                continue
            at = min(member.joined_at or now, now)
            if row is None:
                CommunityMember.objects.create(workspace_id=community.workspace_id, community=community,
                                               customer_id=customer_id, joined_at=at, member_id=member.member_id)
            else:
                row.joined_at, row.left_at, row.member_id = max(at, row.left_at), None, member.member_id
                row.save(update_fields=["joined_at", "left_at", "member_id"])
            joined.add(customer_id)
        for customer_id, row in rows.items():
            if row.left_at is None and customer_id not in current:
                row.left_at = group.dismissed_at or now
                row.save(update_fields=["left_at"])
                left.add(customer_id)
        Community.objects.filter(pk=community.pk).update(synced_at=now)
        _publish(COMMUNITY_JOINED, community, joined)
        _publish(COMMUNITY_LEFT, community, left)
    return {"joined": len(joined), "left": len(left)}


def communities_sync(*, workspace: Workspace | None = None, now: datetime | None = None) -> int:
    """Every linked active group (the periodic reconciliation)."""
    queryset = Community.objects.filter(active=True).exclude(wecom_chat_id="")
    if workspace is not None:
        queryset = queryset.filter(workspace=workspace)
    count = 0
    for community in queryset.order_by("pk"):
        members_sync(community=community, now=now)
        count += 1
    return count


# --- settings and tags -----------------------------------------------------------------------------------

def settings_for(*, workspace: Workspace) -> CommunitySettings:
    row, _created = CommunitySettings.objects.get_or_create(
        workspace=workspace, defaults={"koc_percent": domain.DEFAULT_KOC_PERCENT,
                                       "step_points": list(domain.DEFAULT_STEP_POINTS)})
    return row


def settings_update(*, workspace: Workspace, koc_percent: Any, step_points: Any, coupon_template_id: Any = None,
                    honor_community_id: Any = None, actor: Any = None) -> CommunitySettings:
    low, high = domain.KOC_PERCENT_RANGE
    percent = _optional_int(koc_percent, field="koc_percent", low=low, high=high)
    if percent is None:
        raise SiyuError("community_number_invalid", f"KOC 比例必须是 {low}–{high} 之间的整数",
                        f"The KOC share must be a whole number from {low} to {high}", details={"field": "koc_percent"})
    points = [_optional_int(value, field="step_points", high=1_000_000) for value in list(step_points or [])]
    if len(points) != 3 or any(value is None for value in points):
        raise SiyuError("community_number_invalid", "三级激励积分必须是 3 个非负整数",
                        "The three step points must be whole numbers", details={"field": "step_points"})
    coupon = _optional_int(coupon_template_id, field="coupon_template_id", high=10**15)
    if coupon is not None:
        from siyu.commerce.promotions.models import CouponTemplate

        if not CouponTemplate.objects.filter(workspace=workspace, pk=coupon).exists():
            raise SiyuError("community_coupon_unknown", "优惠券不存在", "No such coupon template", status=404,
                            details={"field": "coupon_template_id"})
    honor = community_get(workspace=workspace, community_id=honor_community_id) \
        if honor_community_id not in (None, "") else None
    with transaction.atomic():
        row = settings_for(workspace=workspace)
        row.koc_percent, row.step_points, row.coupon_template_id, row.honor_community = percent, points, coupon, honor
        row.save()
        audit_record(workspace=workspace, actor=actor, action="community.settings", target_type="workspace",
                     target_id=workspace.pk, koc_percent=percent, step_points=points, coupon=coupon,
                     honor_community=honor.pk if honor else None)
    return row


def bridge_secret_rotate(*, workspace: Workspace, actor: Any = None) -> tuple[str, str]:
    """A new HMAC key for the message-archive bridge; the secret is shown once and stored encrypted."""
    import secrets

    key_id, secret = "cb_" + secrets.token_hex(6), secrets.token_urlsafe(32)
    with transaction.atomic():
        row = settings_for(workspace=workspace)
        row.bridge_key_id, row.bridge_secret_enc = key_id, encrypt_text(secret)
        row.save(update_fields=["bridge_key_id", "bridge_secret_enc"])
        audit_record(workspace=workspace, actor=actor, action="community.bridge_key", target_type="workspace",
                     target_id=workspace.pk, key_id=key_id)
    return key_id, secret


def bridge_secret(*, key_id: str) -> tuple[Workspace, str] | None:
    row = CommunitySettings.objects.select_related("workspace").filter(bridge_key_id=key_id).first() \
        if key_id else None
    if row is None or not row.bridge_secret_enc:
        return None
    return row.workspace, decrypt_text(row.bridge_secret_enc) or ""


def community_tag(*, workspace: Workspace, name: str) -> Tag:
    """The area's own tag (group 社群), made on first use."""
    group, _created = TagGroup.objects.get_or_create(workspace=workspace, name=TAG_GROUP)
    tag, _created = Tag.objects.get_or_create(workspace=workspace, group=group, name=name)
    return tag
