from django.apps import AppConfig


class CommerceCatalogConfig(AppConfig):
    name = "siyu.commerce.catalog"
    label = "commerce_catalog"
    verbose_name = "商品与库存"
