from django.apps import AppConfig


class WeChatPayConfig(AppConfig):
    name = "siyu.wechat.pay"
    label = "wechat_pay"
    verbose_name = "微信支付"
