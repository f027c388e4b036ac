"""Console pages for 公众号; included by siyu.console.wechat.urls."""

urlpatterns: list = []
