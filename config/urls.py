from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic.base import RedirectView

from config.api import api

urlpatterns = [
    path("", include("catalog.urls")),
    path("benchmarks/", include("benchmarks.urls")),
    path("demo/", include("inference.urls")),
    path("probe/", include("probe.urls")),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}favicon.svg", permanent=True)),
]
