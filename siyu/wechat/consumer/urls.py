"""Endpoints WeChat (or the consumer's WeChat client) calls for this area; mounted under /wx/consumer/."""

from django.urls import path

from siyu.wechat.consumer import views

app_name = "wechat_consumer"
urlpatterns = [
    path("miniapp/<str:appid>/login", views.miniapp_login, name="miniapp_login"),
    path("miniapp/phone", views.miniapp_phone, name="miniapp_phone"),
    path("miniapp/subscribe", views.miniapp_subscribe, name="miniapp_subscribe"),
    path("session", views.session_info, name="session"),
    path("logout", views.logout, name="logout"),
    path("oauth/<str:appid>/start", views.oauth_start, name="oauth_start"),
    path("oauth/<str:appid>/callback", views.oauth_callback, name="oauth_callback"),
]
