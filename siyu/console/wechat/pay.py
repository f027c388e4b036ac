"""Console pages for 微信支付: payments, refunds and the notification inbox; admins may refund."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.console.access import console_view, posted_object
from siyu.console.rendering import page
from siyu.core.errors import SiyuError
from siyu.wechat.pay import domain, selectors, services
from siyu.wechat.pay.models import IntentStatus, NotificationOutcome, PaymentIntent

VIEW_ROLES = frozenset({"admin", "operator", "analyst"})  # service staff do not see payments
REFUND_ROLES = frozenset({"admin"})


@console_view(roles=VIEW_ROLES)
def pay_overview(request):
    status = request.GET.get("status", "")
    outcome = request.GET.get("outcome", "")
    return page(request, "console/wechat/pay/overview.html", {
        "payments": selectors.payments_recent(workspace=request.workspace, status=status),
        "refunds": selectors.refunds_recent(workspace=request.workspace),
        "notifications": selectors.notifications_recent(workspace=request.workspace, outcome=outcome),
        "totals": selectors.payment_totals(workspace=request.workspace),
        "statuses": IntentStatus.choices, "status": status,
        "outcomes": NotificationOutcome.choices, "outcome": outcome,
        "can_refund": request.membership.role in REFUND_ROLES,
    }, active="wechat_pay")


def fen_from_yuan(text: str) -> int:
    try:
        return domain.fen_parse(text)
    except ValueError as error:
        raise SiyuError("amount_invalid", "退款金额须大于 0 且最多两位小数", "The amount must be positive with at most "
                        "two decimals") from error


@require_POST
@console_view(edit=True, roles=REFUND_ROLES)
def pay_refund(request):
    intent = posted_object(request, PaymentIntent, "intent_id", "支付单", "Payment")
    amount_fen = fen_from_yuan(request.POST.get("amount_yuan", ""))
    refund = services.refund_request(intent_id=intent.pk, amount_fen=amount_fen,
                                     reason=request.POST.get("reason", ""), actor=request.user)
    if refund.status == domain.REFUND_FAILED:
        messages.error(request, _("微信支付拒绝了退款：%(reason)s") % {"reason": refund.failure})
    else:
        messages.success(request, _("已提交退款 %(amount)s 元（%(no)s）")
                         % {"amount": domain.yuan(refund.amount_fen), "no": refund.out_refund_no})
    return redirect("console:wechat_pay")


urlpatterns = [
    path("pay/", pay_overview, name="wechat_pay"),
    path("pay/refund", pay_refund, name="wechat_pay_refund"),
]
