"""RFM layering (seed 002 five tiers, seed 003 six classes) and lifecycle stages 新 → 活跃 → 沉默 → 流失."""
