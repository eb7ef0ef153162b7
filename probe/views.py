"""The /probe/ page: the server's own hardware (what the demo runs on), from the same detection code as the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.models import Hardware
from inference.hosts import Host
from probe.detect import HostReport, describe_host, detect, summarize
from probe.matching import Match, match_hardware


def best_match(report: HostReport, candidates: Iterable[Any]) -> Match | None:
    """The catalog device for the report's largest GPU, or for its CPU when it has none."""
    gpu = report.primary_gpu
    if gpu is not None:
        return match_hardware(gpu.name, gpu.memory_total_bytes, candidates, vendor=gpu.vendor)
    return match_hardware(report.cpu.model, report.memory.total_bytes, candidates)


def server_host() -> Host:
    """This server as the demo shows it: the probe's one-line description and its catalog match."""
    report = detect()
    candidates = Hardware.objects.only("slug", "name", "aliases", "memory_bytes", "vendor", "popular", "kind")
    match = best_match(report, list(candidates))
    hardware = match.candidate.obj if match else None
    return Host(
        description=describe_host(),
        hardware_slug=hardware.slug if hardware else "",
        hardware_name=hardware.name if hardware else "",
    )


@require_GET
def host(request: HttpRequest) -> HttpResponse:
    report = detect()
    candidates = list(Hardware.objects.only("slug", "name", "aliases", "memory_bytes", "vendor", "popular", "kind"))
    match = best_match(report, candidates)
    context = {
        "report": report,
        "summary": summarize(report),
        "match": match,
        "hardware": match.candidate.obj if match else None,
    }
    return render(request, "probe/host.html", context)
