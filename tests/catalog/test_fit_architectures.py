"""The 2025-26 architectures in the fit engine: hybrid (recurrent + attention) models, gpt-oss (MXFP4 experts,
alternating 128-token sliding window), Llama 4 (chunked attention) and per-layer KV head counts.

Every expectation is computed by hand in the comment beside it from the formulas llama.cpp allocates with (the
llama.cpp sources vendored in llama-cpp-python 0.3.36, commit 0c1e570, the build the CPU fixtures come from):
- KV: src/llama-kv-cache.cpp, 2 x n_head_kv(il) x head_dim x cells x bytes per layer that keeps KV; sliding-window and
  chunked layers min(cells, n_swa + n_ubatch) padded to 256 cells (src/llama-kv-cache-iswa.cpp, size_swa).
- Recurrent state: src/llama-memory-recurrent.cpp, an F32 R tensor of n_embd_r x n_seq_max and an F32 S tensor of
  n_embd_s x n_seq_max per recurrent layer; n_embd_r / n_embd_s in src/llama-hparams.cpp.
Architecture figures are the published config.json values, cited per shape.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from catalog import fit
from catalog.importers import model_fields_from_hf_config
from tests.catalog.test_fit_validation import shape_of

MIB = 1024**2

# Qwen3-Next-80B-A3B: https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json (the same text
# model as Qwen3-Coder-Next; values as mirrored in public test code): 48 layers, hidden 2048, 16 heads, 2 KV heads,
# head_dim 256, full attention every 4th layer, gated delta net with 16 key heads x 128, 32 value heads x 128, conv 4.
QWEN3_NEXT_CONFIG = {
    "model_type": "qwen3_next",
    "hidden_size": 2048,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "vocab_size": 151936,
    "max_position_embeddings": 262144,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "linear_num_key_heads": 16,
    "linear_key_head_dim": 128,
    "linear_num_value_heads": 32,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "full_attention_interval": 4,
    "tie_word_embeddings": False,
}
# transformers' tiny GraniteMoeHybrid test config (8 layers, attention at 3 and 7, Mamba-2 elsewhere).
GRANITE_HYBRID_CONFIG = {
    "model_type": "granitemoehybrid",
    "hidden_size": 512,
    "intermediate_size": 1024,
    "layer_types": ["mamba", "mamba", "mamba", "attention", "mamba", "mamba", "mamba", "attention"],
    "mamba_d_conv": 4,
    "mamba_d_head": 128,
    "mamba_d_state": 128,
    "mamba_expand": 2,
    "mamba_n_groups": 1,
    "mamba_n_heads": 8,
    "max_position_embeddings": 4096,
    "num_attention_heads": 8,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 8,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "shared_intermediate_size": 512,
    "tie_word_embeddings": True,
    "vocab_size": 49152,
}
# LFM2-1.2B: https://huggingface.co/LiquidAI/LFM2-1.2B/blob/main/config.json: 16 layers, hidden 2048, 32 heads,
# 8 KV heads, attention at layers 2, 5, 8, 10, 12, 14, short convolutions (L_cache 3) elsewhere. The FFN width here is
# a placeholder the importer needs (it enters neither the KV nor the state).
LFM2_CONFIG = {
    "model_type": "lfm2",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 65536,
    "max_position_embeddings": 128000,
    "conv_L_cache": 3,
    "full_attn_idxs": [2, 5, 8, 10, 12, 14],
    "tie_word_embeddings": True,
}
# gpt-oss-20b: https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json (mirrored in EchoCog/gpt-oss-20b,
# config.json @ 52971a17): 24 layers alternating sliding (128) and full attention, 64 heads of 64, 8 KV heads.
GPT_OSS_20B_CONFIG = {
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "head_dim": 64,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "num_hidden_layers": 24,
    "num_local_experts": 32,
    "num_experts_per_tok": 4,
    "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "max_position_embeddings": 131072,
    "vocab_size": 201088,
    "tie_word_embeddings": False,
}
# Llama 4 Scout's text model: https://huggingface.co/meta-llama/Llama-4-Scout-17B-16E-Instruct/blob/main/config.json
# (text_config): 48 layers, hidden 5120, 40 heads of 128, 8 KV heads, attention_chunk_size 8192, 16 experts.
LLAMA4_SCOUT_CONFIG = {
    "model_type": "llama4",
    "text_config": {
        "model_type": "llama4_text",
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "head_dim": 128,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "num_hidden_layers": 48,
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "attention_chunk_size": 8192,
        "max_position_embeddings": 10485760,
        "vocab_size": 202048,
        "interleave_moe_layer_step": 1,
    },
}


def shape_from(config: dict) -> fit.ModelShape:
    fields = model_fields_from_hf_config(config)
    names = {f.name for f in dataclasses.fields(fit.ModelShape)}
    return fit.ModelShape(**{k: v for k, v in fields.items() if k in names and v is not None})


# --------------------------------------------------------------------------------------------------------------------
# Hybrid models: KV for the attention layers only, a recurrent state flat in context
# --------------------------------------------------------------------------------------------------------------------


def test_it_reads_qwen3_next_as_12_attention_and_36_delta_net_layers():
    shape = shape_from(QWEN3_NEXT_CONFIG)
    assert shape.attention_layers == frozenset(range(3, 48, 4))
    assert shape.recurrent_layers == frozenset(range(48)) - frozenset(range(3, 48, 4))
    # n_embd_r = (4 - 1) x (32 x 128 + 2 x 16 x 128) = 3 x 8192 = 24,576; n_embd_s = 128 x 4096 = 524,288.
    assert shape.recurrent_state_values == 24_576 + 524_288


def test_it_sizes_qwen3_next_kv_for_its_attention_layers_only():
    shape = shape_from(QWEN3_NEXT_CONFIG)
    # 12 layers x 2 (K, V) x 2 heads x 256 x 2 bytes = 24,576 bytes per cell; x 4096 cells = 96 MiB.
    assert fit.kv_cache_bytes(shape, 4096) == 12 * 2048 * 4096 == 96 * MIB
    # A plain transformer of the same shape would hold four times as much.
    plain = dataclasses.replace(shape, attention_layers=None, recurrent_layers=frozenset())
    assert fit.kv_cache_bytes(plain, 4096) == 4 * fit.kv_cache_bytes(shape, 4096)


def test_it_sizes_qwen3_next_recurrent_state_per_sequence():
    shape = shape_from(QWEN3_NEXT_CONFIG)
    # 36 layers x 548,864 values x 4 bytes = 79,036,416 bytes per sequence (75.375 MiB).
    assert fit.recurrent_state_bytes(shape, users=1) == 79_036_416
    assert fit.recurrent_state_bytes(shape, users=4) == 4 * 79_036_416


def test_it_counts_the_recurrent_state_in_the_memory_breakdown():
    shape = shape_from(QWEN3_NEXT_CONFIG)
    opts = fit.FitOptions(ctx=4096)
    mem = fit.memory_breakdown(shape, fit.QuantSpec("Q4_K_M"), opts, device_kind="gpu")
    assert mem.kv_cache_bytes == 96 * MIB + 79_036_416


@pytest.mark.parametrize(
    "config", [QWEN3_NEXT_CONFIG, GRANITE_HYBRID_CONFIG, LFM2_CONFIG], ids=lambda c: c["model_type"]
)
def test_it_keeps_the_recurrent_state_flat_and_the_kv_growing_with_context(config):
    shape = shape_from(config)
    states = {fit.recurrent_state_bytes(shape, users=2) for _ctx in (512, 4096, 65536)}
    assert len(states) == 1 and states.pop() > 0
    previous = 0
    for ctx in (256, 512, 1000, 4096, 8192, 32768):
        mem = fit.memory_breakdown(shape, fit.QuantSpec("Q8_0"), fit.FitOptions(ctx=ctx), device_kind="gpu")
        assert mem.total_bytes >= previous  # more context never needs less memory
        previous = mem.total_bytes


def test_it_reads_granite_hybrid_mamba2_state():
    shape = shape_from(GRANITE_HYBRID_CONFIG)
    assert shape.attention_layers == frozenset({3, 7})
    assert shape.recurrent_layers == frozenset({0, 1, 2, 4, 5, 6})
    # d_inner = 2 x 512 = 1024; n_embd_r = 3 x (1024 + 2 x 1 x 128) = 3,840; n_embd_s = 128 x 1024 = 131,072.
    assert shape.recurrent_state_values == 3_840 + 131_072
    # 6 layers x 134,912 x 4 bytes = 3,237,888 bytes per sequence.
    assert fit.recurrent_state_bytes(shape) == 3_237_888
    # KV: 2 layers x 2 x 8 heads x 64 x 2 bytes = 4,096 bytes per cell.
    assert fit.kv_cache_bytes(shape, 2048) == 2 * 2048 * 2048


def test_it_reads_lfm2_short_convolution_state():
    shape = shape_from(LFM2_CONFIG)
    assert shape.attention_layers == frozenset({2, 5, 8, 10, 12, 14})
    assert len(shape.recurrent_layers) == 10
    # n_embd_r = 2048 x (3 - 1) = 4,096 values, no S state: 10 layers x 4,096 x 4 bytes = 163,840 bytes.
    assert shape.recurrent_state_values == 4096
    assert fit.recurrent_state_bytes(shape) == 163_840
    # KV: 6 layers x 2 x 8 heads x 64 x 2 bytes = 12,288 bytes per cell.
    assert fit.kv_cache_bytes(shape, 4096) == 12_288 * 4096


def test_it_gives_falcon_h1_both_kv_and_state_on_every_layer():
    config = {
        "model_type": "falcon_h1",
        "hidden_size": 1024,
        "intermediate_size": 2048,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "vocab_size": 32768,
        "max_position_embeddings": 16384,
        "mamba_d_ssm": 1536,
        "mamba_d_state": 64,
        "mamba_d_conv": 4,
        "mamba_n_groups": 1,
    }
    shape = shape_from(config)
    assert shape.attention_layers is None
    assert shape.recurrent_layers == frozenset(range(4))
    # n_embd_r = 3 x (1536 + 2 x 64) = 4,992; n_embd_s = 64 x 1536 = 98,304.
    assert shape.recurrent_state_values == 4_992 + 98_304
    # Every layer keeps KV too: 4 x 2 x 2 x 64 x 2 bytes = 2,048 bytes per cell.
    assert fit.kv_cache_bytes(shape, 1024) == 2048 * 1024


def test_it_places_a_recurrent_layers_state_with_its_layer_on_partial_offload():
    shape = shape_from(QWEN3_NEXT_CONFIG)
    assert fit.layer_state_bytes(shape, 0, users=1) == 548_864 * 4
    assert fit.layer_state_bytes(shape, 3, users=1) == 0  # an attention layer keeps KV, not state
    assert fit.kv_layer_bytes(shape, 0, 4096) == 0
    assert fit.kv_layer_bytes(shape, 3, 4096) == 2048 * 4096
    total = sum(fit.kv_layer_bytes(shape, il, 4096) + fit.layer_state_bytes(shape, il) for il in range(shape.n_layers))
    assert total == fit.kv_cache_bytes(shape, 4096) + fit.recurrent_state_bytes(shape)


def test_it_leaves_plain_transformers_unchanged():
    shape = fit.ModelShape(
        n_params=8_030_261_248,
        n_layers=32,
        hidden_size=4096,
        n_heads=32,
        n_kv_heads=8,
        head_dim=128,
        vocab_size=128256,
    )
    assert fit.recurrent_state_bytes(shape) == 0
    assert fit.kv_cache_bytes(shape, 8192) == 32 * 2 * 8 * 128 * 2 * 8192  # 1 GiB


# --------------------------------------------------------------------------------------------------------------------
# gpt-oss: alternating 128-token sliding window, attention sinks, MXFP4 experts
# --------------------------------------------------------------------------------------------------------------------


def test_it_reads_gpt_oss_as_alternating_sliding_and_full_attention():
    shape = shape_from(GPT_OSS_20B_CONFIG)
    assert shape.sliding_window == 128
    assert shape.swa_layers == frozenset(range(0, 24, 2))  # llama.cpp set_swa_pattern(2): even layers slide
    assert shape.swa_layers == fit.swa_layers_every(24, 2)
    assert (shape.n_experts, shape.n_experts_used) == (32, 4)


def test_it_sizes_gpt_oss_kv_like_llama_cpp():
    shape = shape_from(GPT_OSS_20B_CONFIG)
    # Per layer per cell: 2 x 8 heads x 64 x 2 bytes = 2,048 bytes. Attention sinks are one scalar per head in the
    # weights, no KV. At 8192: 12 full layers x 8192 cells + 12 sliding layers x pad(128 + 512, 256) = 768 cells.
    assert fit.swa_cells(shape, 8192) == 768
    assert fit.kv_cache_bytes(shape, 8192) == 12 * 2048 * 8192 + 12 * 2048 * 768 == 210 * MIB
    # --swa-full keeps every cell on every layer.
    assert fit.kv_cache_bytes(shape, 8192, swa_full=True) == 24 * 2048 * 8192


def test_it_knows_mxfp4_is_4_25_bits():
    # block_mxfp4 (ggml/src/ggml-common.h): 1 E8M0 scale byte + 16 bytes of 32 nibbles = 17 bytes per 32 weights.
    assert fit.BLOCK_BITS["MXFP4"] == 4.25
    assert fit.BLOCK_SIZE["MXFP4"] == 32
    assert fit.nominal_bits_per_weight("MXFP4") == 4.25
    assert fit.nominal_bits_per_weight("mxfp4_moe") == 4.25


def test_it_estimates_mxfp4_moe_weights_from_the_expert_share():
    shape = shape_from(GPT_OSS_20B_CONFIG)
    split = fit.weights_split(shape, fit.QuantSpec("MXFP4_MOE"))
    # Embeddings and output at Q8_0 (8.5 bits): 201,088 x 2880 x 8.5 / 8 bytes each.
    assert split.embed_bytes == round(201_088 * 2880 * 8.5 / 8)
    assert split.output_bytes == split.embed_bytes
    # Experts: 24 layers x 32 experts x 3 x 2880 x 2880 = 19,110,297,600 weights at 4.25 bits; the rest of the layers
    # at 8.5 bits.
    experts = 24 * 32 * 3 * 2880 * 2880
    body = shape.n_params - 2 * 201_088 * 2880
    expected = (experts * 4.25 + (body - experts) * 8.5) / 8
    assert split.layers_bytes == pytest.approx(expected, rel=1e-9)
    # So the whole file sits a little above 4.25 bits per weight, far below Q8_0.
    bits = split.total_bytes * 8 / shape.n_params
    assert 4.25 < bits < 5.0


# --------------------------------------------------------------------------------------------------------------------
# Llama 4: chunked attention on 3 of 4 layers, sized like sliding-window layers
# --------------------------------------------------------------------------------------------------------------------


def test_it_reads_llama4_chunked_attention_as_three_of_four_windowed_layers():
    shape = shape_from(LLAMA4_SCOUT_CONFIG)
    assert shape.sliding_window == 8192
    # llama.cpp src/models/llama4.cpp: load_swa_pattern(ml, 4), layer il chunked when il % 4 < 3.
    assert shape.swa_layers == frozenset(il for il in range(48) if il % 4 < 3)
    assert shape.swa_layers == fit.swa_layers_every(48, 4)


def test_it_sizes_llama4_scout_kv_like_llama_cpp():
    shape = shape_from(LLAMA4_SCOUT_CONFIG)
    # Per layer per cell: 2 x 8 heads x 128 x 2 bytes = 4,096 bytes. At 32768: 12 full layers x 32768 cells and 36
    # chunked layers x pad(8192 + 512, 256) = 8,704 cells.
    assert fit.swa_cells(shape, 32768) == 8704
    assert fit.kv_cache_bytes(shape, 32768) == 12 * 4096 * 32768 + 36 * 4096 * 8704 == 2_894_069_760
    # Below the chunk, every layer holds the whole context.
    assert fit.kv_cache_bytes(shape, 4096) == 48 * 4096 * 4096


def test_it_takes_llama4_nope_layers_from_no_rope_layers():
    config = {**LLAMA4_SCOUT_CONFIG, "text_config": {**LLAMA4_SCOUT_CONFIG["text_config"]}}
    config["text_config"]["no_rope_layers"] = [0 if (il + 1) % 4 == 0 else 1 for il in range(48)]
    assert shape_from(config).swa_layers == fit.swa_layers_every(48, 4)


# --------------------------------------------------------------------------------------------------------------------
# Per-layer KV heads
# --------------------------------------------------------------------------------------------------------------------


def test_it_sums_kv_over_per_layer_head_counts():
    # A synthetic 4-layer shape (OpenELM and Nemotron-NAS vary KV heads by layer, llama.cpp's n_head_kv_arr).
    shape = fit.ModelShape(
        n_params=10**9,
        n_layers=4,
        hidden_size=1024,
        n_heads=16,
        n_kv_heads=4,
        head_dim=64,
        vocab_size=32000,
        kv_heads_per_layer=(2, 4, 4, 0),
    )
    # (2 + 4 + 4 + 0) heads x 2 x 64 x 2 bytes = 2,560 bytes per cell.
    assert fit.kv_cache_bytes(shape, 1024) == 2_560 * 1024
    assert [fit.kv_layer_bytes(shape, il, 1024) for il in range(4)] == [512 * 1024, 1024 * 1024, 1024 * 1024, 0]
    assert fit.kv_cache_bytes(shape, 1024, "q8_0") == 10 * 2 * (64 // 32 * 34) * 1024


def test_it_rejects_a_per_layer_list_of_the_wrong_length():
    shape = fit.ModelShape(
        n_params=10**9,
        n_layers=4,
        hidden_size=1024,
        n_heads=16,
        n_kv_heads=4,
        head_dim=64,
        vocab_size=32000,
        kv_heads_per_layer=(2, 4),
    )
    with pytest.raises(ValueError, match="kv_heads_per_layer"):
        fit.kv_cache_bytes(shape, 1024)


def test_it_accepts_json_lists_for_layer_sets():
    shape = fit.ModelShape(
        n_params=10**9,
        n_layers=4,
        hidden_size=1024,
        n_heads=16,
        n_kv_heads=4,
        head_dim=64,
        vocab_size=32000,
        attention_layers=[3],  # type: ignore[arg-type]
        recurrent_layers=[0, 1, 2],  # type: ignore[arg-type]
        recurrent_state_values=10,
        kv_heads_per_layer=[4, 4, 4, 4],  # type: ignore[arg-type]
    )
    assert shape.attention_layers == frozenset({3})
    assert hash(shape)  # memoizable
    assert fit.recurrent_state_bytes(shape) == 3 * 10 * 4


@pytest.mark.parametrize("users", [1, 3])
def test_it_never_needs_less_memory_for_more_context_on_any_new_architecture(users):
    for config in (QWEN3_NEXT_CONFIG, GRANITE_HYBRID_CONFIG, LFM2_CONFIG, GPT_OSS_20B_CONFIG, LLAMA4_SCOUT_CONFIG):
        shape = shape_from(config)
        previous = 0
        for ctx in range(256, 20_000, 1_777):
            kv = fit.kv_cache_bytes(shape, ctx, users=users) + fit.recurrent_state_bytes(shape, users)
            assert kv >= previous, (config["model_type"], ctx)
            previous = kv


# --------------------------------------------------------------------------------------------------------------------
# Against llama.cpp's own report (bench/validate_fit_architectures.py, sparse GGUFs, CPU backend)
# --------------------------------------------------------------------------------------------------------------------

ARCH_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "llamacpp_arch"
PRINT_ROUNDING_MIB = 0.005  # llama.cpp prints MiB with two decimals
COMPUTE_TOLERANCE = 0.08  # as tests/catalog/test_fit_validation.py: the compute buffer is an estimate
ARCH_DATA = [json.loads(path.read_text()) for path in sorted(ARCH_FIXTURES.glob("*.json"))]
ARCH_RUNS = [(data, run) for data in ARCH_DATA for run in data["runs"]]


def arch_run_id(item: tuple[dict, dict]) -> str:
    data, run = item
    return f"{data['name']}-{run['n_ctx']}-{'fa' if run['flash_attn'] else 'nofa'}-x{run['n_seq']}-{run['kv_type']}"


def test_it_has_llama_cpp_fixtures_for_the_new_architectures():
    names = {data["name"] for data in ARCH_DATA}
    assert {"gpt-oss-20b", "lfm2-1.2b", "llama-4-scout-8-layers", "granite-hybrid-tiny", "qwen3-next-8-layers"} <= names
    for data in ARCH_DATA:
        assert data["provenance"]["llama_cpp_python"] and data["provenance"]["date_utc"]
        assert data["shape_source"]


@pytest.mark.parametrize(("data", "run"), ARCH_RUNS, ids=[arch_run_id(item) for item in ARCH_RUNS])
def test_it_matches_llama_cpp_kv_and_recurrent_state(data, run):
    shape = shape_of(data)
    ctx, users, kv_type = run["n_ctx"], run["n_seq"], run["kv_type"]
    kv = fit.kv_cache_bytes(shape, ctx, kv_type, users)
    assert abs(kv / MIB - run["kv_buffer_mib"]) <= PRINT_ROUNDING_MIB * max(len(run["kv_caches"]), 1) + 1e-9
    state = fit.recurrent_state_bytes(shape, users)
    assert abs(state / MIB - run["rs_buffer_mib"]) <= PRINT_ROUNDING_MIB + 1e-9  # 0.625 prints as 0.62
    expected_cells = [fit.kv_cells(ctx, users)]
    if shape.swa_layers:
        expected_cells.append(fit.swa_cells(shape, ctx, users))
    assert [c["cells"] for c in run["kv_caches"]] == expected_cells


@pytest.mark.parametrize(("data", "run"), ARCH_RUNS, ids=[arch_run_id(item) for item in ARCH_RUNS])
def test_it_estimates_the_new_architectures_compute_buffer_within_tolerance(data, run):
    shape = shape_of(data)
    opts = fit.FitOptions(
        ctx=run["n_ctx"], users=run["n_seq"], kv_type=run["kv_type"], flash_attention=run["flash_attn"]
    )
    engine = fit.compute_bytes(shape, opts, device_kind="cpu") / MIB
    assert engine == pytest.approx(run["compute_buffer_mib"], rel=COMPUTE_TOLERANCE)


def test_it_places_and_times_a_hybrid_model_end_to_end():
    shape = dataclasses.replace(shape_from(QWEN3_NEXT_CONFIG), n_params=80 * 10**9, n_active_params=3 * 10**9)
    small = fit.DeviceSpec("24 GB GPU", "gpu", 24 * 1024**3, 1000.0, fp16_tflops=80.0)
    big = fit.DeviceSpec("141 GB GPU", "gpu", 141 * 1024**3, 4800.0, fp16_tflops=240.0)
    opts = fit.FitOptions(ctx=32768, system_ram_bytes=128 * 1024**3)
    partial = fit.fit(shape, fit.QuantSpec("Q4_K_M"), small, opts)
    whole = fit.fit(shape, fit.QuantSpec("Q4_K_M"), big, opts)
    assert partial.verdict == fit.Verdict.PARTIAL_OFFLOAD and partial.gpu_layers >= 1
    assert whole.verdict == fit.Verdict.FITS_GPU
    assert whole.est_decode_tps and whole.est_decode_tps > 0
    # The context memory: 12 attention layers' KV at 32,768 tokens plus one sequence's delta-net state.
    assert whole.memory.kv_cache_bytes == 12 * 2048 * 32768 + 79_036_416
    assert fit.max_context(shape, fit.QuantSpec("Q4_K_M"), big, opts, limit=262144) == 262144


def test_it_reads_lfm2s_own_ffn_width_and_tied_embeddings():
    # LFM2-350M's config.json (as copied in Thorge-AI/lfm2-web-runtime-weights, Models/350M/config.json): width 6656
    # with block_auto_adjust_ff_dim, which transformers shrinks to 2/3 rounded up to 256 = 4608, llama.cpp's n_ff for
    # LLM_TYPE_350M; tie_embedding is LFM2's own key.
    config = {
        "model_type": "lfm2",
        "hidden_size": 1024,
        "intermediate_size": 6656,
        "block_auto_adjust_ff_dim": True,
        "block_ffn_dim_multiplier": 1.0,
        "block_multiple_of": 256,
        "conv_L_cache": 3,
        "layer_types": ["full_attention" if il in LFM2_CONFIG["full_attn_idxs"] else "conv" for il in range(16)],
        "max_position_embeddings": 128000,
        "num_attention_heads": 16,
        "num_hidden_layers": 16,
        "num_key_value_heads": 8,
        "vocab_size": 65536,
        "tie_embedding": True,
    }
    fields = model_fields_from_hf_config(config)
    assert fields["intermediate_size"] == 4608
    assert fields["tied_embeddings"] is True
    assert fields["attention_layers"] == [2, 5, 8, 10, 12, 14]
    assert fields["recurrent_state_values"] == 1024 * 2
    assert model_fields_from_hf_config({**config, "block_auto_adjust_ff_dim": False})["intermediate_size"] == 6656


def test_it_follows_a_llama4_configs_own_layer_types():
    # Later llama4_text configs (MobileLLM-R1) list every layer as full_attention: no chunked window then.
    text = {**LLAMA4_SCOUT_CONFIG["text_config"], "layer_types": ["full_attention"] * 48}
    shape = shape_from({**LLAMA4_SCOUT_CONFIG, "text_config": text})
    assert shape.sliding_window is None and not shape.swa_layers
    text = {**LLAMA4_SCOUT_CONFIG["text_config"], "layer_types": ["chunked_attention"] * 3 + ["full_attention"] * 45}
    assert shape_from({**LLAMA4_SCOUT_CONFIG, "text_config": text}).swa_layers == frozenset({0, 1, 2})
    # A chunk as long as the context bounds nothing.
    text = {**LLAMA4_SCOUT_CONFIG["text_config"], "attention_chunk_size": 32768, "max_position_embeddings": 32768}
    assert shape_from({**LLAMA4_SCOUT_CONFIG, "text_config": text}).sliding_window is None
