"""Console pages for H5 商城; included by siyu.console.commerce.urls."""

urlpatterns: list = []
