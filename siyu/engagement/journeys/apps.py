from django.apps import AppConfig


class EngagementJourneysConfig(AppConfig):
    name = "siyu.engagement.journeys"
    label = "engagement_journeys"
    verbose_name = "自动化旅程"
