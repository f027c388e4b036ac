"""Staff tasks: the human side of automation (721 routing, service handoffs), with SLA timers."""
