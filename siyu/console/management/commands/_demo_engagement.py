"""The demo brand's operations layer (issue 5): real paid orders, RFM layers, segments, journeys, the service
bot's FAQ, growth tasks, the points mall and lottery, and communities on the demo's WeCom groups.

Called by ``siyu demo`` after the shop and the WeChat accounts exist (not a command itself). Everything goes
through the areas' services, as an operator's clicks would, except the orders (below). Idempotent: each
area creates only what is missing (by name, question, pattern or order number), so a second run creates
nothing; the due work (RFM scoring, segment refresh, one journeys tick) runs every time and only moves what
changed.

Orders: ``siyu simulate`` records purchases as ``order_paid`` *events* only, while RFM, the orders console
and the H5 "my orders" page read the commerce order tables. Each simulated purchase becomes one real paid
order (same number as the event's ``order_id``, same amount and payment time, bought by the customer the
event's identity belongs to), written in bulk: one line per order, the catalog SKU whose price is nearest
the amount (in a quantity that divides it), at the unit price it sold for then — no discount, so RFM's
"heavy coupon use" is not triggered by the data's fitting.
They are marked in ``remark`` as simulated. No domain events are published for them (they are history,
not purchases happening now): no points, no journey triggers; the RFM job reads them directly.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.commerce.catalog.models import Sku
from siyu.commerce.orders.models import (
    FulfilmentStatus,
    Order,
    OrderLine,
    OrderSource,
    OrderStatus,
    PaymentStatus,
)
from siyu.commerce.promotions.models import CouponTemplate
from siyu.core.models import Workspace
from siyu.customers.models import Event
from siyu.engagement.communities.models import Community, CommunityType
from siyu.engagement.communities.rhythm import rhythm_slots
from siyu.engagement.communities.services import community_create, community_rule_save
from siyu.engagement.journeys.models import Journey, JourneyStatus
from siyu.engagement.journeys.runner import journeys_tick
from siyu.engagement.journeys.services import journey_activate, journey_create
from siyu.engagement.rfm.models import CustomerScore
from siyu.engagement.rfm.services import rfm_recompute
from siyu.engagement.segments.models import Segment
from siyu.engagement.segments.services import segment_create, segment_refresh
from siyu.engagement.service.models import FaqEntry, KeywordRule
from siyu.engagement.service.services import faq_save
from siyu.engagement.service.services import rule_save as service_rule_save
from siyu.loyalty.exchange import exchange_item_save
from siyu.loyalty.lottery import prize_save
from siyu.loyalty.missions import tasks_ensure
from siyu.loyalty.models import ExchangeItem, LotteryPrize
from siyu.wechat.models import WeChatApp
from siyu.wechat.work.models import CustomerGroup

ORDER_BATCH = 2000
SIMULATED_REMARK = "模拟订单（siyu simulate 的 order_paid 事件）"

# (name, description, definition); RFM layers come from the rfm presets (seed 002 five tiers, seed 003 six).
SEGMENTS = (
    ("近 7 天浏览≥2 次未下单", "浏览过商品但还没下单的人，适合推送优惠券或顾问跟进", {"version": 1, "root": {"and": [
        {"field": "event", "type": "product_view", "op": "gte", "count": 2, "days": 7},
        {"field": "event", "type": "order_paid", "op": "eq", "count": 0, "days": 7}]}}),
    ("高价值活跃客户", "RFM 五层中的高价值活跃用户（种子 002）",
     {"version": 1, "root": {"field": "rfm5", "op": "in", "value": ["high_active"]}}),
    ("沉睡客户", "RFM 六类中的沉睡用户，或生命周期已流失",
     {"version": 1, "root": {"or": [{"field": "rfm6", "op": "in", "value": ["dormant"]},
                                    {"field": "lifecycle", "op": "in", "value": ["churned"]}]}}),
    ("小红书来源新客", "首次来自小红书、近 30 天才认识的人",
     {"version": 1, "root": {"and": [{"field": "first_channel", "op": "eq", "value": "xiaohongshu"},
                                     {"field": "first_seen_at", "op": "within_days", "value": 30}]}}),
)
WELCOME_SEGMENT, DORMANT_SEGMENT = "小红书来源新客", "沉睡客户"

# (question, answer, variants)
FAQ = (
    ("怎么退换货？", "收到商品 7 天内未拆封可无理由退换：在「我的订单」里选择订单→申请售后，填写原因并寄回，"
     "仓库签收后 1–3 个工作日退款原路返回。已拆封但有质量问题也可以申请，请拍照上传。",
     ["退货流程是什么", "买错了可以换吗", "怎么申请售后", "不想要了能退吗", "退款多久到账"]),
    ("下单后多久发货？", "现货商品付款后 48 小时内从上海仓发出，江浙沪一般次日达，其他地区 2–4 天；"
     "预售商品以商品页写明的时间为准。发货后在「我的订单」可查看物流。",
     ["什么时候发货", "几天能到", "物流怎么查", "快递到哪了", "发什么快递"]),
    ("会员积分怎么获得和使用？", "每消费 1 元得 1 积分，每日签到、晒单评价、完成成长任务也有积分。"
     "积分可在会员中心的积分商城兑换优惠券和小样，下单时也可以抵扣（100 积分抵 1 元）。积分在次年年底过期。",
     ["积分有什么用", "积分怎么兑换", "积分会过期吗", "怎么赚积分", "积分能抵现吗"]),
    ("敏感肌 / 过敏能用吗？", "我们的洁面和修护系列做过敏感肌测试，但每个人肤质不同：建议先在耳后或手腕内侧"
     "试用 24 小时。如果出现红肿、刺痛请立即停用并用清水冲洗，严重时请就医；可以联系顾问帮你选适合的产品。",
     ["皮肤过敏了怎么办", "孕妇可以用吗", "油皮适合哪款", "干皮用什么精华", "脸上起痘了还能用吗"]),
    ("优惠券怎么用？", "优惠券在结算页自动选择最优的一张，也可以手动切换；每单限用一张，满减券需达到门槛金额。"
     "领取的券在「我的-优惠券」里查看，过期后自动失效，退款后未过期的券会退回。",
     ["优惠券用不了", "领的券在哪里", "券能叠加吗", "新人券怎么领", "为什么没有减钱"]),
    ("会员等级有哪些权益？", "会员分普通、银卡、金卡、钻石四级，按累计消费升级：金卡享会员价 95 折，钻石 9 折并包邮，"
     "高等级会员优先客服和专属新品试用。等级每季度重新评定。",
     ["怎么升级金卡", "钻石会员有什么好处", "会员价怎么算", "等级会降吗"]),
    ("正品保证吗？", "花漾美妆官方商城所售商品均为品牌直供正品，支持专柜验货；每件商品都有防伪码，可在官网查询。",
     ["是不是正品", "怎么验真伪", "有防伪码吗"]),
)
SERVICE_RULES = (("人工", "contains", "好的，正在为你转接人工顾问，顾问在线时间 9:00–22:00，请稍候～", 10),
                 ("发票", "contains", "电子发票会在订单签收后 3 天内开具，在「我的订单」→订单详情→发票 中下载。", 5))

# Simulator group name -> community type (the demo's WeCom groups, demo.GROUPS).
COMMUNITY_TYPES = {
    "花漾美妆 VIP 福利群": CommunityType.VIP,
    "小红书粉丝交流群": CommunityType.EXCHANGE,
    "花漾新人福利群": CommunityType.NEWCOMER,
    "会员日活动群": CommunityType.CAMPAIGN,
}
COMMUNITY_AD_WORDS = ["代购", "加我微信", "低价出", "刷单", "兼职"]

MALL = (("10 元无门槛券", "coupon", 500, 1000, 2), ("满 199 减 30 券", "coupon", 800, 1000, 2),
        ("旅行装小样（精华 5ml）", "gift", 1500, 200, 1))
PRIZES = (("50 积分", "points", 50, 40, None), ("10 元无门槛券", "coupon", 0, 20, 500),
          ("面膜小样", "gift", 0, 5, 100), ("谢谢参与", "nothing", 0, 35, None))


def _best_line(amount_fen: int, skus: list[tuple]) -> tuple[tuple, int, int]:
    """The SKU nearest the amount, a quantity that divides the amount, and the unit price it then sold for."""
    best = None
    for sku in skus:
        price = sku[3]
        quantity = max(1, round(amount_fen / price))
        key = (abs(quantity * price - amount_fen), quantity)
        if best is None or key < best[0]:
            best = (key, sku, quantity)
    _key, sku, quantity = best
    while amount_fen % quantity:
        quantity -= 1
    return sku, quantity, amount_fen // quantity


def demo_orders(workspace: Workspace) -> int:
    """One paid order per simulated ``order_paid`` event that has none yet (bulk, in batches)."""
    skus = list(Sku.objects.filter(workspace=workspace, price_fen__gt=0)
                .values_list("pk", "product_id", "product__title", "price_fen", "specs").order_by("pk"))
    if not skus:
        return 0
    existing = set(Order.objects.filter(workspace=workspace).values_list("number", flat=True))
    now = timezone.now()
    events = (Event.objects.filter(workspace=workspace, type="order_paid", occurred_at__lte=now)
              .values_list("occurred_at", "identity__customer_id", "properties").order_by("occurred_at", "pk"))
    events = list(events)  # read before writing (one connection; a demo holds tens of thousands at most)
    created = 0
    pending: list[tuple[Order, OrderLine]] = []

    def flush() -> None:
        with transaction.atomic():
            orders = Order.objects.bulk_create([order for order, _ in pending])
            for order, line in zip(orders, (line for _, line in pending), strict=True):
                line.order_id = order.pk
            OrderLine.objects.bulk_create([line for _, line in pending])
            # created_at is auto_now_add: an order was created when it was paid
            Order.objects.filter(pk__in=[order.pk for order in orders]).update(created_at=F("paid_at"))
        pending.clear()

    for paid_at, customer_id, properties in events:
        number = str((properties or {}).get("order_id") or "")[:32]
        amount = (properties or {}).get("amount_fen")
        if not number or number in existing or customer_id is None or not isinstance(amount, int) or amount <= 0:
            continue
        existing.add(number)
        (sku_id, product_id, title, _list_price, specs), quantity, price = _best_line(amount, skus)
        subtotal = price * quantity  # == amount
        age = now - paid_at
        done = age > timedelta(days=7)
        order = Order(
            workspace=workspace, customer_id=customer_id, number=number, source=OrderSource.MINIAPP,
            order_status=OrderStatus.COMPLETED if done else OrderStatus.CONFIRMED,
            payment_status=PaymentStatus.PAID,
            fulfilment_status=(FulfilmentStatus.DELIVERED if age > timedelta(days=3) else
                               FulfilmentStatus.SHIPPED if age > timedelta(days=1) else FulfilmentStatus.UNFULFILLED),
            subtotal_fen=subtotal, discount_fen=subtotal - amount, total_fen=amount, paid_fen=amount,
            pay_expires_at=paid_at, paid_at=paid_at, remark=SIMULATED_REMARK,
            shipped_at=paid_at + timedelta(days=1) if age > timedelta(days=1) else None,
            delivered_at=paid_at + timedelta(days=3) if age > timedelta(days=3) else None,
            completed_at=paid_at + timedelta(days=7) if done else None,
            price_explanation={"simulated": True})
        line = OrderLine(sku_id=sku_id, product_id=product_id, title=title, specs=specs or {},
                         unit_price_fen=price, quantity=quantity, discount_fen=subtotal - amount, payable_fen=amount)
        pending.append((order, line))
        created += 1
        if len(pending) >= ORDER_BATCH:
            flush()
    if pending:
        flush()
    return created


def demo_segments(workspace: Workspace) -> int:
    created = 0
    for name, description, definition in SEGMENTS:
        if not Segment.objects.filter(workspace=workspace, name=name).exists():
            segment_create(workspace=workspace, actor=None, name=name, definition=definition,
                           description=description, refresh_minutes=30)
            created += 1
    return created


def demo_service(workspace: Workspace) -> dict[str, int]:
    created = {"faq": 0, "rules": 0}
    for question, answer, variants in FAQ:
        if not FaqEntry.objects.filter(workspace=workspace, question=question).exists():
            faq_save(workspace=workspace, actor=None, question=question, answer=answer, variants=variants)
            created["faq"] += 1
    for pattern, match, reply, priority in SERVICE_RULES:
        if not KeywordRule.objects.filter(workspace=workspace, pattern=pattern).exists():
            service_rule_save(workspace=workspace, actor=None, pattern=pattern, match=match, reply=reply,
                              priority=priority)
            created["rules"] += 1
    return created


def demo_loyalty(workspace: Workspace) -> dict[str, int]:
    """Growth tasks (the loyalty defaults), a points mall and lottery prizes on the demo's coupons."""
    tasks = len(tasks_ensure(workspace=workspace))
    coupons = dict(CouponTemplate.objects.filter(workspace=workspace).values_list("name", "pk"))
    created = {"tasks": tasks, "mall": 0, "prizes": 0}
    if not ExchangeItem.objects.filter(workspace=workspace).exists():
        for title, kind, cost, stock, limit in MALL:
            if kind == "coupon" and title not in coupons:
                continue
            exchange_item_save(workspace=workspace, fields={
                "title": title, "kind": kind, "points_cost": cost, "stock": stock, "per_customer_limit": limit,
                "coupon_template_id": coupons.get(title, "") if kind == "coupon" else ""})
            created["mall"] += 1
    if not LotteryPrize.objects.filter(workspace=workspace).exists():
        for name, kind, points, weight, stock in PRIZES:
            if kind == "coupon" and name not in coupons:
                continue
            prize_save(workspace=workspace, fields={
                "name": name, "kind": kind, "points": points, "weight": weight,
                "stock": "" if stock is None else stock,
                "coupon_template_id": coupons.get(name, "") if kind == "coupon" else ""})
            created["prizes"] += 1
    return created


def _journey_definitions(workspace: Workspace) -> list[tuple[str, str, dict]]:
    segments = dict(Segment.objects.filter(workspace=workspace).values_list("name", "pk"))
    coupons = dict(CouponTemplate.objects.filter(workspace=workspace).values_list("kind", "pk"))
    official = WeChatApp.objects.filter(workspace=workspace, kind="official", is_active=True).first()
    welcome_message = ({"id": "hello", "type": "message", "channel": "official_custom", "app_id": official.pk,
                        "text": "欢迎来到花漾美妆～新人专享 20 元券已放进你的账户，去商城逛逛吧 🌸", "next": ""}
                       if official else {"id": "hello", "type": "task", "title": "欢迎新客并介绍新人券",
                                         "level": "junior", "sla_minutes": 240, "next": ""})
    welcome = {
        "trigger": {"type": "segment_entered", "segment_id": segments[WELCOME_SEGMENT], "include_existing": True,
                    "reentry": "once"},
        "entry": "wait1",
        "goal": {"event_type": "order_paid", "days": 14},
        "steps": [
            {"id": "wait1", "type": "wait", "minutes": 60, "next": "bought"},
            {"id": "bought", "type": "condition", "check": {"kind": "event_since_entry", "event_type": "order_paid"},
             "yes": "", "no": "coupon"},
            {"id": "coupon", "type": "coupon", "template_id": coupons["newcomer"], "next": "hello"},
            welcome_message,
        ],
    }
    wake = {
        "trigger": {"type": "layer", "kind": "lifecycle", "to": "silent", "reentry": "every"},
        "entry": "coupon",
        "goal": {"event_type": "order_paid", "days": 30},
        "steps": [
            {"id": "coupon", "type": "coupon", "template_id": coupons["threshold"], "next": "wait3d"},
            {"id": "wait3d", "type": "wait", "minutes": 3 * 24 * 60, "next": "back"},
            {"id": "back", "type": "condition", "check": {"kind": "event_since_entry", "event_type": "order_paid"},
             "yes": "", "no": "route"},
            {"id": "route", "type": "route721", "weights": {"auto": 70, "junior": 20, "expert": 10},
             "title": "沉睡客户回访：了解近况并推荐回购", "auto": "points", "next": ""},
            {"id": "points", "type": "points", "amount": 50, "next": ""},
        ],
    }
    return [("新客欢迎", "小红书新客进入人群后：等 1 小时，未下单则发新人券并欢迎", welcome),
            ("沉睡唤醒", "生命周期进入沉默：发满减券，3 天后仍未下单按 721 分配（自动送积分 / 初级 / 专家跟进）", wake)]


def demo_journeys(workspace: Workspace) -> int:
    created = 0
    for name, description, definition in _journey_definitions(workspace):
        journey = Journey.objects.filter(workspace=workspace, name=name).first()
        if journey is None:
            journey = journey_create(workspace=workspace, name=name, definition=definition, description=description)
            created += 1
        if journey.status == JourneyStatus.DRAFT:
            journey_activate(workspace=workspace, journey_id=journey.pk)
    return created


def demo_communities(workspace: Workspace, *, wait_seconds: float = 0) -> int:
    """Link the demo's WeCom groups (created in the simulator when serving) as communities of their types,
    with an ad-spam keyword rule and the default weekly rhythm of each type. Waits up to ``wait_seconds``
    for the groups' callbacks to bring them over."""
    deadline = time.monotonic() + wait_seconds
    while True:
        groups = list(CustomerGroup.objects.filter(workspace=workspace, dismissed_at=None,
                                                   name__in=list(COMMUNITY_TYPES)))
        if len(groups) >= len(COMMUNITY_TYPES) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    linked = set(Community.objects.filter(workspace=workspace).values_list("wecom_chat_id", flat=True))
    created = 0
    for group in groups:
        if group.chat_id in linked:
            continue
        community = community_create(workspace=workspace, name=group.name, type=COMMUNITY_TYPES[group.name],
                                     chat_id=group.chat_id)
        community_rule_save(workspace=workspace, community=community, kind="keyword", keywords=COMMUNITY_AD_WORDS,
                            actions=["warn", "tag"])
        created += 1
    for kind in set(COMMUNITY_TYPES.values()):
        rhythm_slots(workspace=workspace, community_type=kind)  # the seed's weekly plan, written once
    return created


def demo_engagement(workspace: Workspace) -> dict[str, int]:
    """Everything above, then the due work once; returns counts for the demo's output."""
    orders = demo_orders(workspace)
    service = demo_service(workspace)
    loyalty = demo_loyalty(workspace)
    segments = demo_segments(workspace)
    # Journeys are switched on before the first scoring and refresh, as a brand would: the layer moves and
    # segment entries those publish let customers in (once; a second run moves nothing, so adds nobody).
    journeys = demo_journeys(workspace)
    rfm_recompute(workspace=workspace)
    for segment in Segment.objects.filter(workspace=workspace, archived=False):
        segment_refresh(segment=segment)
    journeys_tick()
    communities = demo_communities(workspace)
    return {"orders": orders, "segments": segments, "journeys": journeys, "communities": communities,
            **{f"service_{key}": value for key, value in service.items()}, **loyalty}


def demo_engagement_summary(workspace: Workspace) -> list[str]:
    """One line per area: what exists now (after ``demo_engagement``)."""
    from siyu.engagement.journeys.models import JourneyRun
    from siyu.loyalty.models import GrowthTask

    scores = CustomerScore.objects.filter(workspace=workspace)
    segments = Segment.objects.filter(workspace=workspace, archived=False).order_by("pk")
    return [
        f"订单 orders: {Order.objects.filter(workspace=workspace).count():,} "
        f"({Order.objects.filter(workspace=workspace, remark=SIMULATED_REMARK).count():,} from simulated purchases)",
        f"RFM: {scores.count():,} customers scored, {scores.exclude(frequency=0).count():,} buyers",
        "分群 segments: " + ", ".join(f"{segment.name} {segment.member_count:,}" for segment in segments),
        "旅程 journeys: " + ", ".join(
            f"{journey.name} ({journey.status}, {JourneyRun.objects.filter(journey=journey).count():,} entered)"
            for journey in Journey.objects.filter(workspace=workspace).order_by("pk")),
        f"社群 communities: {Community.objects.filter(workspace=workspace).count()} linked WeCom groups",
        f"智能客服 service bot: {FaqEntry.objects.filter(workspace=workspace).count()} FAQ, "
        f"{KeywordRule.objects.filter(workspace=workspace).count()} keyword rules",
        f"会员 membership: {GrowthTask.objects.filter(workspace=workspace).count()} growth tasks, "
        f"{ExchangeItem.objects.filter(workspace=workspace).count()} mall items, "
        f"{LotteryPrize.objects.filter(workspace=workspace).count()} lottery prizes",
    ]
