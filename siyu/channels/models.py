"""The touchpoint registry (SPEC T1): each channel code a workspace uses, with owner, cost and targets."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Workspace


class Channel(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="channels")
    code = models.CharField(max_length=32)
    name = models.CharField(_("名称"), max_length=64)
    category = models.CharField(max_length=16)  # wechat | external | offline | referral
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    monthly_cost_fen = models.BigIntegerField(_("月成本(分)"), default=0)
    monthly_target = models.IntegerField(_("月引流目标(人)"), default=0)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "code"], name="channel_unique_code")]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
