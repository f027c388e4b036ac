"""Everything WeChat calls on Siyu, under /wx/: callbacks, notifications, OAuth redirects, login."""

from django.urls import include, path

urlpatterns = [
    path("official/", include("siyu.wechat.official.urls")),
    path("consumer/", include("siyu.wechat.consumer.urls")),
    path("work/", include("siyu.wechat.work.urls")),
    path("pay/", include("siyu.wechat.pay.urls")),
]
