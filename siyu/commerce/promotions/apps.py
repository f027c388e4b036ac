from django.apps import AppConfig


class CommercePromotionsConfig(AppConfig):
    name = "siyu.commerce.promotions"
    label = "commerce_promotions"
    verbose_name = "营销与定价"

    def ready(self) -> None:
        from siyu.commerce.promotions import settings_cache  # noqa: F401 - connects its change signals
