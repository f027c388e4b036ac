"""Segments: a named condition tree (JSON, see ``segments.conditions``) and its materialised members."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class Segment(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=255, blank=True, default="")
    definition = models.JSONField(default=dict)  # the condition tree
    refresh_minutes = models.PositiveIntegerField(default=60)  # scheduled refresh; 0: only on demand/events
    member_count = models.IntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # Set when a change it may depend on arrived (events, merges, tags…); a debounced task refreshes it.
    stale_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    archived = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="segment_name_unique")]

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    """Current members. Entries and exits are published as domain events (journeys trigger on them)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="members")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="segment_member_unique")]
        indexes = [models.Index(fields=["customer"])]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.segment_id}"
