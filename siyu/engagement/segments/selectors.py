"""Segment reads: lists, members, a customer's segments, the builder's choices and readable labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from siyu.core.channel_codes import CHANNELS, channel_label
from siyu.core.errors import not_found
from siyu.core.models import Workspace
from siyu.customers.event_catalogue import BUILTIN
from siyu.customers.models import Customer, CustomerStatus, EventDefinition, Tag
from siyu.engagement.communities.models import Community
from siyu.engagement.rfm.models import CustomerScore
from siyu.engagement.segments.conditions import (
    FIELD_LABELS,
    FIELD_OPS,
    TIER_CODES,
    definition_describe,
)
from siyu.engagement.segments.models import Segment, SegmentMember
from siyu.loyalty.models import TierCode


def segment_list(*, workspace: Workspace, include_archived: bool = False) -> QuerySet[Segment]:
    rows = Segment.objects.filter(workspace=workspace)
    if not include_archived:
        rows = rows.filter(archived=False)
    return rows.order_by("archived", "-created_at", "-pk")


def segment_get(*, workspace: Workspace, segment_id: int) -> Segment:
    segment = Segment.objects.filter(workspace=workspace, pk=segment_id).first()
    if segment is None:
        raise not_found("分群", "Segment")
    return segment


def segment_members(*, segment: Segment) -> QuerySet[Customer]:
    """The materialised members (as of the last refresh), newest entries first."""
    return (Customer.objects.filter(workspace_id=segment.workspace_id, status=CustomerStatus.ACTIVE,
                                    pk__in=SegmentMember.objects.filter(segment=segment).values("customer_id"))
            .order_by("-pk"))


def customer_segments(*, customer: Customer) -> list[tuple[Segment, Any]]:
    """The live segments this customer is in, with the time it entered each."""
    rows = (SegmentMember.objects.filter(customer=customer, segment__archived=False)
            .select_related("segment").order_by("segment__name"))
    return [(row.segment, row.entered_at) for row in rows]


# --- the builder's choices --------------------------------------------------------------------------

def _rfm_layers(workspace: Workspace, field_name: str, english: bool) -> list[tuple[str, str]]:
    """Layer codes with their names, in the preset's order (seed 002's five tiers, seed 003's six classes),
    then any other code in use."""
    from siyu.engagement.rfm import presets

    preset = {"rfm5": presets.RFM5_PRESET, "rfm6": presets.RFM6_PRESET,
              "lifecycle": presets.LIFECYCLE_PRESET}[field_name]
    layers = [(layer.code, layer.name_en if english else layer.name_zh) for layer in preset.layers]
    known = {code for code, _label in layers}
    in_use = (CustomerScore.objects.filter(workspace=workspace).exclude(**{field_name: ""})
              .values_list(field_name, flat=True).distinct()[:50])
    return layers + sorted((code, code) for code in set(in_use) - known)


def event_type_choices(*, workspace: Workspace, english: bool = False) -> list[tuple[str, str]]:
    choices = {event.name: (event.label_en if english else event.label_zh) for event in BUILTIN}
    for definition in EventDefinition.objects.filter(workspace=workspace):
        choices.setdefault(definition.name, definition.label or definition.name)
    return sorted(choices.items(), key=lambda item: item[0])


def builder_options(*, workspace: Workspace, english: bool = False) -> dict[str, Any]:
    """Everything the visual builder offers, as JSON-ready lists of [value, label]."""
    lang = 1 if english else 0
    tiers = {code: str(label) for code, label in TierCode.choices}
    return {
        "fields": [[name, FIELD_LABELS[name][lang], list(ops)] for name, ops in FIELD_OPS.items()],
        "tags": [[tag.pk, f"{tag.group.name} / {tag.name}"]
                 for tag in Tag.objects.filter(workspace=workspace).select_related("group")],
        "channels": [[channel.code, channel_label(channel.code, "en" if english else "zh-hans")]
                     for channel in CHANNELS],
        "rfm5": [list(item) for item in _rfm_layers(workspace, "rfm5", english)],
        "rfm6": [list(item) for item in _rfm_layers(workspace, "rfm6", english)],
        "lifecycle": [list(item) for item in _rfm_layers(workspace, "lifecycle", english)],
        "tier": [[code, tiers.get(code, code)] for code in TIER_CODES],
        "communities": [[row.pk, row.name] for row in Community.objects.filter(workspace=workspace).order_by("name")],
        "events": [list(item) for item in event_type_choices(workspace=workspace, english=english)],
        "genders": [["male", "男" if not english else "Male"], ["female", "女" if not english else "Female"]],
    }


def definition_labeller(*, workspace: Workspace, english: bool = False) -> Callable[[str, Any], str]:
    """Turns raw values (tag ids, channel codes, event types…) into the names people know."""
    cache: dict[str, dict] = {}

    def table(kind: str) -> dict:
        if kind not in cache:
            if kind == "tag":
                cache[kind] = {tag.pk: tag.name for tag in Tag.objects.filter(workspace=workspace)}
            elif kind == "community":
                cache[kind] = dict(Community.objects.filter(workspace=workspace).values_list("pk", "name"))
            elif kind == "event":
                cache[kind] = dict(event_type_choices(workspace=workspace, english=english))
            elif kind == "first_channel":
                cache[kind] = {c.code: channel_label(c.code, "en" if english else "zh-hans") for c in CHANNELS}
            elif kind == "tier":
                cache[kind] = {code: str(label) for code, label in TierCode.choices}
            elif kind in ("rfm5", "rfm6", "lifecycle"):
                cache[kind] = dict(_rfm_layers(workspace, kind, english))
            else:
                cache[kind] = {}
        return cache[kind]

    def label(kind: str, raw: Any) -> str:
        if kind == "gender":
            return {"male": "男" if not english else "male", "female": "女" if not english else "female"}.get(raw, raw)
        return str(table(kind).get(raw, raw))

    return label


def segment_describe(*, segment_or_definition: Segment | dict, workspace: Workspace, english: bool = False) -> str:
    definition = segment_or_definition.definition if isinstance(segment_or_definition, Segment) else \
        segment_or_definition
    try:
        return definition_describe(definition, english=english,
                                   label=definition_labeller(workspace=workspace, english=english))
    except (KeyError, TypeError):
        return ""
