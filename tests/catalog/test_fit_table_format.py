"""Fit tables are pickled into a shared cache that outlives a deploy: the cache key names the dataclass shapes."""

from __future__ import annotations

import dataclasses
import types

from catalog import fit, services


def test_it_names_a_new_format_when_a_pickled_class_gains_a_field(monkeypatch):
    before = services._pickled_format()
    fields = [(f.name, f.type, f) for f in dataclasses.fields(fit.MemoryBreakdown)]
    grown = dataclasses.make_dataclass("MemoryBreakdown", [*fields, ("new_bytes", int, dataclasses.field(default=0))])
    changed_fit = types.SimpleNamespace(**{**vars(fit), "MemoryBreakdown": grown})
    monkeypatch.setattr(services, "fit", changed_fit)

    assert services._pickled_format() != before


def test_it_keeps_the_format_while_the_classes_stay_the_same():
    assert services._pickled_format() == services._pickled_format() == services._PICKLED_FORMAT
