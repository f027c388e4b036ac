"""社群: a community is one group (usually a WeCom customer group) with a type, rules and members."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace
from siyu.customers.models import Customer


class CommunityType(models.TextChoices):
    NEWCOMER = "newcomer", _("新人群")
    VIP = "vip", _("VIP群")
    CAMPAIGN = "campaign", _("活动群")
    EXCHANGE = "exchange", _("交流群")
    WELFARE = "welfare", _("福利群")
    INTEREST = "interest", _("兴趣群")
    HONOR = "honor", _("荣誉群")


class Community(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("群名称"), max_length=64)
    type = models.CharField(_("群类型"), max_length=16, choices=CommunityType.choices)
    # The WeCom customer group (chat_id) it is linked to; blank for a group tracked by hand.
    wecom_chat_id = models.CharField(max_length=64, blank=True, default="")
    rules = models.TextField(_("群规"), blank=True, default="")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "wecom_chat_id"],
                                               condition=~models.Q(wecom_chat_id=""),
                                               name="community_wecom_chat_unique")]
        indexes = [models.Index(fields=["workspace", "type"])]

    def __str__(self) -> str:
        return self.name


class CommunityMember(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="members")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="community_memberships")
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)  # null: still a member

    class Meta:
        constraints = [models.UniqueConstraint(fields=["community", "customer"], name="community_member_unique")]
        indexes = [models.Index(fields=["customer", "left_at"])]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.community_id}"
