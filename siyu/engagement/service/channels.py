"""Sending a text to the customer of a conversation through the WeChat adapters (the bot never builds a
WeChat request itself): 公众号 customer-service messages (客服消息, WeChat's 48-hour window and five
messages per interaction checked by the official area), (微信客服 ``kf/send_msg`` is not wired yet)."""

from __future__ import annotations

from siyu.core.errors import SiyuError
from siyu.engagement.service.models import Channel, Conversation
from siyu.wechat.official.messaging import custom_send_request


def text_send(*, conversation: Conversation, text: str, actor=None) -> str:
    """Queue or send ``text``; returns a delivery reference. Raises SiyuError when WeChat's rules refuse it."""
    if conversation.channel == Channel.OFFICIAL:
        send = custom_send_request(app=conversation.app, actor=actor, openid=conversation.peer, text=text)
        return f"mp-send:{send.pk}"
    raise SiyuError("channel_unavailable", "该渠道暂不支持发送消息", "Sending on this channel is not available yet",
                    status=409, details={"channel": conversation.channel})
