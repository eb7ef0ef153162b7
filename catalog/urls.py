from __future__ import annotations

from django.urls import path

from catalog import views, views_hf

app_name = "catalog"

urlpatterns = [
    path("", views.home, name="home"),
    path("models/", views.model_list, name="model_list"),
    path("models/add/", views_hf.add_model, name="add_model"),
    path("models/add/review/<slug:slug>/", views_hf.review_import, name="review_import"),
    path("models/<slug:slug>/", views.model_detail, name="model_detail"),
    path("hardware/", views.hardware_list, name="hardware_list"),
    path("hardware/<slug:slug>/", views.hardware_detail, name="hardware_detail"),
    path("compare/", views.compare, name="compare"),
    path("healthz", views.healthz, name="healthz"),
]
