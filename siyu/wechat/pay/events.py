"""Names of the domain events 微信支付 publishes on commit (payloads documented in ``provider``)."""

PAYMENT_SUCCEEDED = "wechat_pay.payment_succeeded"
PAYMENT_PAID_AFTER_CLOSE = "wechat_pay.payment_paid_after_close"
REFUND_SUCCEEDED = "wechat_pay.refund_succeeded"
REFUND_FAILED = "wechat_pay.refund_failed"
