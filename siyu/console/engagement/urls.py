"""The console's operations-layer pages. Names live in the ``console`` namespace (e.g. ``console:segments``)."""

from siyu.console.engagement import communities, inbox, journeys, rfm, segments, service

urlpatterns = [*segments.urlpatterns, *rfm.urlpatterns, *journeys.urlpatterns, *communities.urlpatterns,
               *service.urlpatterns, *inbox.urlpatterns]
