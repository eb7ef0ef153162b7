"""Gemma 3n E2B in the fit engine against llama.cpp's own allocation report.

The fixture tests/fixtures/llamacpp_arch/gemma-3n-e2b.json holds llama.cpp's KV and compute buffers for a sparse GGUF
of the real E2B text shape (bench/validate_fit_gemma3n.py; llama.cpp 0c1e57098 via llama-cpp-python 0.3.36, CPU,
provenance in the file). llama.cpp keeps KV on the first 20 of its 30 layers (hparams.n_layer_kv_from_start = 20; the
later layers reuse the last earlier cache of their kind), 16 of them sliding over 512 tokens: its report prints two
caches, "4 layers" and "16 layers". The shape here comes from the config through catalog.importers, so the whole path
config.json -> importer -> fit engine is what is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import fit
from catalog.importers import model_fields_from_hf_config
from tests.catalog.test_importers_gemma3n import gemma3n_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "llamacpp_arch" / "gemma-3n-e2b.json"
MIB = 1024**2
RUNS = json.loads(FIXTURE.read_text())["runs"]


def e2b_shape() -> fit.ModelShape:
    fields = model_fields_from_hf_config(gemma3n_config(30, 8192))
    names = fit.ModelShape.__dataclass_fields__
    return fit.ModelShape(**{k: v for k, v in fields.items() if k in names})


def test_the_fixture_is_llama_cpps_own_report():
    data = json.loads(FIXTURE.read_text())
    assert data["gguf"]["arch"] == "gemma3n"
    assert data["provenance"]["llama_cpp_commit"] == "0c1e57098"
    # llama.cpp allocated two caches over 20 layers, never one over 30.
    for run in RUNS:
        assert sorted(c["layers"] for c in run["kv_caches"]) == [4, 16]


@pytest.mark.parametrize(
    "run", RUNS, ids=lambda r: f"ctx{r['n_ctx']}-fa{int(r['flash_attn'])}-seq{r['n_seq']}-{r['kv_type']}"
)
def test_it_sizes_gemma_3n_kv_as_llama_cpp_allocates_it(run):
    shape = e2b_shape()
    kv = fit.kv_cache_bytes(shape, run["n_ctx"], run["kv_type"], run["n_seq"])
    assert kv == round(run["kv_buffer_mib"] * MIB)  # exact: printed with 2 decimals, all whole MiB here
    # By hand at 8,192 tokens, F16: 4 global layers x 8,192 cells + 16 sliding x 1,024 cells (512 + the 512 ubatch),
    # 2 x 2 heads x 256 x 2 bytes = 2,048 bytes per cell and layer: 64 MiB + 32 MiB = 96 MiB, as llama.cpp printed.
    if (run["n_ctx"], run["n_seq"], run["kv_type"]) == (8192, 1, "f16"):
        assert kv == (4 * 8192 + 16 * 1024) * 2048 == 96 * MIB


@pytest.mark.parametrize(
    "run", RUNS, ids=lambda r: f"ctx{r['n_ctx']}-fa{int(r['flash_attn'])}-seq{r['n_seq']}-{r['kv_type']}"
)
def test_it_sizes_gemma_3n_compute_within_five_percent(run):
    options = fit.FitOptions(
        ctx=run["n_ctx"], users=run["n_seq"], kv_type=run["kv_type"], flash_attention=run["flash_attn"]
    )
    measured = run["compute_buffer_mib"] * MIB
    assert abs(fit.compute_bytes(e2b_shape(), options, "cpu") / measured - 1) < 0.05


def test_sharing_saves_a_third_of_the_kv():
    # Without the sharing all 30 layers would keep KV: 24 sliding + 6 global at 8,192 tokens =
    # (6 x 8,192 + 24 x 1,024) x 2,048 bytes = 144 MiB, against llama.cpp's 96 MiB.
    unshared = fit.ModelShape(**{**_fields(e2b_shape()), "kv_heads_per_layer": ()})
    assert fit.kv_cache_bytes(unshared, 8192) == 144 * MIB


def _fields(shape: fit.ModelShape) -> dict[str, object]:
    return {name: getattr(shape, name) for name in fit.ModelShape.__dataclass_fields__}
