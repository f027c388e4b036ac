from django.apps import AppConfig


class CommercePromotionsConfig(AppConfig):
    name = "siyu.commerce.promotions"
    label = "commerce_promotions"
    verbose_name = "营销与定价"
