from __future__ import annotations

from django.urls import path

from probe import views

app_name = "probe"

urlpatterns = [
    path("", views.host, name="host"),
]
