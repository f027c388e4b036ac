"""Console pages: communities (see siyu/engagement/communities)."""

urlpatterns: list = []
