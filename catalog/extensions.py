"""Extension points: what catalog pages show that apps built on the catalog provide.

The catalog is the ground the other apps stand on, so it never imports them. Where a catalog page needs something
from above (the speed model calibrated on community runs, the measured speed of a model on a device, a page section
listing runs), an app registers a provider here from its AppConfig.ready(), and the catalog asks for it by name.
Without a provider the catalog falls back to its own answer (the engine's default speed model, no measured speeds,
no extra section).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from catalog.speed import SpeedModel


@dataclass(frozen=True, slots=True)
class MeasuredSpeed:
    """The median of accepted runs of one model and quant on one device (one GPU), and how many back it."""

    decode_tps: float | None
    decode_runs: int
    prefill_tps: float | None
    prefill_runs: int


# (model id, quant name upper-cased, hardware id) -> what was measured.
MeasuredKey = tuple[int, str, int]


@dataclass(frozen=True, slots=True)
class Section:
    """A block of a catalog page rendered by another app: `template` gets the page's context plus what
    `context(page_object)` returns."""

    template: str
    context: Callable[[Any], dict[str, Any]]


_speed_model: Callable[[], SpeedModel] | None = None
_measured: Callable[[], Mapping[MeasuredKey, MeasuredSpeed]] | None = None
_sections: dict[str, list[Section]] = {}
_links: dict[str, str] = {}


def register_speed_model(provider: Callable[[], SpeedModel]) -> None:
    global _speed_model
    _speed_model = provider


def register_measured_speeds(provider: Callable[[], Mapping[MeasuredKey, MeasuredSpeed]]) -> None:
    global _measured
    _measured = provider


def register_section(page: str, section: Section) -> None:
    """Add a section to a page ("model" or "hardware"); registering the same template twice keeps one."""
    sections = _sections.setdefault(page, [])
    if all(existing.template != section.template for existing in sections):
        sections.append(section)


def register_link(name: str, url_name: str) -> None:
    """A page another app serves that catalog pages point to by role ("speed-accuracy"), as a URL name."""
    _links[name] = url_name


def link(name: str) -> str | None:
    from django.urls import NoReverseMatch, reverse

    url_name = _links.get(name)
    if url_name is None:
        return None
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return None


def speed_model_provider() -> Callable[[], SpeedModel] | None:
    return _speed_model


def measured_speeds() -> Mapping[MeasuredKey, MeasuredSpeed]:
    return _measured() if _measured is not None else {}


def sections(page: str) -> list[Section]:
    return list(_sections.get(page, ()))
