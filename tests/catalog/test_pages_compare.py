"""Compare (issue 13): a row at a common quant (Q4_K_M) for every model, and each model's community runs as the
benchmarks app reports them through catalog.extensions.measured_speeds()."""

from __future__ import annotations

import re

import pytest

from catalog import extensions
from catalog.extensions import MeasuredSpeed
from tests.factories import make_model, make_quantization

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured(catalog):
    """Register a provider of measured speeds (as the benchmarks app does from its AppConfig) and put back the one
    in force afterwards."""
    before = extensions._measured
    speeds: dict = {}
    extensions.register_measured_speeds(lambda: speeds)
    yield speeds
    extensions._measured = before


def cells(html: str, header: str) -> list[str]:
    row = re.search(rf"<tr><th[^>]*>{header}.*?</th>(.*?)</tr>", html, re.S).group(1)
    return re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)


def test_it_compares_every_model_at_the_common_quant(client, catalog):
    only_q8 = make_model(name="Only Q8", slug="only-q8")
    make_quantization(only_q8, name="Q8_0", bits_per_weight=8.5)
    html = client.get("/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b", "only-q8"]}).text
    assert re.findall(r'data-common-quant="([^"]*)"', html) == ["Q4_K_M", "Q4_K_M", ""]
    assert cells(html, "At Q4_K_M")[2] == "Not published at Q4_K_M"


def test_it_gives_the_verdict_at_the_common_quant_on_the_chosen_device(client, catalog):
    html = client.get("/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b"], "hardware": "geforce-rtx-4090"}).text
    for cell in cells(html, "At Q4_K_M"):
        assert "Fits in GPU memory" in cell and "tok/s <small>est.</small>" in cell


def test_it_shows_each_models_community_runs(client, catalog, measured):
    llama, rtx4090, rtx4060 = catalog["llama"], catalog["rtx4090"], catalog["rtx4060"]
    measured.update(
        {
            (llama.pk, "Q4_K_M", rtx4090.pk): MeasuredSpeed(120.4, 3, 4000.0, 3),  # decode t/s, runs, prompt t/s, runs
            (llama.pk, "Q4_K_M", rtx4060.pk): MeasuredSpeed(48.0, 2, None, 0),
            (llama.pk, "F16", rtx4090.pk): MeasuredSpeed(40.0, 1, None, 0),
        }
    )
    html = client.get("/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b"], "hardware": "geforce-rtx-4090"}).text
    gemma_cell, llama_cell = cells(html, "Community runs")
    assert gemma_cell == "None yet"
    # 3 + 3 + 2 + 1 runs on two devices; at Q4_K_M the fastest first; on the chosen RTX 4090 its median.
    assert llama_cell.startswith("9 accepted runs on 2 devices")
    assert "on GeForce RTX 4090 at Q4_K_M: <b>120 tok/s</b>" in llama_cell
    assert "median of 3" in llama_cell
    assert "at Q4_K_M: GeForce RTX 4090 120 tok/s; GeForce RTX 4060 48.0 tok/s" in llama_cell
    assert re.findall(r'data-community-runs="(\d+)"', html) == ["0", "9"]
