"""Names of the domain events orders publish on commit, for loyalty, growth and analytics to consume.

Every payload carries workspace_id, order_id, number, customer_id. Besides:

- ``ORDER_PLACED``: total_fen, source, flash_sale_id.
- ``ORDER_PAID``: total_fen, paid_fen, transaction_id, paid_at (ISO).
- ``ORDER_CANCELLED``: by (customer | operator | system), reason, was_paid.
- ``ORDER_SHIPPED``: carrier, tracking_number.
- ``ORDER_DELIVERED``: delivered_at (ISO).
- ``ORDER_REFUNDED``: amount_fen, refunded_fen (total so far), payment_status, out_refund_no, automatic.
"""

ORDER_PLACED = "orders.order_placed"
ORDER_PAID = "orders.order_paid"
ORDER_CANCELLED = "orders.order_cancelled"
ORDER_SHIPPED = "orders.order_shipped"
ORDER_DELIVERED = "orders.order_delivered"
ORDER_REFUNDED = "orders.order_refunded"
