"""Console pages for 消费者登录(小程序与网页授权); included by siyu.console.wechat.urls."""

urlpatterns: list = []
