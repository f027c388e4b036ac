"""公众号 (SPEC W1, T2): callbacks, subscribers, auto-reply, menus, channel QR codes, template and mass messages."""
