"""Console pages: service (see siyu/engagement/service)."""

urlpatterns: list = []
