"""The fit engine against llama.cpp's own allocation report (fixtures written by bench/validate_fit.py).

llama.cpp prints sizes in MiB with two decimals, so "exact" here means within that print rounding (0.005 MiB per
printed buffer). No llama-cpp-python needed: the fixtures carry the figures and their provenance.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from catalog import fit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "llamacpp"
MIB = 1024**2
PRINT_ROUNDING_MIB = 0.005
# Compute buffers are estimates: within 8% of llama.cpp's report for standard attention (worst: phi-1.5 without flash
# attention, whose parallel attention + FFN block keeps more activations alive, -7%); 15% for MLA (DeepSeek-V2-Lite:
# the engine adds the latent-space tensors at every context, llama.cpp only from ~8k with flash attention, +13%).
# The per-run errors are tabulated in docs/fit.md.
COMPUTE_TOLERANCE = 0.08
COMPUTE_TOLERANCE_MLA = 0.15
WEIGHTS_ESTIMATE_TOLERANCE = 0.03


def load_fixtures() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]


FIXTURE_DATA = load_fixtures()
RUNS = [(data, run) for data in FIXTURE_DATA for run in data["runs"]]


def shape_of(data: dict) -> fit.ModelShape:
    """The fixture's recorded shape as the engine takes it: every ModelShape field the fixture names (lists become
    sets in ModelShape itself); n_params only matters for weights, which these fixtures give exactly."""
    recorded = data["shape"]
    names = {f.name for f in dataclasses.fields(fit.ModelShape)}
    values = {name: value for name, value in recorded.items() if name in names and value is not None}
    values["n_params"] = recorded.get("n_params") or 1
    return fit.ModelShape(**values)


def options_of(run: dict) -> fit.FitOptions:
    return fit.FitOptions(
        ctx=run["n_ctx"],
        users=run.get("n_seq", 1),
        kv_type=run.get("kv_type", "f16"),
        flash_attention=run["flash_attn"],
        ubatch=512,
        swa_full=False,
    )


def run_id(item: tuple[dict, dict]) -> str:
    data, run = item
    fa = "fa" if run["flash_attn"] else "nofa"
    return f"{data['name']}-{run['n_ctx']}-{fa}-x{run.get('n_seq', 1)}-{run.get('kv_type', 'f16')}"


def test_it_has_fixtures_for_every_kind_of_attention():
    names = {data["name"] for data in FIXTURE_DATA}
    assert {"gemma-3-270m", "llama-3.1-8b", "qwen2.5-7b", "gemma-2-2b", "qwen3-30b-a3b", "deepseek-v2-lite"} <= names
    for data in FIXTURE_DATA:
        assert data["provenance"]["llama_cpp_python"]
        assert data["provenance"]["date_utc"]
        assert data["shape_source"]


@pytest.mark.parametrize(("data", "run"), RUNS, ids=[run_id(item) for item in RUNS])
def test_it_matches_llama_cpp_kv_cache_exactly(data, run):
    shape, opts = shape_of(data), options_of(run)
    engine = fit.kv_cache_bytes(shape, opts.ctx, opts.kv_type, opts.users, swa_full=False)
    printed = len(run["kv_caches"])
    assert abs(engine / MIB - run["kv_buffer_mib"]) <= PRINT_ROUNDING_MIB * printed
    # Cell counts are printed exactly: the full-attention cache, then (for SWA models) the window cache.
    expected_cells = [fit.kv_cells(opts.ctx, opts.users)]  # per stream: one stream per sequence
    if shape.swa_layers:
        expected_cells.append(fit.swa_cells(shape, opts.ctx, opts.users))
    assert [c["cells"] for c in run["kv_caches"]] == expected_cells


@pytest.mark.parametrize(("data", "run"), RUNS, ids=[run_id(item) for item in RUNS])
def test_it_estimates_the_compute_buffer_within_tolerance(data, run):
    shape, opts = shape_of(data), options_of(run)
    engine = fit.compute_bytes(shape, opts, device_kind="cpu") / MIB
    tolerance = COMPUTE_TOLERANCE_MLA if shape.kv_lora_rank else COMPUTE_TOLERANCE
    assert engine == pytest.approx(run["compute_buffer_mib"], rel=tolerance)


@pytest.mark.parametrize("data", FIXTURE_DATA, ids=[d["name"] for d in FIXTURE_DATA])
def test_it_counts_tensor_bytes_as_the_model_buffer(data):
    # llama.cpp's (mmapped) model buffer is the GGUF's tensor data: exact weights when tensor_bytes is known.
    tensor_bytes = data["gguf"]["tensor_bytes"]
    exact, is_exact = fit.weights_bytes(shape_of(data), fit.QuantSpec("any", tensor_bytes=tensor_bytes))
    assert is_exact
    for run in data["runs"]:
        assert abs(exact / MIB - run["model_buffer_mib"]) <= PRINT_ROUNDING_MIB


def test_it_estimates_the_real_gemma_file_from_its_quant_name():
    data = next(d for d in FIXTURE_DATA if d["name"] == "gemma-3-270m")
    estimate, exact = fit.weights_bytes(shape_of(data), fit.QuantSpec(data["gguf"]["quant"]))
    assert not exact
    assert estimate / MIB == pytest.approx(data["runs"][0]["model_buffer_mib"], rel=WEIGHTS_ESTIMATE_TOLERANCE)
    # The file (header and tokenizer included) is a few MiB larger than its tensors: counting it errs safe.
    assert data["gguf"]["file_bytes"] > data["gguf"]["tensor_bytes"]


# Traced in llama.cpp's allocator (docs/fit.md, "What is live at the peak"): with flash attention the peak of a dense
# model's graph is the logits phase, and what is live then is result_output (ub x vocab x 4), result_norm (ub x hidden
# x 4, a graph output, never freed) and inp_embd (ub x hidden x 4, an input nothing consumes on the token path),
# nothing else. The engine's logits term is that sum, so these runs match to llama.cpp's print rounding, not only
# within COMPUTE_TOLERANCE: e.g. Llama 3.1 8B, 512 x (128,256 + 2 x 4,096) x 4 = 279,445,504 bytes = 266.50 MiB.
DENSE_FA_RUNS = [
    (data, run)
    for data, run in RUNS
    if run["flash_attn"] and not data["shape"].get("n_experts") and not data["shape"].get("kv_lora_rank")
]


def test_it_counts_every_dense_flash_attention_run():
    # Gemma 2 2B, Gemma 3 270M, Llama 3.1 8B and Qwen 2.5 7B: 7 flash-attention runs each; phi-1.5: 5.
    assert {data["name"] for data, _ in DENSE_FA_RUNS} == {
        "gemma-2-2b",
        "gemma-3-270m",
        "llama-3.1-8b",
        "phi-1.5",
        "qwen2.5-7b",
    }
    assert len(DENSE_FA_RUNS) == 4 * 7 + 5


@pytest.mark.parametrize(("data", "run"), DENSE_FA_RUNS, ids=[run_id(item) for item in DENSE_FA_RUNS])
def test_it_matches_the_dense_logits_phase_to_the_printed_figure(data, run):
    shape, opts = shape_of(data), options_of(run)
    ub = min(opts.ubatch, opts.ctx * opts.users)
    by_hand = ub * (shape.vocab_size + 2 * shape.hidden_size) * 4  # result_output + result_norm + inp_embd
    assert fit.compute_bytes(shape, opts, device_kind="cpu") == by_hand
    # The allocator adds a few KiB of alignment and small inputs (inp_tokens, positions) under inp_embd.
    assert abs(by_hand / MIB - run["compute_buffer_mib"]) <= PRINT_ROUNDING_MIB
