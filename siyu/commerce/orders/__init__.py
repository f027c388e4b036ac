"""Orders (SPEC X4, X6, X7): checkout, separate order/payment/fulfilment status machines, payments through the WeChat Pay provider, auto-cancel, shipping, after-sales and complaints."""
