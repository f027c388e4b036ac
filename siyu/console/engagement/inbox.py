"""Console pages: inbox (see siyu/engagement/inbox)."""

urlpatterns: list = []
