from django.apps import AppConfig


class CommerceStoreConfig(AppConfig):
    name = "siyu.commerce.store"
    label = "commerce_store"
    verbose_name = "H5 商城"
