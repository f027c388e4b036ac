"""Catalog (SPEC X1, X5): categories, products, SKUs with specs, member prices, storefront decoration, and inventory (stock, reservations, adjustments, low-stock alerts)."""
