"""Panels other areas add to the customer 360 page (SPEC O1): RFM layer, communities, conversations, journeys…

An area's console module registers its panel at import time::

    customer_panels.register(CustomerPanel(key="rfm", title=_("RFM 分层"), order=10,
                                           template="console/engagement/rfm/_customer_panel.html",
                                           context=rfm_panel_context))

``context(request, customer)`` returns the template's context, or None to leave the panel out (for
example for a role that must not see it). A failing panel is logged and left out: one area's bug never
takes the whole 360 page down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CustomerPanel:
    key: str
    title: Any  # a lazy translation
    template: str
    context: Callable[[Any, Any], dict | None]
    order: int = 100


_panels: dict[str, CustomerPanel] = {}


def register(panel: CustomerPanel) -> None:
    _panels[panel.key] = panel


def panels_for(request, customer) -> list[tuple[CustomerPanel, dict]]:
    shown = []
    for panel in sorted(_panels.values(), key=lambda p: (p.order, p.key)):
        try:
            context = panel.context(request, customer)
        except Exception:
            logger.exception("customer panel %s failed for customer %s", panel.key, customer.pk)
            continue
        if context is not None:
            shown.append((panel, context))
    return shown
