"""The console's commerce pages. Names live in the ``console`` namespace (e.g. ``console:commerce_orders``)."""

from siyu.console.commerce import catalog, loyalty, loyalty_tasks, orders, promotions, store

urlpatterns = [*catalog.urlpatterns, *promotions.urlpatterns, *orders.urlpatterns, *store.urlpatterns,
               *loyalty.urlpatterns, *loyalty_tasks.urlpatterns]
