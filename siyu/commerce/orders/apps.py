from django.apps import AppConfig


class CommerceOrdersConfig(AppConfig):
    name = "siyu.commerce.orders"
    label = "commerce_orders"
    verbose_name = "订单与售后"
