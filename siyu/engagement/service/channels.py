"""Sending a text to the customer of a conversation through the WeChat adapters (the bot never builds a
WeChat request itself): 公众号 customer-service messages (客服消息, WeChat's 48-hour window and five
messages per interaction checked by the official area), or 微信客服 ``kf/send_msg`` through the WeCom area."""

from __future__ import annotations

from siyu.engagement.service.models import Channel, Conversation
from siyu.wechat.official.messaging import custom_send_request
from siyu.wechat.work import kf


def text_send(*, conversation: Conversation, text: str, actor=None, ref: str = "") -> str:
    """Queue or send ``text``; returns a delivery reference. Raises SiyuError when WeChat's rules refuse it."""
    if conversation.channel == Channel.OFFICIAL:
        send = custom_send_request(app=conversation.app, actor=actor, openid=conversation.peer, text=text)
        return f"mp-send:{send.pk}"
    # 微信客服: sent at once (we are in a task, or a person pressed send); ``ref`` makes WeCom refuse a repeat
    msgid = kf.kf_text_send(conversation.app, open_kfid=conversation.account, external_userid=conversation.peer,
                            text=text, msgid=ref)
    return f"kf-msg:{msgid}"
