"""URLconf for bench/bench_store_latency.py only: Siyu's URLs plus the minimal baseline view."""

from django.http import HttpResponse
from django.urls import include, path


def minimal(request):
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")


urlpatterns = [path("bench/minimal", minimal), path("", include("siyu.urls"))]
