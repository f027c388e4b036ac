"""Factories for the communities tests: a WeCom corp with one customer group and its members."""

from __future__ import annotations

import pytest
from django.utils import timezone

from siyu.customers.models import Customer, Identity, IdentityKind
from siyu.wechat.models import AppKind, WeChatApp
from siyu.wechat.work.models import CustomerGroup, GroupMember

CORP = "wwcorp0001"


def customer_make(workspace, external_userid: str | None = None) -> Customer:
    now = timezone.now()
    customer = Customer.objects.create(workspace=workspace, first_seen_at=now, last_seen_at=now)
    if external_userid:
        Identity.objects.create(workspace=workspace, customer=customer, kind=IdentityKind.EXTERNAL_USERID,
                                namespace=CORP, value=external_userid, first_seen_at=now, last_seen_at=now)
    return customer


@pytest.fixture
def corp(workspace):
    return WeChatApp.objects.create(workspace=workspace, kind=AppKind.WORK, appid=CORP, name="企业微信",
                                    secrets_enc=b"")


@pytest.fixture
def wecom_group(workspace, corp):
    """A synced WeCom group: one staff owner and three customer members (wm1..wm3)."""
    group = CustomerGroup.objects.create(workspace=workspace, app=corp, chat_id="wrChat1", name="护肤交流1群",
                                         owner_userid="zhangsan", synced_at=timezone.now())
    GroupMember.objects.create(group=group, member_id="zhangsan", is_staff=True, joined_at=timezone.now())
    for index in range(1, 4):
        customer = customer_make(workspace, f"wm{index}")
        GroupMember.objects.create(group=group, member_id=f"wm{index}", customer=customer, joined_at=timezone.now())
    return group
