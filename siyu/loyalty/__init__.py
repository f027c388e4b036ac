"""Loyalty (SPEC O4–O6 membership): the points ledger (append-only, double-entry) and member tiers.

Below commerce: checkout deducts points and reads tiers; earning on OrderPaid arrives by domain events.
"""
