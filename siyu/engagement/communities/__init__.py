"""社群运营: groups by type linked to WeCom customer groups, rules, rhythm, moderation, metrics, KOC."""
