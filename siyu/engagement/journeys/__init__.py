"""Journeys (SOP automation): trigger → waits → conditions → actions, with caps and quiet hours."""
