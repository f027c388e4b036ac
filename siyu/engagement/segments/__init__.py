"""Segments: condition trees over attributes, tags, RFM, lifecycle, tier, points, communities and events."""
