"""Service: the auto-reply bot for 公众号 and WeCom messages, FAQ retrieval, handoff to staff."""
