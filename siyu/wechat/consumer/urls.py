"""Endpoints WeChat (or the consumer's WeChat client) calls for this area; mounted under /wx/consumer/."""

urlpatterns: list = []
