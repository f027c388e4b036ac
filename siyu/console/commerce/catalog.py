"""Console pages for 商品与库存; included by siyu.console.commerce.urls."""

urlpatterns: list = []
