"""社群运营: groups by type linked to WeCom customer groups, rules, rhythm, moderation, metrics, KOC.

Domain events this area publishes (payload: workspace_id, community_id, customer_ids); other areas
subscribe by these names (loyalty's 新手 task "join a community", journeys' triggers)."""

COMMUNITY_JOINED = "engagement.community_joined"
COMMUNITY_LEFT = "engagement.community_left"
