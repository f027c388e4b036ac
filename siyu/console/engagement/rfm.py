"""Console pages: rfm (see siyu/engagement/rfm)."""

urlpatterns: list = []
