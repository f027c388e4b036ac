"""Service: the auto-reply bot for 公众号 and WeCom messages, FAQ retrieval, handoff to staff."""
from django.apps import AppConfig


class EngagementServiceConfig(AppConfig):
    name = "siyu.engagement.service"
    label = "engagement_service"
    verbose_name = "智能客服"

    def ready(self) -> None:
        # Where the bot is on, the 公众号's passive default reply gives way to the bot's answer.
        from siyu.engagement.service.services import bot_answers_for
        from siyu.wechat.official.inbound import default_reply_taker_register

        default_reply_taker_register(bot_answers_for)
