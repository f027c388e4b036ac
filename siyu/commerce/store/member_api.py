"""The mini-program's 会员中心 over JSON (/api/mini/v1/member/…): tier and benefits, points and their history,
daily check-in, growth tasks, shares, the points mall, the lottery and reviews — the same services as the H5
member centre (siyu.loyalty, siyu.commerce.store.member_services), the same session and errors as the rest of
the mini-program API (``siyu.commerce.store.api``: Bearer session from code2session, ``{code, message,
message_en}``).

Writes that spend or earn are idempotent like the H5 forms: a check-in counts once a Shanghai day, a share /
exchange / draw carries the client's ``ref`` (or an ``Idempotency-Key`` header), and a replay answers the first
result with ``created: false`` and changes nothing. A task's reward is claimed once per period (409 after).
"""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone
from ninja import Field, Router, Schema, Status
from pydantic import StrictInt, StrictStr

from siyu.commerce.store import member_services
from siyu.commerce.store.identity import Shopper
from siyu.core.errors import SiyuError
from siyu.core.timeutil import local_day
from siyu.loyalty.checkin import checkin, checkin_streak, checkin_today, member_rules, share_record
from siyu.loyalty.exchange import exchange_items
from siyu.loyalty.lottery import lottery_odds, lottery_prizes
from siyu.loyalty.missions import mission_claim, tasks_for_customer
from siyu.loyalty.models import LotteryDraw, PointsTransaction, Reason, RewardKind, TransactionKind
from siyu.loyalty.points import points_balance
from siyu.loyalty.tier_rules import next_tier
from siyu.loyalty.tiers import growth_of, tier_basis, tier_levels, tier_of

router = Router(tags=["mini-program · 会员 member"])  # auth: the mini-program router's (mounted under it)

MAX_PAGE = 1000
MAX_PAGE_SIZE = 50
MAX_REF = 80


def _shopper(request) -> Shopper:
    session = request.auth
    return Shopper(workspace=session.workspace, customer=session.customer, session=session)


def _ref(request, body_ref: str | None) -> str:
    """The client's idempotency reference: the body's ``ref``, else the ``Idempotency-Key`` header."""
    ref = (body_ref or request.headers.get("Idempotency-Key") or "").strip()
    if not ref or len(ref) > MAX_REF or not ref.isprintable():
        raise SiyuError("ref_invalid", f"请求编号 ref 必填（最多 {MAX_REF} 个字符），重试时沿用同一编号",
                        f"A request reference (ref, {MAX_REF} characters max) is required; reuse it on retries",
                        details={"field": "ref"})
    return ref


# --- schemas --------------------------------------------------------------------------------------------------
class Error(Schema):
    code: str
    message: str
    message_en: str
    details: dict | None = None


ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 409: Error, 422: Error}


class Benefit(Schema):
    code: str = Field(description="discount | free_shipping | priority_service | exclusive_items")
    label_zh: str
    label_en: str
    discount_percent: int = Field(0, description="折扣的百分比(5 = 95 折) / percent off (discount only)")


class TierOut(Schema):
    code: str = Field(description="normal | silver | gold | diamond")
    name_zh: str
    name_en: str
    rank: int
    growth_threshold: int
    spend_threshold_fen: int
    benefits: list[Benefit]


class NextTier(Schema):
    tier: TierOut
    threshold: int = Field(description="升级门槛(成长值,或按消费时为分) / the next tier's threshold on the basis")
    gap: int = Field(description="还差多少(同单位) / how much is missing, same unit")
    percent: int = Field(description="当前等级到下一等级的进度 0–100 / progress from this tier to the next")


class Overview(Schema):
    points_balance: int = Field(description="可用积分(已扣除到期未结算的) / points spendable now")
    tier: TierOut
    basis: str = Field(description="growth | spend: 等级依据 / what tiers are reached on")
    window_days: int = Field(description="统计窗口(天) / the rolling window of growth and spend")
    growth_value: int
    spend_fen: int
    next_tier: NextTier | None = Field(description="最高等级时为 null / null at the top tier")
    checked_in_today: bool
    checkin_streak: int
    checkin_enabled: bool
    tiers: list[TierOut]


class LedgerRow(Schema):
    id: int
    kind: str = Field(description="earn | burn | expire | reverse | adjust")
    reason: str
    reason_zh: str
    reason_en: str
    amount: int = Field(description="正数为获得,负数为使用/到期 / positive in, negative out")
    note: str
    created_at: datetime


class Ledger(Schema):
    balance: int
    items: list[LedgerRow]
    page: int
    page_size: int
    total: int
    has_next: bool


class CheckInOut(Schema):
    created: bool = Field(description="false: 今天已签到,未重复发放 / already checked in today, nothing changed")
    day: date
    streak: int
    points: int = Field(description="本次签到所得(含连续签到奖励) / points of today's check-in incl. bonus")
    bonus: int
    balance: int


class TaskOut(Schema):
    id: int
    kind: str = Field(description="newbie(新手)| daily(日常)")
    trigger: str
    title: str
    target: int
    count: int = Field(description="本周期进度(不超过 target) / progress this period, at most target")
    percent: int
    completed: bool
    claimed: bool
    reward_points: int
    reward_growth: int
    period: str


class TaskClaimOut(Schema):
    task_id: int
    period: str
    reward_points: int
    reward_growth: int
    balance: int


class ShareIn(Schema):
    target: StrictStr = Field(description="分享的内容,如 product:12 / what was shared")
    ref: StrictStr | None = Field(None, description="分享编号(幂等) / the share's id (idempotent)")


class ShareOut(Schema):
    target: str
    points: int = Field(description="0: 今日分享奖励已达上限 / today's cap reached")
    balance: int


class MallItem(Schema):
    id: int
    title: str
    kind: str = Field(description="coupon | gift")
    points_cost: int
    stock: int
    per_customer_limit: int = Field(description="0 = 不限 / no limit")
    affordable: bool


class Mall(Schema):
    balance: int
    items: list[MallItem]


class RefIn(Schema):
    ref: StrictStr | None = Field(None, description="请求编号(幂等,重试沿用);也可用 Idempotency-Key 头 / "
                                                    "idempotency reference, or the Idempotency-Key header")


class ExchangeOut(Schema):
    created: bool = Field(description="false: 同一 ref 的重放,未重复扣分 / a replay, nothing spent twice")
    redemption_id: int
    item_id: int
    title: str
    kind: str
    points: int
    balance: int


class PrizeOut(Schema):
    id: int
    name: str
    kind: str = Field(description="points | coupon | gift | nothing")
    points: int
    odds_percent: float


class DrawRow(Schema):
    id: int
    prize: PrizeOut | None
    won: bool
    cost: int
    created_at: datetime


class Lottery(Schema):
    enabled: bool
    cost: int
    daily_limit: int = Field(description="0 = 不限 / no limit")
    draws_today: int
    balance: int
    prizes: list[PrizeOut]
    recent: list[DrawRow]


class DrawOut(DrawRow):
    created: bool = Field(description="false: 同一 ref 的重放 / a replay of an earlier draw")
    balance: int


class ReviewableLine(Schema):
    order_number: str
    line_id: int
    product_id: int | None
    title: str
    specs: dict


class Reviews(Schema):
    review_points: int
    min_chars: int
    max_chars: int
    lines: list[ReviewableLine]


class ReviewIn(Schema):
    order_number: StrictStr
    line_id: StrictInt
    rating: StrictInt = Field(description="1–5")
    text: StrictStr


class ReviewOut(Schema):
    id: int
    rating: int
    points: int
    balance: int


# --- helpers ----------------------------------------------------------------------------------------------------
def _benefits(tier) -> list[dict]:
    items = []
    if tier.discount_percent:
        rate = f"{(100 - tier.discount_percent) / 10:g}"
        items.append({"code": "discount", "label_zh": f"会员折扣 {rate} 折",
                      "label_en": f"{tier.discount_percent}% member discount", "discount_percent": tier.discount_percent})
    for flag, zh, en in (("free_shipping", "包邮", "Free shipping"), ("priority_service", "优先客服", "Priority service"),
                         ("exclusive_items", "专属商品", "Exclusive items")):
        if getattr(tier, flag):
            items.append({"code": flag, "label_zh": zh, "label_en": en})
    return items


def _tier_out(tier) -> dict:
    return {"code": tier.code, "name_zh": tier.name_zh, "name_en": tier.name_en, "rank": tier.rank,
            "growth_threshold": tier.growth_threshold, "spend_threshold_fen": tier.spend_threshold_fen,
            "benefits": _benefits(tier)}


def _prize_out(prize, odds: dict[int, float]) -> dict | None:
    if prize is None:
        return None
    return {"id": prize.pk, "name": prize.name, "kind": prize.kind, "points": prize.points,
            "odds_percent": round(odds.get(prize.pk, 0.0), 2)}


def _draw_out(draw, odds: dict[int, float]) -> dict:
    prize = draw.prize
    return {"id": draw.pk, "prize": _prize_out(prize, odds), "won": prize is not None and prize.kind != RewardKind.NOTHING,
            "cost": draw.cost, "created_at": draw.created_at}


# --- overview and points ----------------------------------------------------------------------------------------
@router.get("", response={200: Overview, **ERRORS},
            summary="会员概览:积分、等级与权益、成长值、下一等级 / Member overview")
def overview(request):
    shopper = _shopper(request)
    workspace, customer = shopper.workspace, shopper.customer
    tiers = tier_levels(workspace=workspace)
    current = tier_of(customer=customer)
    basis, window = tier_basis(workspace=workspace)
    growth, spend_fen = growth_of(customer=customer)
    step = next_tier(tiers, current=current, basis=basis, value=spend_fen if basis == "spend" else growth)
    following = None if step is None else {"tier": _tier_out(step.tier), "threshold": step.threshold,
                                           "gap": step.gap, "percent": step.percent}
    return {"points_balance": points_balance(customer=customer), "tier": _tier_out(current), "basis": basis,
            "window_days": window, "growth_value": growth, "spend_fen": spend_fen, "next_tier": following,
            "checked_in_today": checkin_today(customer=customer) is not None,
            "checkin_streak": checkin_streak(customer=customer),
            "checkin_enabled": member_rules(workspace=workspace).checkin_enabled,
            "tiers": [_tier_out(tier) for tier in tiers]}


@router.get("/points", response={200: Ledger, **ERRORS}, summary="积分明细(分页,新的在前) / Points history")
def points(request, page: int = 1, page_size: int = 20):
    shopper = _shopper(request)
    if not 1 <= page <= MAX_PAGE:
        raise SiyuError("invalid_page", "页码无效", "Invalid page number", status=400, details={"field": "page"})
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SiyuError("invalid_page_size", f"每页条数应为 1–{MAX_PAGE_SIZE}",
                        f"page_size must be 1 to {MAX_PAGE_SIZE}", status=400, details={"field": "page_size"})
    rows = PointsTransaction.objects.filter(workspace=shopper.workspace, customer=shopper.customer)
    total = rows.count()
    start = (page - 1) * page_size
    items = []
    for tx in rows.order_by("-pk")[start:start + page_size]:
        zh, en = _reason_labels(tx.reason, tx.kind)
        items.append({"id": tx.pk, "kind": tx.kind, "reason": tx.reason, "reason_zh": zh, "reason_en": en,
                      "amount": tx.amount, "note": tx.note, "created_at": tx.created_at})
    return {"balance": points_balance(customer=shopper.customer), "items": items, "page": page,
            "page_size": page_size, "total": total, "has_next": start + page_size < total}


# Both languages in every row (the client picks), whatever the request's language.
REASONS = {"purchase": ("消费", "Purchase"), "checkin": ("签到", "Check-in"), "share": ("分享", "Share"),
           "review": ("评价", "Review"), "task": ("任务", "Task"), "checkout": ("下单抵现", "Used at checkout"),
           "exchange": ("积分兑换", "Points mall"), "expiry": ("到期", "Expired"),
           "spend_returned": ("订单取消/退款退回", "Returned (order cancelled or refunded)"),
           "earn_reversed": ("订单退款扣回", "Taken back (order refunded)"), "manual": ("人工调整", "Adjustment"),
           "merge_out": ("客户合并转出", "Moved out (profiles merged)"),
           "merge_in": ("客户合并转入", "Moved in (profiles merged)")}


def _reason_labels(reason: str, kind: str) -> tuple[str, str]:
    if reason == Reason.LOTTERY:
        return ("抽奖奖品", "Lottery prize") if kind == TransactionKind.EARN else ("抽奖", "Lottery draw")
    return REASONS.get(reason, (reason, reason))


# --- check-in, tasks, shares ------------------------------------------------------------------------------------
@router.post("/checkin", response={200: CheckInOut, **ERRORS},
             summary="每日签到(每天一次,重复请求返回当天结果) / Daily check-in (once a day)")
def member_checkin(request):
    shopper = _shopper(request)
    result = checkin(workspace=shopper.workspace, customer=shopper.customer)
    row = result.check_in
    return {"created": result.created, "day": row.day, "streak": row.streak, "points": row.points,
            "bonus": row.bonus, "balance": points_balance(customer=shopper.customer)}


@router.get("/tasks", response={200: list[TaskOut], **ERRORS},
            summary="成长任务与进度(新手在前) / Growth tasks with progress")
def tasks(request):
    shopper = _shopper(request)
    return [{"id": view.task.pk, "kind": view.task.kind, "trigger": view.task.trigger, "title": view.task.title,
             "target": view.task.target, "count": view.shown_count, "percent": view.percent,
             "completed": view.completed, "claimed": view.claimed, "reward_points": view.task.reward_points,
             "reward_growth": view.task.reward_growth, "period": view.period}
            for view in tasks_for_customer(workspace=shopper.workspace, customer=shopper.customer)]


@router.post("/tasks/{task_id}/claim", response={200: TaskClaimOut, **ERRORS},
             summary="领取任务奖励(每周期一次,重复为 409) / Claim a completed task's reward (once a period)")
def task_claim(request, task_id: int):
    shopper = _shopper(request)
    progress = mission_claim(workspace=shopper.workspace, customer=shopper.customer, task_id=task_id)
    task = progress.task
    return {"task_id": task.pk, "period": progress.period, "reward_points": task.reward_points,
            "reward_growth": task.reward_growth, "balance": points_balance(customer=shopper.customer)}


@router.post("/share", response={200: ShareOut, **ERRORS},
             summary="分享得积分(每日有上限,ref 幂等) / A share: points within the daily cap")
def share(request, body: ShareIn):
    shopper = _shopper(request)
    row = share_record(workspace=shopper.workspace, customer=shopper.customer, target=body.target,
                       ref=_ref(request, body.ref))
    return {"target": row.target, "points": row.points, "balance": points_balance(customer=shopper.customer)}


# --- points mall ------------------------------------------------------------------------------------------------
@router.get("/mall", response={200: Mall, **ERRORS}, summary="积分商城 / Points mall")
def mall(request):
    shopper = _shopper(request)
    balance = points_balance(customer=shopper.customer)
    return {"balance": balance, "items": [
        {"id": item.pk, "title": item.title, "kind": item.kind, "points_cost": item.points_cost, "stock": item.stock,
         "per_customer_limit": item.per_customer_limit, "affordable": balance >= item.points_cost and item.stock > 0}
        for item in exchange_items(workspace=shopper.workspace)]}


@router.post("/mall/{item_id}/exchange", response={200: ExchangeOut, 201: ExchangeOut, **ERRORS},
             summary="积分兑换(ref 幂等:重放返回首次结果) / Exchange points for an item (idempotent by ref)")
def exchange(request, item_id: int, body: RefIn):
    shopper = _shopper(request)
    result = member_services.member_exchange(workspace=shopper.workspace, customer=shopper.customer,
                                             item_id=item_id, ref=_ref(request, body.ref))
    redemption = result.redemption
    data = {"created": result.created, "redemption_id": redemption.pk, "item_id": redemption.item_id,
            "title": redemption.item.title, "kind": redemption.item.kind, "points": redemption.points,
            "balance": points_balance(customer=shopper.customer)}
    return Status(201 if result.created else 200, data)


# --- lottery ----------------------------------------------------------------------------------------------------
@router.get("/lottery", response={200: Lottery, **ERRORS}, summary="抽奖:奖品、概率、今日次数 / Lottery")
def lottery(request):
    shopper = _shopper(request)
    rules = member_rules(workspace=shopper.workspace)
    prizes = lottery_prizes(workspace=shopper.workspace)
    odds = lottery_odds(prizes)
    draws = LotteryDraw.objects.filter(workspace=shopper.workspace, customer=shopper.customer)
    return {"enabled": rules.lottery_enabled, "cost": rules.lottery_cost, "daily_limit": rules.lottery_daily_limit,
            "draws_today": draws.filter(day=local_day(timezone.now())).count(),
            "balance": points_balance(customer=shopper.customer),
            "prizes": [_prize_out(prize, odds) for prize in prizes],
            "recent": [_draw_out(draw, odds) for draw in draws.select_related("prize").order_by("-pk")[:10]]}


@router.post("/lottery/draw", response={200: DrawOut, 201: DrawOut, **ERRORS},
             summary="抽奖一次(ref 幂等:重放不再扣分) / Draw once (idempotent by ref)")
def draw(request, body: RefIn):
    shopper = _shopper(request)
    result = member_services.member_lottery_draw(workspace=shopper.workspace, customer=shopper.customer,
                                                 ref=_ref(request, body.ref))
    odds = lottery_odds(lottery_prizes(workspace=shopper.workspace))
    data = {**_draw_out(result.draw, odds), "created": result.created,
            "balance": points_balance(customer=shopper.customer)}
    return Status(201 if result.created else 200, data)


# --- reviews ----------------------------------------------------------------------------------------------------
@router.get("/reviews", response={200: Reviews, **ERRORS},
            summary="待评价的已签收商品与评价奖励 / Delivered items awaiting a review")
def reviews(request):
    shopper = _shopper(request)
    rules = member_rules(workspace=shopper.workspace)
    lines = member_services.reviewable_lines(workspace=shopper.workspace, customer=shopper.customer)
    return {"review_points": rules.review_points, "min_chars": rules.review_min_chars,
            "max_chars": rules.review_max_chars,
            "lines": [{"order_number": line.order.number, "line_id": line.pk, "product_id": line.product_id,
                       "title": line.title, "specs": line.specs or {}} for line in lines]}


@router.post("/reviews", response={201: ReviewOut, **ERRORS},
             summary="评价一件已签收商品(每件一次,得积分) / Review a delivered item (once, earns points)")
def review(request, body: ReviewIn):
    shopper = _shopper(request)
    row = member_services.review_create(workspace=shopper.workspace, customer=shopper.customer,
                                        order_number=body.order_number, line_id=body.line_id, rating=body.rating,
                                        text=body.text)
    return Status(201, {"id": row.pk, "rating": row.rating, "points": row.points,
                        "balance": points_balance(customer=shopper.customer)})
