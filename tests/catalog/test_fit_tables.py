"""The fast paths give the engine's figures: fit tables (hardware page, "fits on" list) and the model page's
'hardware that runs this', on the real seed catalog."""

from __future__ import annotations

import dataclasses
import re
from io import StringIO

import pytest
from django.core.management import call_command

from catalog import fit
from catalog.models import Hardware, Model
from catalog.services import (
    best_fits,
    best_quant,
    cached_fit,
    device_spec_of,
    fit_entries,
    fit_table,
    hardware_that_runs,
    options_for,
    quant_spec_of,
    shape_of,
    speed_model,
)
from catalog.views import _picker_hardware
from tests.factories import make_model, make_quantization

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DEVICES = ("nvidia-geforce-rtx-4060", "nvidia-geforce-rtx-4090", "apple-m2-8gb", "raspberry-pi-5-8gb")
SETTINGS = (
    {"ctx": 4096},
    {"ctx": 32768, "kv_type": "q8_0"},
    {"ctx": 131072, "ram_gb": 64},
)


@pytest.fixture
def seeded(db):
    call_command("load_seed", stdout=StringIO())


def _options(settings: dict) -> fit.FitOptions:
    return fit.FitOptions(
        ctx=settings["ctx"], kv_type=settings.get("kv_type", "f16"), system_ram_bytes=settings.get("ram_gb", 32) * 2**30
    )


def _row(best) -> tuple:
    return (best.model.slug, best.quant.name, best.result, best.ctx, best.ctx_clamped, best.recommended)


def _all_pages(client, url: str, params: dict) -> list:
    rows, page = [], 1
    while True:
        response = client.get(url, {**params, "page": page})
        assert response.status_code == 200
        rows += response.context["fits"] if "fits" in response.context else _list_rows(response)
        if not response.context["page"].has_next():
            return rows
        page += 1


def _list_rows(response) -> list:
    best = response.context["best_by_model"]
    return [best[model.pk] for model in response.context["page"].object_list]


@pytest.mark.parametrize("slug", DEVICES)
def test_it_lists_the_engines_picks_on_every_page_of_a_hardware_page(client, seeded, slug):
    hardware = Hardware.objects.get(slug=slug)
    speed = speed_model()
    for settings in SETTINGS:
        options = _options(settings)
        cached_fit.cache_clear()
        engine = best_fits(hardware=hardware, options=options)
        assert engine, f"nothing runs on {slug} at {settings}"
        shown = _all_pages(client, f"/hardware/{slug}/", settings)
        assert [_row(b) for b in shown] == [_row(b) for b in engine]
        # Each figure is the engine's own answer for that model, quant, device and (clamped) context, asked afresh.
        device = device_spec_of(hardware)
        for best in shown:
            clamped, _ = options_for(model=best.model, options=options)
            assert best.result == fit.fit(shape_of(best.model), quant_spec_of(best.quant), device, clamped, speed)


@pytest.mark.parametrize("slug", DEVICES[:2])
def test_it_lists_the_engines_picks_in_the_fits_on_filter(client, seeded, slug):
    hardware = Hardware.objects.get(slug=slug)
    engine = best_fits(hardware=hardware, options=fit.FitOptions(ctx=8192))
    shown = _all_pages(client, "/models/", {"fits": slug, "ctx": 8192})
    assert [_row(b) for b in shown] == [_row(b) for b in engine]
    # A filter narrows the same picks; a sort reorders them.
    text_only = _all_pages(client, "/models/", {"fits": slug, "ctx": 8192, "modality": "text", "sort": "name"})
    expected = sorted((b for b in engine if b.model.modality == "text"), key=lambda b: b.model.name)
    assert [_row(b) for b in text_only] == [_row(b) for b in expected]


def test_it_keeps_every_field_of_an_entry(seeded):
    hardware = Hardware.objects.get(slug="nvidia-geforce-rtx-4060")
    options = fit.FitOptions(ctx=4096)
    table = fit_table(hardware=hardware, options=options)
    engine = best_fits(hardware=hardware, options=options)
    assert [row[0] for row in table] == [b.model.pk for b in engine]
    assert [row[1] for row in table] == [b.result.verdict.value for b in engine]
    for entry, best in zip(fit_entries(table), engine, strict=True):
        assert dataclasses.astuple(entry.result) == dataclasses.astuple(best.result)
        assert (entry.quant_id, entry.ctx, entry.recommended) == (best.quant.pk, best.ctx, best.recommended)


def test_it_rebuilds_the_table_when_the_catalog_changes(client, seeded):
    before = client.get("/hardware/nvidia-geforce-rtx-4090/", {"ctx": 4096}).text
    assert "zz-new-model" not in before
    added = make_model(name="Zz New Model", slug="zz-new-model", n_params=100_000_000)  # a save bumps the data version
    make_quantization(added, name="Q8_0", bits_per_weight=8.5)
    counts = [int(n) for n in re.findall(r"\((\d+) models? at 4,096 tokens", before)]
    after = client.get("/hardware/nvidia-geforce-rtx-4090/", {"ctx": 4096})
    assert [int(n) for n in re.findall(r"\((\d+) models? at 4,096 tokens", after.text)] == [counts[0] + 1]
    assert any(b.model.slug == "zz-new-model" for b in _all_pages(client, "/hardware/nvidia-geforce-rtx-4090/", {}))


def _runs_on_exhaustively(model: Model, candidates, options: fit.FitOptions, limit: int = 8) -> list:
    """hardware_that_runs before its early stop: every candidate tried, then sorted."""
    found = []
    for hardware in candidates:
        if hardware.kind == "cpu":
            continue
        best = best_quant(model=model, device=device_spec_of(hardware), options=options, allow_offload=False)
        if best is not None:
            found.append((hardware, best))
    found.sort(key=lambda pair: (pair[0].memory_bytes, -pair[1].result.memory.weights_bytes))
    return found[:limit]


@pytest.mark.parametrize("ctx", [4096, 131072])
def test_it_finds_the_same_hardware_that_runs_a_model_as_trying_every_device(seeded, ctx):
    candidates = _picker_hardware()
    for model in Model.objects.with_quantizations():
        options, _ = options_for(model=model, options=fit.FitOptions(ctx=ctx))
        fast = hardware_that_runs(model=model, candidates=candidates, options=options)
        slow = _runs_on_exhaustively(model, candidates, options)
        assert [(h.slug, _row(b)) for h, b in fast] == [(h.slug, _row(b)) for h, b in slow], model.slug


def test_it_reads_the_catalog_once_per_data_version_and_again_after_the_cache_empties(catalog):
    from django.core.cache import cache

    from catalog.services import catalog_facts

    first = catalog_facts()
    assert catalog_facts() is first  # the same version: this process's copy
    assert [f.name for f in first] == ["Gemma 3 270M", "Llama 3.1 8B"]
    # A write that sends no signal (a bulk update) changes nothing until the cache is emptied, then it shows.
    Model.objects.filter(slug="gemma-3-270m").update(name="Gemma Renamed")
    assert catalog_facts() is first
    cache.clear()
    assert [f.name for f in catalog_facts()] == ["Gemma Renamed", "Llama 3.1 8B"]
    # A save bumps the data version: a new copy.
    make_model(name="Zz Later", slug="zz-later", n_params=90_000_000_000)
    assert [f.name for f in catalog_facts()][-1] == "Zz Later"
