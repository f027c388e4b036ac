"""Reading the bot's data: conversations of a customer, answered-vs-handed-off per day, the "try it" box."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from siyu.core.models import Workspace
from siyu.core.timeutil import local_day, start_of_local_day
from siyu.engagement.service.matching import Decision, decide
from siyu.engagement.service.models import Conversation, ConversationMessage, Direction, FaqEntry, Resolution
from siyu.engagement.service.retrieval import faq_index, keyword_rules
from siyu.engagement.service.services import service_settings

BOT_ANSWERED = (Resolution.KEYWORD, Resolution.FAQ)


def customer_conversation(*, workspace: Workspace | int, customer_id: int, limit: int = 30) -> list[ConversationMessage]:
    """The customer's latest messages across channels, oldest first."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    rows = (ConversationMessage.objects.filter(workspace_id=workspace_id, conversation__customer_id=customer_id)
            .select_related("faq", "staff", "conversation").order_by("-created_at", "-pk")[:limit])
    return list(reversed(rows))


def conversation_messages(*, conversation: Conversation, limit: int = 50) -> list[ConversationMessage]:
    rows = conversation.messages.select_related("faq", "staff").order_by("-created_at", "-pk")[:limit]
    return list(reversed(rows))


def stats_daily(*, workspace: Workspace, days: int = 14, now: datetime | None = None) -> dict:
    """Incoming messages per local day by outcome: answered by the bot, handed to a person, other."""
    now = now or timezone.now()
    first = local_day(now) - timedelta(days=days - 1)
    labels = [(first + timedelta(days=offset)) for offset in range(days)]
    answered, handed, other = ([0] * days for _ in range(3))
    rows = ConversationMessage.objects.filter(workspace=workspace, direction=Direction.IN,
                                              created_at__gte=start_of_local_day(first)).values_list("created_at",
                                                                                                       "resolution")
    for created_at, resolution in rows.iterator(chunk_size=2000):
        position = (local_day(created_at) - first).days
        if not 0 <= position < days:
            continue
        if resolution in BOT_ANSWERED:
            answered[position] += 1
        elif resolution == Resolution.HANDOFF:
            handed[position] += 1
        else:
            other[position] += 1
    total_answered, total_handed = sum(answered), sum(handed)
    decided = total_answered + total_handed
    return {"days": [day.isoformat() for day in labels], "answered": answered, "handed": handed, "other": other,
            "total_answered": total_answered, "total_handed": total_handed, "total_other": sum(other),
            "bot_rate": round(100 * total_answered / decided, 1) if decided else None}


def try_it(*, workspace: Workspace, text: str) -> tuple[Decision, float]:
    """What the bot would do with ``text`` right now (nothing stored), and the threshold it used."""
    threshold = service_settings(workspace=workspace).threshold
    decision = decide(text=text, rules=keyword_rules(workspace_id=workspace.pk), index=faq_index(workspace_id=workspace.pk),
                      threshold=threshold)
    return decision, threshold


def faq_entries(*, workspace: Workspace):
    return FaqEntry.objects.filter(workspace=workspace).order_by("-enabled", "pk")
