"""The H5 store (mounted at /shop/): every page under the workspace's slug."""

from django.urls import include, path

from siyu.commerce.store import member_views, views

app_name = "store"
urlpatterns = [
    path("<slug:slug>/", views.home, name="home"),
    path("<slug:slug>/categories/", views.categories, name="categories"),
    path("<slug:slug>/categories/<int:category_id>/", views.category, name="category"),
    path("<slug:slug>/search/", views.search, name="search"),
    path("<slug:slug>/products/<int:product_id>/", views.product, name="product"),
    path("<slug:slug>/cart/", views.cart, name="cart"),
    path("<slug:slug>/cart/add", views.cart_add, name="cart_add"),
    path("<slug:slug>/cart/update", views.cart_update, name="cart_update"),
    path("<slug:slug>/cart/remove", views.cart_remove, name="cart_remove"),
    path("<slug:slug>/checkout/", views.checkout, name="checkout"),
    path("<slug:slug>/buy/", views.buy_now, name="buy_now"),
    path("<slug:slug>/flash/<int:sale_id>/", views.flash_buy, name="flash_buy"),
    path("<slug:slug>/orders/", views.orders, name="orders"),
    path("<slug:slug>/orders/<str:number>/", views.order, name="order"),
    path("<slug:slug>/orders/<str:number>/cashier/", views.order_pay_start, name="order_pay_start"),
    path("<slug:slug>/orders/<str:number>/pay", views.pay, name="pay"),
    path("<slug:slug>/orders/<str:number>/simulate-pay", views.simulate_pay, name="simulate_pay"),
    path("<slug:slug>/orders/<str:number>/cancel", views.cancel, name="cancel"),
    path("<slug:slug>/orders/<str:number>/aftersale/", views.aftersale, name="aftersale"),
    path("<slug:slug>/coupons/", views.coupons, name="coupons"),
    path("<slug:slug>/coupons/claim", views.coupon_claim, name="coupon_claim"),
    # 会员中心: tier, points, check-in, growth tasks, points mall, lottery, reviews (member_views.py).
    path("<slug:slug>/member/", include(member_views.urlpatterns)),
]
