"""Console pages of the WeChat integration: credentials and API health (core) and one module per area."""
