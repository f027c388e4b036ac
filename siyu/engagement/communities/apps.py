from django.apps import AppConfig


class EngagementCommunitiesConfig(AppConfig):
    name = "siyu.engagement.communities"
    label = "engagement_communities"
    verbose_name = "社群运营"
