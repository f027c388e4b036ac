"""微信支付 v3 (SPEC W4): prepay, paySign, notifications exactly once, query, close, refunds."""
