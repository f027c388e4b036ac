"""Money in the H5 store: integer fen shown as ¥ yuan with two decimals (no float arithmetic)."""

from django import template

register = template.Library()


@register.filter
def yuan(fen) -> str:
    """12345 → "¥123.45"; -500 → "-¥5.00"."""
    try:
        fen = int(fen)
    except (TypeError, ValueError):
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole}.{cents:02d}"
