"""Reads for finding customers and for the customer 360 page, with the role rules applied.

Every read here is scoped to one workspace and, for service staff, to the customers they own.
Personal data is decrypted only for roles that may see it; analysts get masked values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q, QuerySet

from siyu.core.channel_codes import channel_label
from siyu.core.crypto import mask_name, mask_phone, name_hash, phone_hash
from siyu.core.errors import SiyuError
from siyu.core.models import Membership, Workspace
from siyu.customers.event_catalogue import BUILTIN_BY_NAME
from siyu.customers.models import (
    ConsentRecord,
    Customer,
    CustomerStatus,
    CustomerTag,
    Event,
    EventDefinition,
    Identity,
    IdentityKind,
    MergeRecord,
    Tag,
    TagGroup,
)

_PHONE_LIKE = re.compile(r"^\+?[\d\s\-()]{7,20}$")
MAX_MATCHES = 1000  # an exact name, phone or identity never names more people than this


@dataclass(frozen=True)
class CustomerFilter:
    """What a staff member typed into the customer search. Empty fields do not filter."""

    q: str = ""  # a full name, a full phone number or an identity value
    tag_id: int | None = None
    channel: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.q or self.tag_id or self.channel)

    def as_dict(self) -> dict:
        return {"q": self.q, "tag_id": self.tag_id, "channel": self.channel}

    @classmethod
    def from_dict(cls, data: dict) -> CustomerFilter:
        tag_id = data.get("tag_id")
        return cls(q=str(data.get("q") or "").strip(), tag_id=int(tag_id) if tag_id else None,
                   channel=str(data.get("channel") or "").strip())


def customers_visible(*, workspace: Workspace, membership: Membership) -> QuerySet[Customer]:
    """Live customers this staff member may see: everyone's, or only their own for service staff."""
    queryset = Customer.objects.filter(workspace=workspace, status=CustomerStatus.ACTIVE)
    if not membership.sees_all_customers:
        queryset = queryset.filter(owner_id=membership.user_id)
    return queryset


def customer_search(*, workspace: Workspace, membership: Membership,
                    search: CustomerFilter) -> QuerySet[Customer]:
    """Customers matching the search, newest first.

    ``q`` matches the full name (by keyed hash), the full phone number (by keyed hash) or any identity
    value (openid, unionid, external_userid, lead id, device id); partial text never matches, because
    personal data is stored encrypted.
    """
    queryset = customers_visible(workspace=workspace, membership=membership)
    if search.q:
        queryset = queryset.filter(pk__in=_customer_ids_matching(workspace, search.q))
    if search.tag_id:
        queryset = queryset.filter(pk__in=CustomerTag.objects.filter(workspace=workspace, tag_id=search.tag_id)
                                   .values("customer_id"))
    if search.channel:
        queryset = queryset.filter(first_channel=search.channel)
    return queryset.order_by("-first_seen_at", "-pk")


def _customer_ids_matching(workspace: Workspace, text: str) -> set[int]:
    """Three exact look-ups on indexed columns, united here rather than OR-ed in SQL (where an OR with
    a sub-select would scan every customer of a large workspace)."""
    everyone = Customer.objects.filter(workspace=workspace)
    ids = set(everyone.filter(name_hash=name_hash(text)).values_list("pk", flat=True)[:MAX_MATCHES])
    identity_values = [text]
    if _PHONE_LIKE.match(text):
        try:
            hashed = phone_hash(text)
        except ValueError:
            hashed = None
        if hashed:
            ids.update(everyone.filter(phone_hash=hashed).values_list("pk", flat=True)[:MAX_MATCHES])
            identity_values.append(hashed)
    ids.update(Identity.objects.filter(workspace=workspace, value__in=identity_values)
               .values_list("customer_id", flat=True)[:MAX_MATCHES])
    return ids


def customer_get(*, workspace: Workspace, membership: Membership, customer_id: int) -> Customer:
    """One customer this staff member may open. A merged customer is still found (its page says so).

    Raises ``not_found`` (404) for another workspace's customer and ``forbidden`` (403) when service staff
    open a customer someone else owns.
    """
    customer = Customer.objects.filter(workspace=workspace, pk=customer_id).first()
    if customer is None:
        raise SiyuError("not_found", "客户不存在", "Customer not found", status=404)
    if not membership.sees_all_customers and customer.owner_id != membership.user_id:
        raise SiyuError("forbidden", "该客户不由您负责", "This customer is not assigned to you", status=403)
    return customer


@dataclass(frozen=True)
class PersonalData:
    name: str
    phone: str
    in_clear: bool


def customer_personal_data(*, customer: Customer, membership: Membership) -> PersonalData:
    """Name and phone as this role may see them: decrypted, or masked for analysts."""
    name, phone = customer.name or "", customer.phone or ""
    if membership.sees_personal_data:
        return PersonalData(name=name, phone=phone, in_clear=bool(name or phone))
    return PersonalData(name=mask_name(name), phone=mask_phone(phone), in_clear=False)


def customer_rows(*, customers, membership: Membership, language: str = "zh-hans") -> list[dict]:
    """List rows for a page of customers, with personal data as the role may see it."""
    rows = []
    for customer in customers:
        personal = customer_personal_data(customer=customer, membership=membership)
        rows.append({"customer": customer, "name": personal.name, "phone": personal.phone,
                     "first_channel_label": channel_label(customer.first_channel, language)})
    return rows


@dataclass(frozen=True)
class IdentityRow:
    kind: str
    kind_label: str
    namespace: str
    display_value: str
    first_seen_at: datetime
    last_seen_at: datetime


def customer_identities(*, customer: Customer, membership: Membership) -> list[IdentityRow]:
    """Every identity; a phone identity shows the (masked) number, never its hash."""
    rows = []
    for identity in Identity.objects.filter(customer=customer).order_by("kind", "namespace", "pk"):
        value = identity.value
        if identity.kind == IdentityKind.PHONE:
            value = mask_phone(customer.phone) if customer.phone_hash == identity.value else "***"
        rows.append(IdentityRow(kind=identity.kind, kind_label=str(IdentityKind(identity.kind).label),
                                namespace=identity.namespace, display_value=value,
                                first_seen_at=identity.first_seen_at, last_seen_at=identity.last_seen_at))
    return rows


def customer_tag_list(*, customer: Customer) -> list[CustomerTag]:
    return list(CustomerTag.objects.filter(customer=customer).select_related("tag", "tag__group")
                .order_by("tag__group__sort_order", "tag__group_id", "tag__name"))


def customer_consents(*, customer: Customer) -> tuple[list[ConsentRecord], list[ConsentRecord]]:
    """(latest record per purpose, full history newest first)."""
    history = list(ConsentRecord.objects.filter(customer=customer).order_by("-recorded_at", "-pk"))
    latest: dict[str, ConsentRecord] = {}
    for record in history:
        latest.setdefault(record.purpose, record)
    return sorted(latest.values(), key=lambda record: record.purpose), history


def _identity_ids(customer: Customer) -> QuerySet:
    return Identity.objects.filter(customer=customer).values("pk")


@dataclass(frozen=True)
class ChannelTouch:
    channel: str
    label: str
    first_at: datetime
    last_at: datetime
    events: int
    is_first_arrival: bool


def customer_channel_touches(*, customer: Customer, language: str = "zh-hans") -> list[ChannelTouch]:
    """Each distinct channel the customer's events came through, first arrival first."""
    rows = (Event.objects.filter(workspace_id=customer.workspace_id, identity_id__in=_identity_ids(customer))
            .exclude(channel="").values("channel")
            .annotate(first_at=Min("occurred_at"), last_at=Max("occurred_at"), events=Count("pk"))
            .order_by("first_at"))
    touches = [ChannelTouch(channel=row["channel"], label=channel_label(row["channel"], language),
                            first_at=row["first_at"],
                            last_at=row["last_at"], events=row["events"],
                            is_first_arrival=row["channel"] == customer.first_channel)
               for row in rows]
    touches.sort(key=lambda touch: (not touch.is_first_arrival, touch.first_at))
    return touches


def customer_events(*, customer: Customer) -> QuerySet[Event]:
    """The customer's timeline, newest first (events belong to a customer through its identities)."""
    return (Event.objects.filter(workspace_id=customer.workspace_id, identity_id__in=_identity_ids(customer))
            .order_by("-occurred_at", "-pk"))


def event_labels(*, workspace: Workspace, language: str) -> dict[str, str]:
    """Event type -> label in the UI language: the built-in catalogue plus the workspace's own types."""
    chinese = language.startswith("zh")
    labels = {name: (event.label_zh if chinese else event.label_en) for name, event in BUILTIN_BY_NAME.items()}
    for definition in EventDefinition.objects.filter(workspace=workspace).only("name", "label"):
        labels.setdefault(definition.name, definition.label or definition.name)
    return labels


def customer_merge_history(*, customer: Customer) -> list[MergeRecord]:
    return list(MergeRecord.objects.filter(Q(winner=customer) | Q(loser=customer))
                .select_related("actor", "unmerged_by").order_by("-merged_at", "-pk"))


def tag_groups_with_counts(*, workspace: Workspace) -> list[dict]:
    """Tag groups with their tags and how many live customers carry each tag."""
    counts = dict(CustomerTag.objects.filter(workspace=workspace, customer__status=CustomerStatus.ACTIVE)
                  .values("tag_id").annotate(n=Count("pk")).values_list("tag_id", "n"))
    tags_by_group: dict[int, list] = {}
    for tag in Tag.objects.filter(workspace=workspace).order_by("kind", "name"):
        tag.customer_count = counts.get(tag.pk, 0)
        tags_by_group.setdefault(tag.group_id, []).append(tag)
    return [{"group": group, "tags": tags_by_group.get(group.pk, [])}
            for group in TagGroup.objects.filter(workspace=workspace)]
