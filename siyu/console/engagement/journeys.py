"""Console pages: journeys (see siyu/engagement/journeys)."""

urlpatterns: list = []
