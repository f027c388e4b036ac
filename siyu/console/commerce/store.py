"""Console page for the H5 商城: where the store lives (the links to put in the 公众号 menu and articles),
the mini-program API base, and what shoppers have in their carts now. Read-only for every role."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Sum
from django.urls import path, reverse

from siyu.commerce.store.models import Cart, CartItem
from siyu.console.access import console_view
from siyu.console.rendering import page
from siyu.wechat.models import AppKind, WeChatApp


@console_view()
def store_overview(request):
    workspace = request.workspace
    base = settings.SIYU_PUBLIC_URL.rstrip("/")
    home = base + reverse("store:home", kwargs={"slug": workspace.slug})
    official = (WeChatApp.objects.filter(workspace=workspace, kind=AppKind.OFFICIAL, is_active=True)
                .order_by("pk").first())
    entry = ""
    if official is not None:
        start = reverse("wechat_consumer:oauth_start", kwargs={"appid": official.appid})
        entry = f"{base}{start}?{urlencode({'scope': 'snsapi_base', 'next': reverse('store:home', kwargs={'slug': workspace.slug})})}"
    items = CartItem.objects.filter(cart__workspace=workspace)
    top = (items.values("sku__product__title").annotate(carts=Count("cart", distinct=True), units=Sum("quantity"))
           .order_by("-carts", "-units")[:10])
    return page(request, "console/commerce/store/overview.html", {
        "store_url": home, "entry_url": entry, "official": official,
        "mini_api": base + "/api/mini/v1/", "docs_url": base + "/api/docs",
        "carts": Cart.objects.filter(workspace=workspace, items__isnull=False).distinct().count(),
        "units": items.aggregate(total=Sum("quantity"))["total"] or 0, "top": list(top),
    }, active="storefront")


urlpatterns = [
    path("store/", store_overview, name="commerce_store"),
]
