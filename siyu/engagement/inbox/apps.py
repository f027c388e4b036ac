from django.apps import AppConfig


class EngagementInboxConfig(AppConfig):
    name = "siyu.engagement.inbox"
    label = "engagement_inbox"
    verbose_name = "员工任务"
