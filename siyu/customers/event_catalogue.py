"""The built-in event catalogue: every event type Siyu understands and the properties it carries.

A workspace may add its own types (EventDefinition); properties not named in a definition are kept
as sent. Property types: string, integer, number, boolean, fen (non-negative integer money), datetime.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EventType:
    name: str
    label_zh: str
    label_en: str
    properties: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (type, required)
    interaction: bool = True  # counts as an interaction (SPEC A1: interactions per month)


BUILTIN: tuple[EventType, ...] = (
    EventType("page_view", "浏览页面", "Page view", {"url": ("string", False), "title": ("string", False)}),
    EventType("product_view", "浏览商品", "Product view",
              {"product_id": ("string", True), "price_fen": ("fen", False)}),
    EventType("add_to_cart", "加入购物车", "Add to cart",
              {"product_id": ("string", True), "sku_id": ("string", False), "quantity": ("integer", False)}),
    EventType("order_placed", "下单", "Order placed", {"order_id": ("string", True), "amount_fen": ("fen", True)}),
    EventType("order_paid", "支付订单", "Order paid", {"order_id": ("string", True), "amount_fen": ("fen", True)}),
    EventType("order_refunded", "订单退款", "Order refunded",
              {"order_id": ("string", True), "amount_fen": ("fen", True)}),
    EventType("subscribe", "关注公众号", "Followed official account", {"scene": ("string", False)}),
    EventType("unsubscribe", "取消关注", "Unfollowed official account", {}, interaction=False),
    EventType("qr_scan", "扫描渠道码", "Scanned a channel code", {"scene": ("string", False)}),
    EventType("wecom_add", "添加企业微信", "Added staff on WeCom",
              {"staff_id": ("string", False), "state": ("string", False)}),
    EventType("wecom_delete", "删除企业微信", "Removed staff on WeCom", {"staff_id": ("string", False)},
              interaction=False),
    EventType("message_in", "发送消息", "Sent a message", {"text": ("string", False)}),
    EventType("article_read", "阅读文章", "Read an article",
              {"article_id": ("string", True), "read_seconds": ("integer", False)}),
    EventType("share", "分享", "Shared", {"content_id": ("string", False), "target": ("string", False)}),
    EventType("check_in", "签到", "Checked in", {}),
    EventType("register", "注册会员", "Registered as member", {}),
    EventType("lead_submit", "提交线索表单", "Submitted a lead form",
              {"form_id": ("string", False), "platform": ("string", False)}),
    EventType("link_click", "点击链接", "Clicked a link", {"link_id": ("string", False), "url": ("string", False)}),
    EventType("coupon_claim", "领取优惠券", "Claimed a coupon", {"coupon_id": ("string", True)}),
    EventType("group_join", "加入社群", "Joined a community group", {"group_id": ("string", True)}),
    EventType("group_message", "社群发言", "Spoke in a community group", {"group_id": ("string", False)}),
    EventType("mini_program_open", "打开小程序", "Opened the mini-program", {"path": ("string", False)}),
    EventType("review", "评价", "Wrote a review", {"order_id": ("string", False), "rating": ("integer", False)}),
    EventType("menu_click", "点击公众号菜单", "Clicked an official-account menu", {"key": ("string", False)}),
    EventType("wechat_oauth", "网页授权", "Identified through WeChat web authorisation",
              {"scope": ("string", False), "url": ("string", False)}),
    EventType("mini_program_login", "小程序登录", "Logged in to the mini-program", {}),
    EventType("phone_bound", "绑定手机号", "Bound a phone number", {"source": ("string", False)}),
    EventType("wecom_edit", "企业微信资料变更", "WeCom contact edited", {"staff_id": ("string", False)},
              interaction=False),
    EventType("wecom_transfer", "客户转接", "Transferred to another staff member",
              {"from_staff_id": ("string", False), "staff_id": ("string", False)}, interaction=False),
    EventType("group_leave", "退出社群", "Left a community group", {"group_id": ("string", True)},
              interaction=False),
    EventType("payment_succeeded", "支付成功", "Payment succeeded",
              {"out_trade_no": ("string", True), "amount_fen": ("fen", True)}),
)
BUILTIN_BY_NAME = {event_type.name: event_type for event_type in BUILTIN}
PROPERTY_TYPES = frozenset({"string", "integer", "number", "boolean", "fen", "datetime"})
