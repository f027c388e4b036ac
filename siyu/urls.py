from django.contrib import admin
from django.urls import include, path

from siyu.api import api

urlpatterns = [
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("wx/", include("siyu.wechat.urls")),
    path("shop/", include("siyu.commerce.store.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("siyu.console.urls")),
]
