from django.apps import AppConfig


class EngagementRfmConfig(AppConfig):
    name = "siyu.engagement.rfm"
    label = "engagement_rfm"
    verbose_name = "RFM 分层与生命周期"
