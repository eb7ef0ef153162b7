"""Benchmark pages: thin function views; the work is in services.py and selectors.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from benchmarks.forms import RunForm


@require_GET
def submit(request: HttpRequest) -> HttpResponse:
    """The submission form, prefilled from GET query parameters (model_slug, quant, hardware, avg_ts, ...)."""
    form = RunForm(initial=request.GET.dict())
    return render(request, "benchmarks/submit.html", {"form": form})
