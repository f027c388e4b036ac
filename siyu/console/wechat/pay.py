"""Console pages for 微信支付; included by siyu.console.wechat.urls."""

urlpatterns: list = []
