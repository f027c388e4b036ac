from django.apps import AppConfig


class WeChatOfficialConfig(AppConfig):
    name = "siyu.wechat.official"
    label = "wechat_official"
    verbose_name = "公众号"
