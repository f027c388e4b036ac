"""The domain event the RFM job publishes on commit, for journeys (and anyone else) to react to.

``LAYER_CHANGED`` payload: workspace_id (int), kind ("rfm5" | "rfm6" | "lifecycle"), moves: a list of
(customer_id, from_code, to_code) — from_code is "" the first time a customer is placed. A run publishes one
event per kind per batch of at most 10,000 moves, each exactly once (with the LayerChange rows it stands for).
"""

LAYER_CHANGED = "engagement.layer_changed"
