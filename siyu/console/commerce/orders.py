"""Console pages for 订单与售后; included by siyu.console.commerce.urls."""

urlpatterns: list = []
