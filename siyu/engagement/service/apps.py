from django.apps import AppConfig


class EngagementServiceConfig(AppConfig):
    name = "siyu.engagement.service"
    label = "engagement_service"
    verbose_name = "智能客服"
