"""Endpoints WeChat (or the consumer's WeChat client) calls for this area; mounted under /wx/official/."""

from django.urls import path

from siyu.wechat.official import views

app_name = "wechat_official"
urlpatterns = [
    path("<str:appid>/callback", views.callback, name="callback"),
]
