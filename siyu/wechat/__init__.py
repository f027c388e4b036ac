"""WeChat integration (SPEC W1–W6): adapters over wechatpy and wechatpayv3, and the callbacks WeChat sends us.

The core modules here are shared by the four areas, which are independent of each other:
``official`` (公众号), ``consumer`` (小程序 login and H5 OAuth: who the consumer is), ``work`` (企业微信) and
``pay`` (微信支付 v3). Nothing outside this package builds a WeChat URL, XML body or signature.
"""
