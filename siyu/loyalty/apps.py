from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "siyu.loyalty"
    label = "loyalty"
    verbose_name = "积分与会员"

    def ready(self) -> None:
        # Growth tasks' and tier notices' subscriptions (siyu/loyalty/tasks.py holds the order ones).
        from siyu.loyalty import mission_tasks  # noqa: F401
