from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.api import api

urlpatterns = [
    path("", include("catalog.urls")),
    path("benchmarks/", include("benchmarks.urls")),
    path("demo/", include("inference.urls")),
    path("probe/", include("probe.urls")),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]
