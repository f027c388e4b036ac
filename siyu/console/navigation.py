"""The console's left navigation: the five product layers of SPEC plus analytics and settings.

Items without a ``url_name`` are not built yet; they lead to an honest "not built yet" page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url_name: str | None = None

    @property
    def built(self) -> bool:
        return self.url_name is not None

    @property
    def url(self) -> str:
        if self.url_name:
            return reverse(self.url_name)
        return reverse("console:not_built", args=[self.key])


@dataclass(frozen=True)
class NavGroup:
    label: str
    items: tuple[NavItem, ...]


NAVIGATION: tuple[NavGroup, ...] = (
    NavGroup(_("概览"), (NavItem("dashboard", _("首页看板"), "console:dashboard"),)),
    NavGroup(_("流量入口"), (
        NavItem("channels", _("渠道与渠道码")),
        NavItem("lead_forms", _("线索表单")),
    )),
    NavGroup(_("内容"), (
        NavItem("content", _("内容库")),
        NavItem("articles", _("文章与素材")),
    )),
    NavGroup(_("运营"), (
        NavItem("customers", _("客户"), "console:customer_list"),
        NavItem("tags", _("标签"), "console:tags"),
        NavItem("journeys", _("自动化旅程")),
        NavItem("community", _("社群运营")),
    )),
    NavGroup(_("交易"), (
        NavItem("orders", _("订单")),
        NavItem("coupons", _("优惠券")),
    )),
    NavGroup(_("增长"), (
        NavItem("referral", _("老带新裂变")),
        NavItem("points", _("积分与会员")),
    )),
    NavGroup(_("数据分析"), (
        NavItem("funnels", _("漏斗与留存")),
        NavItem("attribution", _("渠道归因")),
    )),
    NavGroup(_("设置"), (
        NavItem("members", _("成员与角色")),
        NavItem("api_keys", _("API 密钥")),
    )),
)
ITEMS_BY_KEY = {item.key: item for group in NAVIGATION for item in group.items}
