"""Template tags for the sections the catalog pages include (they pass only `model` or `hardware`)."""

from __future__ import annotations

from django import template

from benchmarks import selectors
from catalog.models import Hardware, Model

register = template.Library()


@register.simple_tag
def model_benchmarks(model: Model) -> list[selectors.GroupSummary]:
    return selectors.model_summary(model)


@register.simple_tag
def hardware_benchmarks(hardware: Hardware) -> list[selectors.GroupSummary]:
    return selectors.hardware_summary(hardware)
