"""Small display filters for the console."""

from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()


@register.filter
def thousands(value) -> str:
    """12345 -> 12,345 (the grouping Chinese and English readers both expect in a dashboard)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


_GENDERS = {"female": _("女"), "male": _("男"), "unknown": _("未知")}


@register.filter
def gender_label(value) -> str:
    """Stored codes (female/male/unknown) in the reader's language; anything else shown as stored."""
    return _GENDERS.get(value, value) if value else "—"
