from django.apps import AppConfig


class WeChatWorkConfig(AppConfig):
    name = "siyu.wechat.work"
    label = "wechat_work"
    verbose_name = "企业微信"
