"""Console pages: segments (see siyu/engagement/segments)."""

urlpatterns: list = []
