"""Console pages for 营销与定价; included by siyu.console.commerce.urls."""

urlpatterns: list = []
