from __future__ import annotations

from django.urls import path

from benchmarks import views

app_name = "benchmarks"

urlpatterns = [
    path("submit/", views.submit, name="submit"),
]
