from __future__ import annotations

from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.home, name="home"),
    path("models/", views.model_list, name="model_list"),
    path("models/<slug:slug>/", views.model_detail, name="model_detail"),
    path("hardware/", views.hardware_list, name="hardware_list"),
    path("hardware/<slug:slug>/", views.hardware_detail, name="hardware_detail"),
    path("compare/", views.compare, name="compare"),
    path("healthz", views.healthz, name="healthz"),
]
