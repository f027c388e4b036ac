from django.apps import AppConfig


class EngagementSegmentsConfig(AppConfig):
    name = "siyu.engagement.segments"
    label = "engagement_segments"
    verbose_name = "客户分群"
