"""Console pages for 企业微信; included by siyu.console.wechat.urls."""

urlpatterns: list = []
