"""Console pages of the operations layer, one module per area (each exports ``urlpatterns``)."""
