"""Console pages of the transaction layer, one module per area."""
