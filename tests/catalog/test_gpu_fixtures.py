"""The fit engine against llama.cpp's CUDA allocation report on an NVIDIA H200 (fixtures written by bench/gpu_speed.py).

Each fixture is one llama-bench run (-ngl 99, f16 KV, n_ubatch 512) of a GGUF with a catalog model's shape and the
tensor types llama.cpp's quantizer picks; the provenance block says which GPU, driver, llama.cpp commit, flags and
command. The shapes here come the catalog's own way: the seed's config through importers.model_fields_from_hf_config.
llama-bench sizes each test's context as n_prompt + n_gen + n_depth, so every run is also a context-length point.
Speeds are stored in the fixtures for the speed model (bench/, issue 10); they are not asserted here.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from catalog import fit, importers

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "llamacpp_cuda"
SEED = ROOT / "catalog" / "seed" / "models"
MIB = 1024**2
PRINT_ROUNDING_MIB = 0.005  # llama.cpp prints MiB with two decimals
# Tolerances; the measured errors are tabulated in docs/fit.md ("Measured on an H200").
# Compute: dense models within +0.7% (no flash attention, 16k context) to +6.0% (70B; the engine's logits phase counts
# 2 x hidden per token where CUDA allocates 1 x hidden); the MoE model -10.8% (its expert FFN phase, not the logits,
# is CUDA's peak).
COMPUTE_TOLERANCE = 0.08
COMPUTE_TOLERANCE_MOE = 0.12
EMBED_TOLERANCE = 0.02  # engine's token-embedding share against llama.cpp's host (CPU_Mapped) model buffer
WEIGHTS_ESTIMATE_TOLERANCE = 0.03  # engine's weights from the quant name against the GGUF's tensor bytes
# GPU memory the engine does not budget yet: CUDA's runtime takes 599-1230 MiB beyond llama.cpp's buffers on the H200
# (fixture field gpu_runtime_overhead_mib), the engine budgets GPU_OVERHEAD_BYTES (400 MiB).
FOOTPRINT_TOLERANCE_MIB = 850

FIXTURE_DATA = [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("h200_*.json"))]
RUNS = [(data, run) for data in FIXTURE_DATA for run in data["runs"]]


def _seed_configs() -> dict[str, dict]:
    configs = {}
    for path in sorted(SEED.glob("*.toml")):
        for model in tomllib.loads(path.read_text())["models"]:
            configs[model["slug"]] = model["config"]
    return configs


SEED_CONFIGS = _seed_configs()


def shape_of(data: dict) -> fit.ModelShape:
    f = importers.model_fields_from_hf_config(SEED_CONFIGS[data["slug"]])
    return fit.ModelShape(
        n_params=f["n_params"],
        n_layers=f["n_layers"],
        hidden_size=f["hidden_size"],
        n_heads=f["n_heads"],
        n_kv_heads=f["n_kv_heads"],
        head_dim=f["head_dim"],
        vocab_size=f["vocab_size"],
        intermediate_size=f["intermediate_size"],
        tied_embeddings=f["tied_embeddings"],
        sliding_window=f["sliding_window"],
        swa_layers=frozenset(f["swa_layers"]),
        kv_lora_rank=f["kv_lora_rank"],
        qk_rope_head_dim=f["qk_rope_head_dim"],
        n_active_params=f.get("n_active_params"),
        n_experts=f["n_experts"],
        n_experts_used=f["n_experts_used"],
    )


def options_of(run: dict) -> fit.FitOptions:
    return fit.FitOptions(
        ctx=run["n_ctx_requested"],
        users=1,
        kv_type=run["type_k"],
        flash_attention=run["flash_attn"],
        ubatch=run["n_ubatch"],
        swa_full=False,  # llama-bench's context parameters
    )


def run_id(item: tuple[dict, dict]) -> str:
    data, run = item
    return f"{data['name']}-{run['test']}-d{run['n_depth']}-{'fa' if run['flash_attn'] else 'nofa'}"


def test_it_has_h200_fixtures_for_the_catalog_shapes_with_provenance():
    names = {data["name"] for data in FIXTURE_DATA}
    assert {
        "llama-3.1-8b-q4_k_m",
        "llama-3.1-8b-f16",
        "llama-3.1-70b-q4_k_m",
        "qwen3-30b-a3b-q4_k_m",
        "gemma-3-270m-q4_k_m",
    } <= names
    for data in FIXTURE_DATA:
        p = data["provenance"]
        assert "H200" in p["gpu"]
        assert p["driver"] and p["cuda"] and p["date_utc"] and p["command"].startswith("llama-bench ")
        assert p["llama_cpp_commit"] == "0c1e57098"
        assert data["gguf"]["weights"] in ("random", "zero")
        assert data["runs"], data["name"]
        for run in data["runs"]:
            assert run["t_s_mean"] > 0 and len(run["samples_ts"]) == 3


def test_it_sweeps_depth_and_flash_attention_for_llama_8b():
    data = next(d for d in FIXTURE_DATA if d["name"] == "llama-3.1-8b-q4_k_m")
    points = {(r["test"], r["n_depth"], r["flash_attn"]) for r in data["runs"]}
    assert {(t, d, fa) for t in ("pp512", "tg128") for d in (0, 4096, 16384) for fa in (False, True)} <= points


@pytest.mark.parametrize(("data", "run"), RUNS, ids=[run_id(item) for item in RUNS])
def test_it_matches_the_cuda_kv_buffer_exactly(data, run):
    shape, opts = shape_of(data), options_of(run)
    engine = fit.kv_cache_bytes(shape, opts.ctx, opts.kv_type, opts.users, ubatch=opts.ubatch, swa_full=False)
    printed = len(run["kv_caches"])
    assert abs(engine / MIB - run["buffers_mib"]["CUDA0 KV"]) <= PRINT_ROUNDING_MIB * printed
    expected_cells = [fit.kv_cells(opts.ctx)]
    if shape.swa_layers:
        expected_cells.append(fit.swa_cells(shape, opts.ctx, ubatch=opts.ubatch))
    assert [c["cells"] for c in run["kv_caches"]] == expected_cells


def _compute_case(item: tuple[dict, dict]):
    # llama.cpp caps n_batch (and so n_ubatch) at the requested n_ctx before padding it to 256
    # (src/llama-context.cpp: n_batch = min(n_ctx, n_batch), then n_ctx = GGML_PAD(n_ctx, 256)), and so does the
    # engine: tg128 asks for 128 cells and both reserve a 128-token graph.
    data, run = item
    assert run["n_ubatch_used"] == min(options_of(run).ubatch, options_of(run).ctx)
    return pytest.param(data, run, id=run_id(item))


@pytest.mark.parametrize(("data", "run"), [_compute_case(item) for item in RUNS])
def test_it_estimates_the_cuda_compute_buffer_within_tolerance(data, run):
    shape, opts = shape_of(data), options_of(run)
    engine = fit.compute_bytes(shape, opts, device_kind="gpu") / MIB
    tolerance = COMPUTE_TOLERANCE_MOE if shape.n_experts else COMPUTE_TOLERANCE
    assert engine == pytest.approx(run["buffers_mib"]["CUDA0 compute"], rel=tolerance)


@pytest.mark.parametrize(("data", "run"), RUNS, ids=[run_id(item) for item in RUNS])
def test_it_counts_the_output_buffer_in_the_overhead(data, run):
    # llama.cpp's output buffer (logits of one token per sequence) sits in pinned host memory on CUDA.
    shape, opts = shape_of(data), options_of(run)
    output = fit.overhead_bytes(shape, opts, device_kind="gpu") - fit.GPU_OVERHEAD_BYTES
    assert abs(output / MIB - run["buffers_mib"]["CUDA_Host output"]) <= PRINT_ROUNDING_MIB


@pytest.mark.xfail(strict=True, reason="CUDA runtime on the H200 takes 599-1230 MiB; the engine budgets 400 MiB")
def test_it_budgets_the_measured_cuda_runtime_overhead():
    measured = [run["gpu_runtime_overhead_mib"] for _, run in RUNS]
    assert max(measured) <= fit.GPU_OVERHEAD_BYTES / MIB


@pytest.mark.parametrize(("data", "run"), RUNS, ids=[run_id(item) for item in RUNS])
def test_it_sizes_the_gpu_footprint_within_tolerance(data, run):
    # The engine's whole-model breakdown less untied token embeddings (host memory with llama.cpp) against the GPU
    # memory the run took (peak used, sampled every 20 ms, less the idle reading before it).
    shape, opts = shape_of(data), options_of(run)
    quant = fit.QuantSpec(data["quant"], tensor_bytes=data["gguf"]["tensor_bytes"])
    breakdown = fit.memory_breakdown(shape, quant, opts, device_kind="gpu")
    assert breakdown.kv_cache_bytes == fit.kv_cache_bytes(shape, opts.ctx, opts.kv_type, ubatch=opts.ubatch)
    host = 0 if shape.tied_embeddings else fit.weights_split(shape, quant).embed_bytes
    on_gpu = (breakdown.total_bytes - host) / MIB
    measured = run["gpu_mem_peak_mib"] - data["gpu_mem_baseline_mib"]
    assert abs(on_gpu - measured) <= FOOTPRINT_TOLERANCE_MIB


@pytest.mark.parametrize("data", FIXTURE_DATA, ids=[d["name"] for d in FIXTURE_DATA])
def test_it_counts_the_model_buffers_as_the_tensor_bytes(data):
    # With every layer on the GPU llama.cpp still keeps the token embeddings in host memory (CPU_Mapped, read through
    # mmap); the rest is the CUDA0 model buffer. With tied embeddings the GPU also holds them, as the output matrix, so
    # the CUDA0 buffer is the whole file's tensors and the host copy comes on top.
    shape = shape_of(data)
    quant = fit.QuantSpec(data["quant"], tensor_bytes=data["gguf"]["tensor_bytes"])
    exact, is_exact = fit.weights_bytes(shape, quant)
    assert is_exact
    buffers, embd = data["model_buffers_mib"], data["gguf"]["token_embd_bytes"]
    on_gpu = exact if shape.tied_embeddings else exact - embd
    # ggml-cuda's buffer type aligns each tensor to 128 bytes (the GGUF to 32) and pads a quantized tensor whose rows
    # are not a multiple of 512 values by one 512-value row (get_alloc_size, MATRIX_ROW_PADDING): at most 544 bytes
    # for the widest quantized type here (Q8_0, 34 bytes per 32 values).
    alignment_mib = sum(data["gguf"]["tensor_types"].values()) * (128 + 544) / MIB
    assert -PRINT_ROUNDING_MIB <= buffers["CUDA0 model"] - on_gpu / MIB <= alignment_mib + PRINT_ROUNDING_MIB
    assert abs(embd / MIB - buffers["CPU_Mapped model"]) <= PRINT_ROUNDING_MIB
    split = fit.weights_split(shape, quant)
    assert split.embed_bytes == pytest.approx(data["gguf"]["token_embd_bytes"], rel=EMBED_TOLERANCE)


@pytest.mark.parametrize("data", FIXTURE_DATA, ids=[d["name"] for d in FIXTURE_DATA])
def test_it_estimates_the_weights_from_the_quant_name(data):
    estimate, exact = fit.weights_bytes(shape_of(data), fit.QuantSpec(data["quant"]))
    assert not exact
    assert estimate == pytest.approx(data["gguf"]["tensor_bytes"], rel=WEIGHTS_ESTIMATE_TOLERANCE)
