from django.apps import AppConfig


class WeChatConsumerConfig(AppConfig):
    name = "siyu.wechat.consumer"
    label = "wechat_consumer"
    verbose_name = "消费者登录(小程序与网页授权)"
