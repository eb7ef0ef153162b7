from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from benchmarks import views

app_name = "benchmarks"

urlpatterns = [
    path("", views.leaderboard, name="leaderboard"),
    path("submit/", views.submit, name="submit"),
    path("submit/preview/", views.preview, name="preview"),
    path("submit/llama-bench/", views.submit_llama_bench, name="submit_llama_bench"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/moderate/", views.moderate, name="moderate"),
    path("moderation/", views.moderation, name="moderation"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("plots/by-hardware.svg", views.plot_by_hardware, name="plot_by_hardware"),
    path("plots/bandwidth.svg", views.plot_bandwidth, name="plot_bandwidth"),
    path("accuracy/", views.accuracy_page, name="accuracy"),
    path("plots/accuracy.svg", views.plot_accuracy, name="plot_accuracy"),
    path("calibration/", RedirectView.as_view(pattern_name="benchmarks:accuracy", permanent=True), name="calibration"),
]
