"""Shared core: workspaces, roles, errors, personal-data crypto, money and time."""
