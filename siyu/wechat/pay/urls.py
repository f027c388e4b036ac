"""Endpoints WeChat Pay calls for this area; mounted under /wx/pay/."""

from django.urls import path

from siyu.wechat.pay import views

urlpatterns = [
    path("<str:mchid>/notify", views.payment_notify, name="wechat_pay_notify"),
    path("<str:mchid>/refund-notify", views.refund_notify, name="wechat_pay_refund_notify"),
]
