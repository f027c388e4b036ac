"""Template filters for order pages: fen as yuan, status labels."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext_lazy as _

from siyu.commerce.orders import domain
from siyu.commerce.orders.models import AfterSaleStatus, FulfilmentStatus, OrderStatus, PaymentStatus

register = template.Library()
_LABELS = {**dict(OrderStatus.choices), **dict(PaymentStatus.choices), **dict(FulfilmentStatus.choices)}


@register.filter
def yuan(fen) -> str:
    """12345 → "123.45"."""
    try:
        return domain.yuan(int(fen))
    except (TypeError, ValueError):
        return ""


@register.filter
def status_label(value) -> str:
    return str(_LABELS.get(value, value or "—"))


@register.filter
def aftersale_status_label(value) -> str:
    return str(dict(AfterSaleStatus.choices).get(value, value or "—"))


ACTOR_LABELS = {"customer": _("买家"), "system": _("系统"), "wechat_pay": _("微信支付"), "operator": _("商家")}


@register.filter
def actor_label(value) -> str:
    return str(ACTOR_LABELS.get(value, value or "—"))
