"""Compare (issue 13): a row at a common quant (Q4_K_M) for every model, and each model's community runs as the
benchmarks app reports them through catalog.extensions.measured_speeds()."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

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


@pytest.fixture
def seeded(db) -> None:
    call_command("load_seed", "--skip-gpus", stdout=StringIO())


def test_it_shows_a_hybrids_kv_cache_and_recurrent_state_apart(client, seeded):
    html = client.get(
        "/compare/", {"models": ["lfm2-1-2b", "granite-4-0-h-350m", "qwen3-0-6b"], "ctx": 4096, "kv_type": "f16"}
    ).text
    # KV only on the attention layers, f16 (2 bytes), K and V, at 4,096 cells:
    # LFM2 1.2B: 6 of 16 layers x 8 KV heads x 64 dims x 2 x 2 bytes x 4,096 = 50,331,648 bytes (48 MiB);
    # Granite 4.0 H 350M: 4 of 32 layers x 4 KV heads x 64 x 2 x 2 x 4,096 = 16,777,216 (16 MiB);
    # Qwen3 0.6B: every one of 28 layers x 8 x 128 x 2 x 2 x 4,096 = 469,762,048 (448 MiB).
    kv = [6 * 8 * 64 * 2 * 2 * 4096, 4 * 4 * 64 * 2 * 2 * 4096, 28 * 8 * 128 * 2 * 2 * 4096]
    assert kv == [50_331_648, 16_777_216, 469_762_048]
    assert [int(b) for b in re.findall(r'data-kv-bytes="(\d+)"', html)] == kv
    kv_cells = cells(html, "KV cache at that context")
    assert kv_cells[0] == "0.05 GB <small>on 6 of 16 layers</small>"
    assert kv_cells[1] == "0.02 GB <small>on 4 of 32 layers</small>"
    assert kv_cells[2] == "0.47 GB"
    # The recurrent state per sequence, F32 (4 bytes), whatever the context:
    # LFM2's 10 short-convolution layers keep hidden 2,048 x (L_cache 3 - 1) values: 10 x 4,096 x 4 = 163,840 bytes;
    # Granite's 28 Mamba-2 layers keep (d_conv 4 - 1) x (d_inner 1,536 + 2 x 1 group x d_state 128) + 128 x 1,536 =
    # 201,984 values (llama.cpp's n_embd_r + n_embd_s): 28 x 201,984 x 4 = 22,622,208 bytes; Qwen3 none.
    state = [10 * 2048 * (3 - 1) * 4, 28 * ((4 - 1) * (1536 + 2 * 1 * 128) + 128 * 1536) * 4, 0]
    assert state == [163_840, 22_622_208, 0]
    assert [int(b) for b in re.findall(r'data-state-bytes="(\d+)"', html)] == state
    assert cells(html, "Recurrent state") == [
        "0.2 MB <small>on 10 recurrent layers</small>",
        "0.023 GB <small>on 28 recurrent layers</small>",
        "None <small>(no recurrent layers)</small>",
    ]


def test_without_a_hybrid_there_is_no_recurrent_state_row(client, catalog):
    html = client.get("/compare/", {"models": ["gemma-3-270m", "llama-3-1-8b"]}).text
    assert "KV cache at that context" in html
    assert "Recurrent state" not in html and "data-state-bytes" not in html
