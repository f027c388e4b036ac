from django.apps import AppConfig


class WeChatConfig(AppConfig):
    name = "siyu.wechat"
    label = "wechat"
    verbose_name = "微信接入"
