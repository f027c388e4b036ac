"""运营体系层 — the operations layer (SPEC O3–O9): who each customer is right now and what happens next.

Areas, each its own Django app (label ``engagement_<area>``), pointing one way (import-linter contract
"engagement-areas"): journeys > segments | service > rfm | communities > inbox.

- ``inbox``: staff tasks (the "721" routing target, service handoffs) with SLA timers.
- ``rfm``: RFM layering (seed 002's five tiers, seed 003's six classes) and lifecycle stages, per customer.
- ``communities``: 社群 — groups by type, rules, rhythm, moderation, activity metrics, KOC.
- ``segments``: the segment builder: condition trees compiled to queries, live counts, members, export.
- ``service``: the auto-reply bot (keywords + FAQ retrieval), human handoff, conversations.
- ``journeys``: SOP automation: trigger → waits → conditions → actions, caps, quiet hours, reports.

Membership (points, tiers, growth tasks) lives below, in ``siyu.loyalty``, so commerce can use it.
"""
