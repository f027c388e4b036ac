"""The console's left navigation: the five product layers of SPEC plus analytics and settings.

Items without a ``url_name`` are not built yet; they lead to an honest "not built yet" page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url_name: str | None = None

    @property
    def built(self) -> bool:
        """Built when its page exists: items name their page before it is written and light up after."""
        if self.url_name is None:
            return False
        try:
            reverse(self.url_name)
        except NoReverseMatch:
            return False
        return True

    @property
    def url(self) -> str:
        if self.built:
            return reverse(self.url_name)
        return reverse("console:not_built", args=[self.key])


@dataclass(frozen=True)
class NavGroup:
    label: str
    items: tuple[NavItem, ...]


NAVIGATION: tuple[NavGroup, ...] = (
    NavGroup(_("概览"), (NavItem("dashboard", _("首页看板"), "console:dashboard"),)),
    NavGroup(_("流量入口"), (
        NavItem("channels", _("渠道活码"), "console:wechat_qrcodes"),
        NavItem("contact_ways", _("企业微信「联系我」"), "console:wechat_contact_ways"),
        NavItem("lead_forms", _("线索表单")),
    )),
    NavGroup(_("内容"), (
        NavItem("content", _("内容库")),
        NavItem("articles", _("文章与素材")),
    )),
    NavGroup(_("运营"), (
        NavItem("customers", _("客户"), "console:customer_list"),
        NavItem("tags", _("标签"), "console:tags"),
        NavItem("segments", _("客户分群"), "console:segments"),
        NavItem("rfm", _("RFM 分层与生命周期"), "console:rfm"),
        NavItem("journeys", _("自动化旅程"), "console:journeys"),
        NavItem("community", _("社群运营"), "console:communities"),
        NavItem("service", _("智能客服"), "console:service"),
        NavItem("inbox", _("员工任务"), "console:inbox"),
    )),
    NavGroup(_("微信生态"), (
        NavItem("wechat_official", _("公众号"), "console:wechat_official"),
        NavItem("wechat_work", _("企业微信"), "console:wechat_work"),
        NavItem("wechat_consumer", _("小程序与网页授权"), "console:wechat_consumer"),
        NavItem("wechat_pay", _("微信支付"), "console:wechat_pay"),
        NavItem("wechat_apps", _("接入与接口健康"), "console:wechat_apps"),
    )),
    NavGroup(_("交易"), (
        NavItem("products", _("商品"), "console:commerce_products"),
        NavItem("inventory", _("库存"), "console:commerce_inventory"),
        NavItem("storefront", _("店铺装修"), "console:commerce_storefront"),
        NavItem("promotions", _("营销活动"), "console:commerce_promotions"),
        NavItem("coupons", _("优惠券"), "console:commerce_coupons"),
        NavItem("orders", _("订单"), "console:commerce_orders"),
        NavItem("aftersales", _("售后与投诉"), "console:commerce_aftersales"),
    )),
    NavGroup(_("增长"), (
        NavItem("referral", _("老带新裂变")),
        NavItem("points", _("积分与会员"), "console:loyalty_members"),
        NavItem("growth_tasks", _("成长任务"), "console:loyalty_tasks"),
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
