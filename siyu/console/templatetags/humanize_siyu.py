"""Small display filters for the console."""

from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """12345 -> 12,345 (the grouping Chinese and English readers both expect in a dashboard)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
