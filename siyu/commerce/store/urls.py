"""The H5 store (mounted at /shop/) and the mini-program API."""

urlpatterns: list = []
