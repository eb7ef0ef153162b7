from __future__ import annotations

from django.urls import path

from inference import views

app_name = "inference"

urlpatterns = [
    path("", views.demo, name="demo"),
    path("status/", views.status, name="status"),
    path("generate/", views.generate, name="generate"),
    path("stream/", views.stream, name="stream"),
    path("vision/", views.vision, name="vision"),
]
