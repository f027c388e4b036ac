"""Analytics (SPEC A): reads every layer through a query layer; nothing imports it."""
