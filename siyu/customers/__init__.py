"""Customer data core: customers, identities (SPEC T4), tags (O2), consent (S1) and events."""
