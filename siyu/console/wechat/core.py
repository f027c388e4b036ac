"""Console pages for WeChat credentials (admins only) and API health (quota and rate-limit issues)."""

urlpatterns: list = []
