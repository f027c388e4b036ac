"""Why a planned journey message is suppressed or capped: the one wording both planners write (pure).

The per-run planner (``engine``) and the set-based one (``fanout``) must give every run the same plan,
status *and* reason, so the texts live here once.
"""

from __future__ import annotations

REFUSED = "客户已退订营销消息 / unsubscribed from marketing"
NO_ACCOUNT = "账号不存在或已停用 / account missing or disabled"
NO_OPENID = "客户没有该账号的 openid / no openid for this account"
NOT_FOLLOWING = "未关注公众号（已取消关注视为退订）/ not following (unfollowed = unsubscribed)"
# Channels that reach the customer through an openid of the step's account, and those that need a follower.
OPENID_CHANNELS = ("official_template", "official_custom", "miniapp_subscribe")
FOLLOWER_CHANNELS = ("official_template", "official_custom")


def capped(caps: dict[str, int]) -> str:
    return f"超出频次上限 {caps['day']}/天 {caps['week']}/周 / over the cap"


def window_closed() -> str:
    """The 48-hour customer-service window's refusal, as the 公众号 rules word it."""
    from siyu.core.errors import SiyuError
    from siyu.wechat.official.rules import custom_window_check

    try:
        custom_window_check(last_interaction_at=None, sent_since=0, now=None)
    except SiyuError as error:
        return f"{error.message_zh} / {error.message_en}"[:255]
    raise AssertionError("a closed window is refused")
