"""The staff console: server-rendered pages over the same services and selectors the API uses."""
