"""Console pages for points and member tiers; included by siyu.console.commerce.urls."""

urlpatterns: list = []
