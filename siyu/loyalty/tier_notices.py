"""Notices of tier changes to the customer: a 公众号 template message when they follow the brand's official
account (and a template is configured), else a 小程序 subscribe message when they granted one, else nothing.

One ``TierNotice`` row per ``TierChange`` (unique), so a replayed ``loyalty.tier_changed`` sends nothing twice.
The template send is created in the same transaction as the notice row and delivered after commit by the
official account's send task; a subscribe message is sent at once, its notice row committed first.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core.errors import SiyuError
from siyu.core.timeutil import SHANGHAI
from siyu.customers.models import Identity
from siyu.loyalty.checkin import member_rules
from siyu.loyalty.models import TierChange, TierNotice
from siyu.loyalty.tier_rules import TIER_NAMES
from siyu.wechat.clients import WeChatApiError
from siyu.wechat.models import AppKind, WeChatApp

logger = logging.getLogger(__name__)


def _text(change: TierChange) -> tuple[str, str]:
    name = TIER_NAMES[change.to_code][0]
    if change.direction == "up":
        return f"恭喜！您的会员等级已升级为{name}", "感谢您的支持，更多会员权益请进入会员中心查看"
    return f"您的会员等级已调整为{name}", "继续消费和完成成长任务可提升等级"


def tier_notice_send(*, change_id: int) -> TierNotice | None:
    """Notify the customer of one tier change (idempotent: a second call returns the first notice)."""
    from siyu.wechat.consumer.miniapp import subscribe_message_send
    from siyu.wechat.consumer.models import SubscribeAuthorisation
    from siyu.wechat.official.messaging import template_send_request
    from siyu.wechat.official.models import Follower

    change = TierChange.objects.filter(pk=change_id).select_related("customer").first()
    if change is None:
        return None
    existing = TierNotice.objects.filter(change=change).first()
    if existing is not None:
        return existing
    rules = member_rules(workspace=change.workspace_id)
    headline, remark = _text(change)
    when = change.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    identities = Identity.objects.filter(workspace_id=change.workspace_id, customer_id=change.customer_id,
                                         kind="openid")
    apps = {app.appid: app for app in WeChatApp.objects.filter(
        workspace_id=change.workspace_id, is_active=True, appid__in=identities.values("namespace"))}
    now = timezone.now()

    def record(channel: str, status: str, detail: str = "") -> TierNotice | None:
        try:
            with transaction.atomic():
                return TierNotice.objects.create(workspace_id=change.workspace_id, change=change, channel=channel,
                                                 status=status, detail=detail[:255], created_at=now)
        except IntegrityError:
            return None  # a concurrent call recorded (and sent) it

    if rules.tier_notice_template_id:
        for identity in identities:
            app = apps.get(identity.namespace)
            if app is None or app.kind != AppKind.OFFICIAL:
                continue
            if not Follower.objects.filter(app=app, openid=identity.value, subscribed=True).exists():
                continue
            try:
                with transaction.atomic():
                    notice = TierNotice.objects.create(workspace_id=change.workspace_id, change=change,
                                                       channel="official", status="queued", created_at=now)
                    send = template_send_request(
                        app=app, actor=None, template_id=rules.tier_notice_template_id,
                        data={"first": headline, "keyword1": TIER_NAMES[change.to_code][0], "keyword2": when,
                              "remark": remark}, openids=[identity.value])
                    notice.detail = f"message_send:{send.pk}"
                    notice.save(update_fields=["detail"])
                return notice
            except IntegrityError:
                return TierNotice.objects.filter(change=change).first()
            except SiyuError as error:
                logger.warning("tier notice %s via %s refused: %s", change.pk, app.appid, error.code)
    if rules.tier_notice_subscribe_template_id:
        template_id = rules.tier_notice_subscribe_template_id
        for identity in identities:
            app = apps.get(identity.namespace)
            if app is None or app.kind != AppKind.MINIAPP:
                continue
            if not SubscribeAuthorisation.objects.filter(app=app, identity=identity, template_id=template_id,
                                                         remaining__gt=0).exists():
                continue
            notice = record("miniapp", "sending")
            if notice is None:
                return TierNotice.objects.filter(change=change).first()
            try:
                result = subscribe_message_send(app=app, identity=identity, template_id=template_id, data={
                    "thing1": {"value": headline[:20]}, "phrase2": {"value": TIER_NAMES[change.to_code][0]},
                    "time3": {"value": when}}, page="pages/member/index")
                notice.status, notice.detail = "sent", f"msgid:{result.msgid}"
            except (SiyuError, WeChatApiError) as error:
                notice.status, notice.detail = "failed", str(getattr(error, "code", "") or error)[:255]
            notice.save(update_fields=["status", "detail"])
            return notice
    return record("", "skipped", "no_channel")
