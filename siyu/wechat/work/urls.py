"""Endpoints WeChat (or the consumer's WeChat client) calls for this area; mounted under /wx/work/."""

from django.urls import path

from siyu.wechat.work import kf, views

urlpatterns: list = [
    path("<str:corpid>/callback", views.callback, name="wechat_work_callback"),
    path("<str:corpid>/kf/callback", kf.kf_callback, name="wechat_work_kf_callback"),
]
