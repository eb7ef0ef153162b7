from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import fit
from catalog.fit import DeviceSpec, FitOptions, ModelShape, QuantSpec, Verdict

GIB = 1024**3
MIB = 1024**2

# Llama 3.1 8B (meta-llama/Llama-3.1-8B config.json): GQA, 8 KV heads of 128.
LLAMA_8B = ModelShape(
    n_params=8_030_261_248,
    n_layers=32,
    hidden_size=4096,
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    vocab_size=128256,
    intermediate_size=14336,
)
# Gemma 3 270M (GGUF header): one KV head of 256, a 512-token window on 15 of 18 layers, tied embeddings.
GEMMA_270M = ModelShape(
    n_params=268_098_176,
    n_layers=18,
    hidden_size=640,
    n_heads=4,
    n_kv_heads=1,
    head_dim=256,
    vocab_size=262144,
    intermediate_size=2048,
    tied_embeddings=True,
    sliding_window=512,
    swa_layers=fit.swa_layers_every(18, 6),
)
# DeepSeek-V2-Lite (deepseek-ai/DeepSeek-V2-Lite config.json): MLA, kv_lora_rank 512 + rope 64; MoE 64 experts, 6 used.
DEEPSEEK_V2_LITE = ModelShape(
    n_params=15_706_484_224,
    n_layers=27,
    hidden_size=2048,
    n_heads=16,
    n_kv_heads=16,
    head_dim=192,
    vocab_size=102400,
    intermediate_size=1408,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    n_active_params=2_660_000_000,
    n_experts=64,
    n_experts_used=6,
)
Q4 = QuantSpec("Q4_K_M")
LADDER = ("F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K")
RTX_4090 = DeviceSpec("RTX 4090", "gpu", 24 * GIB, 1008.0, fp16_tflops=165.2)


def test_it_knows_block_bits_and_mix_bits():
    assert fit.nominal_bits_per_weight("Q8_0") == pytest.approx(8.5, abs=0.02)
    assert fit.nominal_bits_per_weight("f16") == 16.0
    assert fit.nominal_bits_per_weight("IQ4_XS") == 4.25
    # quantize.cpp: Q4_K_M is 4.58 GiB at Llama 3 8B -> 4.9 bits per weight, above Q4_K's 4.5.
    assert fit.nominal_bits_per_weight("Q4_K_M") == pytest.approx(4.9, abs=0.01)
    assert fit.nominal_bits_per_weight("Q4_K") == fit.nominal_bits_per_weight("Q4_K_M")
    assert fit.nominal_bits_per_weight("NOT_A_QUANT") is None


def test_it_orders_quant_names_from_high_to_low_precision():
    bits = [fit.nominal_bits_per_weight(n) for n in fit.QUANT_NAMES]
    assert bits == sorted(bits, reverse=True)
    assert fit.QUANT_NAMES[0] == "F32"
    assert {"Q4_K_M", "Q5_K_M", "IQ2_M", "IQ3_XS", "Q2_K"} <= set(fit.QUANT_NAMES)
    assert fit.KV_TYPES == ("f16", "bf16", "f32", "q8_0", "q4_0")


def test_it_counts_gqa_kv_per_kv_head():
    # 32 layers x 2 x 8 heads x 128 x 8192 cells x 2 bytes = 1 GiB.
    assert fit.kv_cache_bytes(LLAMA_8B, 8192) == GIB
    mha = dataclasses.replace(LLAMA_8B, n_kv_heads=32)
    assert fit.kv_cache_bytes(mha, 8192) == 4 * GIB


def test_it_pads_cells_to_256_like_llama_cpp():
    assert fit.kv_cells(1) == 256
    assert fit.kv_cells(1000) == 1024
    assert fit.kv_cache_bytes(LLAMA_8B, 1000) == fit.kv_cache_bytes(LLAMA_8B, 1024)


def test_it_sizes_quantized_kv_by_block():
    f16 = fit.kv_cache_bytes(LLAMA_8B, 4096, "f16")
    assert fit.kv_cache_bytes(LLAMA_8B, 4096, "q8_0") * 64 == f16 * 34  # 34 bytes per 32 values vs 64
    assert fit.kv_cache_bytes(LLAMA_8B, 4096, "q4_0") * 64 == f16 * 18
    assert fit.kv_cache_bytes(LLAMA_8B, 4096, "f32") == 2 * f16


def test_it_stops_growing_swa_layers_at_the_window():
    # 3 full layers grow with context; 15 window layers hold pad(512 + ubatch 512, 256) = 1024 cells.
    per_cell_layer = 2 * 1 * 256 * 2
    assert fit.kv_cache_bytes(GEMMA_270M, 32768) == per_cell_layer * (3 * 32768 + 15 * 1024)
    assert fit.kv_cache_bytes(GEMMA_270M, 256) == per_cell_layer * 18 * 256
    full = fit.kv_cache_bytes(GEMMA_270M, 32768, swa_full=True)
    assert full == per_cell_layer * 18 * 32768


def test_it_stores_one_latent_head_for_mla():
    # 27 layers x (512 + 64) x 4096 cells x 2 bytes, no separate V.
    assert fit.kv_cache_bytes(DEEPSEEK_V2_LITE, 4096) == 27 * 576 * 4096 * 2


def test_it_gives_each_user_a_stream():
    assert fit.kv_cache_bytes(LLAMA_8B, 4096, users=4) == 4 * fit.kv_cache_bytes(LLAMA_8B, 4096)
    # Window layers: one window per sequence.
    one = fit.kv_cache_bytes(GEMMA_270M, 8192)
    assert fit.kv_cache_bytes(GEMMA_270M, 8192, users=3) == 3 * one


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit.kv_cache_bytes(LLAMA_8B, 0), "ctx"),
        (lambda: fit.kv_cache_bytes(LLAMA_8B, 512, users=0), "users"),
        (lambda: fit.kv_cache_bytes(LLAMA_8B, 512, "q5_1"), "kv_type"),
        (lambda: fit.memory_breakdown(LLAMA_8B, Q4, FitOptions(ctx=-5)), "ctx"),
        (lambda: fit.fit(LLAMA_8B, Q4, RTX_4090, FitOptions(users=0)), "users"),
        (lambda: fit.fit(LLAMA_8B, Q4, RTX_4090, FitOptions(kv_type="int8")), "kv_type"),  # type: ignore[arg-type]
        (lambda: fit.fit(LLAMA_8B, Q4, dataclasses.replace(RTX_4090, kind="tpu"), FitOptions()), "kind"),  # type: ignore[arg-type]
        (lambda: fit.roofline_decode_tps(LLAMA_8B, Q4, 0), "bandwidth"),
    ],
)
def test_it_rejects_bad_input_with_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_it_estimates_weights_with_embeddings_at_higher_precision():
    size, exact = fit.weights_bytes(LLAMA_8B, Q4)
    assert not exact
    # quantize.cpp: Llama 3 8B Q4_K_M = 4.58 GiB.
    assert size == pytest.approx(4.58 * GIB, rel=0.01)
    # Gemma 3 270M: 168M of its 268M params are the 262144 x 640 embedding, kept at Q8_0 (640 is not a multiple of
    # 256), so the file is far above 4.9 bits per weight: llama.cpp reports 235.16 MiB (7.36 bpw).
    size, _ = fit.weights_bytes(GEMMA_270M, Q4)
    assert size == pytest.approx(235.16 * MIB, rel=0.03)
    assert size * 8 / GEMMA_270M.n_params > 7


def test_it_prefers_the_quants_own_bits_to_the_mix_model():
    size, exact = fit.weights_bytes(GEMMA_270M, QuantSpec("Q4_K_M", bits_per_weight=7.36))
    assert not exact
    assert size == round(GEMMA_270M.n_params * 7.36 / 8)
    # An unknown name without a figure is counted at 16 bits, the safe side.
    assert fit.weights_bytes(LLAMA_8B, QuantSpec("EXL2-mystery"))[0] == LLAMA_8B.n_params * 2


def test_it_takes_exact_bytes_when_the_file_is_known():
    assert fit.weights_bytes(LLAMA_8B, QuantSpec("Q4_K_M", file_bytes=4_920_000_000)) == (4_920_000_000, True)
    assert fit.weights_bytes(LLAMA_8B, QuantSpec("X", file_bytes=9, tensor_bytes=7)) == (7, True)
    mem = fit.memory_breakdown(LLAMA_8B, QuantSpec("Q4_K_M", file_bytes=4_920_000_000), FitOptions())
    assert "weights_bytes" not in mem.estimated
    assert {"compute_bytes", "overhead_bytes"} <= mem.estimated


def test_it_adds_vision_encoder_and_image_tokens():
    vlm = dataclasses.replace(GEMMA_270M, vision_params=400_000_000, image_tokens=256, n_params=668_098_176)
    mem = fit.memory_breakdown(vlm, Q4, FitOptions(ctx=2048))
    text = fit.memory_breakdown(GEMMA_270M, Q4, FitOptions(ctx=2048))
    assert mem.vision_bytes == 800_000_000
    assert "vision_bytes" in mem.estimated
    assert mem.weights_bytes == text.weights_bytes  # the vision share is not counted twice
    # The context is the runtime's -c: the image's 256 tokens live inside the 2,048 cells, not on top of them.
    assert mem.kv_cache_bytes == fit.kv_cache_bytes(GEMMA_270M, 2048)
    assert fit.text_tokens_after_image(vlm, 2048) == 2048 - 256
    assert fit.text_tokens_after_image(vlm, 200) == 0
    assert fit.text_tokens_after_image(GEMMA_270M, 2048) is None
    assert mem.total_bytes == sum(
        (mem.weights_bytes, mem.kv_cache_bytes, mem.compute_bytes, mem.overhead_bytes, mem.vision_bytes)
    )


def test_it_grows_compute_with_context_only_without_flash_attention():
    short = fit.compute_bytes(LLAMA_8B, FitOptions(ctx=2048, flash_attention=False))
    long = fit.compute_bytes(LLAMA_8B, FitOptions(ctx=32768, flash_attention=False))
    assert long > 4 * short
    flat = {fit.compute_bytes(LLAMA_8B, FitOptions(ctx=c, flash_attention=True)) for c in (2048, 32768)}
    assert len(flat) == 1
    # The logits of a 512-token ubatch dominate: 512 x 128256 x 4 bytes.
    assert flat.pop() >= 512 * 128256 * 4


def test_it_counts_the_sliding_caches_own_mask_and_v_indices_without_flash_attention():
    # llama_kv_cache_iswa: a full and a sliding cache, each with its own graph inputs (build_attn_inp_kv_iswa,
    # src/llama-graph.cpp), live through every layer. Two layers (layer 0 slides over 256 tokens, layer 1 is full),
    # 4 heads, 2 KV heads of 64, hidden 256, intermediate 1,024, vocab 1,000; 4,096 tokens, ubatch 512.
    base = {
        "n_params": 10**8, "n_layers": 2, "hidden_size": 256, "n_heads": 4, "n_kv_heads": 2, "head_dim": 64,
        "vocab_size": 1000, "intermediate_size": 1024,
    }  # fmt: skip
    mixed = fit.ModelShape(**base, sliding_window=256, swa_layers=frozenset({0}))
    no_fa = FitOptions(ctx=4096, flash_attention=False)
    # Attention term: 512 x 4,096 x (4 + 1) x 4 = 41,943,040 + 512 x (1,024 + 2 x 256) x 4 = 3,145,728 -> 45,088,768.
    # The sliding cache's F32 mask, 512 x 768 cells (min(4,096, 256 + 512) padded to 256) x 4 = 1,572,864, and its I64
    # V row indices, 512 x (2 x 64) x 8 = 524,288: 45,088,768 + 2,097,152 = 47,185,920.
    assert fit.compute_bytes(mixed, no_fa) == 47_185_920
    # --swa-full: the sliding cache has all 4,096 cells, its mask 512 x 4,096 x 4 = 8,388,608: 54,001,664.
    assert fit.compute_bytes(mixed, FitOptions(ctx=4096, flash_attention=False, swa_full=True)) == 54_001_664
    # One cache only (every KV layer full, or every one sliding): no second set of inputs.
    assert fit.compute_bytes(fit.ModelShape(**base), no_fa) == 45_088_768
    assert (
        fit._iswa_inputs_bytes(fit.ModelShape(**base, sliding_window=256, swa_layers=frozenset({0, 1})), no_fa, 512)
        == 0
    )
    # Flash attention: the logits phase, 512 x (1,000 + 2 x 256) x 4 = 3,096,576.
    assert fit.compute_bytes(mixed, FitOptions(ctx=4096)) == 3_096_576


def test_it_fits_a_small_model_on_a_big_gpu():
    result = fit.fit(LLAMA_8B, Q4, RTX_4090, FitOptions(ctx=8192))
    assert result.verdict == Verdict.FITS_GPU
    assert result.gpu_layers == 32
    assert result.headroom_bytes > 0
    assert result.usable_bytes == 24 * GIB - result.memory.overhead_bytes
    assert result.est_decode_tps is not None
    assert result.est_prefill_tps is not None


def test_it_offloads_some_layers_when_the_gpu_is_too_small():
    gpu_8g = DeviceSpec("8 GB card", "gpu", 8 * GIB, 448.0, fp16_tflops=40.0)
    big = dataclasses.replace(LLAMA_8B, n_params=70_553_706_496, n_layers=80, hidden_size=8192, intermediate_size=28672)
    result = fit.fit(big, Q4, gpu_8g, FitOptions(ctx=4096, system_ram_bytes=64 * GIB))
    assert result.verdict == Verdict.PARTIAL_OFFLOAD
    assert result.headroom_bytes < 0
    # Each layer: ~0.47 GiB of Q4_K_M weights + 40 MiB KV; about 7.3 GiB free after compute and overhead, less the
    # output matrix, which llama.cpp's -ngl N puts on the GPU first (its output layer and the last N - 1 layers):
    # 128,256 x 8,192 Q6_K values = 862 MB. So 13 layers, not the 14 that would fit without the output matrix.
    split = fit.weights_split(big, Q4)
    per_layer = split.layers_bytes / 80 + fit.kv_layer_bytes(big, 0, 4096)
    room = 8 * GIB - result.memory.compute_bytes - result.memory.overhead_bytes - split.output_bytes
    assert split.output_bytes > 128_256 * 8192 * 6.5625 / 8 * 0.99
    assert result.gpu_layers == int(room // per_layer) == 13
    assert 0 < result.gpu_layers < 80
    full_gpu = fit.fit(big, Q4, dataclasses.replace(gpu_8g, memory_bytes=80 * GIB), FitOptions(ctx=4096))
    assert result.est_decode_tps is not None and full_gpu.est_decode_tps is not None
    assert result.est_decode_tps < full_gpu.est_decode_tps / 3  # host RAM bandwidth dominates


def test_it_says_cpu_only_or_no_fit_when_the_gpu_cannot_help():
    tiny_gpu = DeviceSpec("tiny", "gpu", 512 * MIB, 100.0)
    assert fit.fit(LLAMA_8B, Q4, tiny_gpu, FitOptions(system_ram_bytes=32 * GIB)).verdict == Verdict.CPU_ONLY
    assert fit.fit(LLAMA_8B, Q4, tiny_gpu, FitOptions(system_ram_bytes=2 * GIB)).verdict == Verdict.DOES_NOT_FIT
    cpu = DeviceSpec("Ryzen", "cpu", 32 * GIB, 60.0)
    result = fit.fit(LLAMA_8B, Q4, cpu, FitOptions())
    assert result.verdict == Verdict.CPU_ONLY
    assert result.gpu_layers == 0
    assert result.est_prefill_tps is None
    assert fit.fit(LLAMA_8B, Q4, dataclasses.replace(cpu, memory_bytes=4 * GIB), FitOptions()).verdict == (
        Verdict.DOES_NOT_FIT
    )


def test_it_lends_only_a_share_of_unified_memory():
    assert fit.device_capacity_bytes(DeviceSpec("M2 16GB", "unified", 16 * GIB, 100.0)) == int(16 * GIB * 2 / 3)
    assert fit.device_capacity_bytes(DeviceSpec("M3 Max 64GB", "unified", 64 * GIB, 400.0)) == 48 * GIB
    # 8B Q4_K_M at 32k context (about 9.5 GiB) fits 16 GiB of RAM but not the 10.7 GiB the GPU may wire.
    opts = FitOptions(ctx=32768, flash_attention=False)
    mem = fit.memory_breakdown(LLAMA_8B, Q4, opts, device_kind="unified")
    mac = DeviceSpec("M2 16GB", "unified", 16 * GIB, 100.0)
    assert mem.total_bytes > fit.device_capacity_bytes(mac)
    assert fit.fit(LLAMA_8B, Q4, mac, opts).verdict != Verdict.FITS_GPU
    assert fit.fit(LLAMA_8B, Q4, dataclasses.replace(mac, memory_bytes=24 * GIB), opts).verdict == Verdict.FITS_GPU


def test_it_pools_several_identical_gpus():
    big = dataclasses.replace(LLAMA_8B, n_params=70_553_706_496, n_layers=80, hidden_size=8192, intermediate_size=28672)
    one = fit.fit(big, Q4, RTX_4090, FitOptions(ctx=4096))
    two = fit.fit(big, Q4, dataclasses.replace(RTX_4090, count=2), FitOptions(ctx=4096))
    assert one.verdict == Verdict.PARTIAL_OFFLOAD
    assert two.verdict == Verdict.FITS_GPU
    # Each GPU keeps its own context and compute buffer.
    single = fit.memory_breakdown(big, Q4, FitOptions(ctx=4096))
    assert two.memory.total_bytes == single.total_bytes + single.compute_bytes + single.overhead_bytes
    assert two.usable_bytes == 48 * GIB - 2 * single.overhead_bytes


# --- properties -----------------------------------------------------------------------------------------------

shapes = st.builds(
    lambda layers, kv_heads, head_dim, window, period, vocab: ModelShape(
        n_params=layers * 50_000_000 + vocab * 1024,
        n_layers=layers,
        hidden_size=1024,
        n_heads=16,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        intermediate_size=4096,
        sliding_window=window,
        swa_layers=fit.swa_layers_every(layers, period) if window else frozenset(),
    ),
    st.integers(1, 40),
    st.sampled_from([1, 2, 4, 8]),
    st.sampled_from([64, 128, 256]),
    st.one_of(st.none(), st.integers(64, 8192)),
    st.integers(1, 6),
    st.integers(1000, 300_000),
)
options = st.builds(
    FitOptions,
    ctx=st.integers(1, 200_000),
    kv_type=st.sampled_from(fit.KV_TYPES),
    users=st.integers(1, 16),
    flash_attention=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(shapes, options, st.integers(1, 50_000), st.integers(0, 8))
def test_it_never_needs_less_memory_for_more_context_or_users(shape, opts, more_ctx, more_users):
    base = fit.memory_breakdown(shape, Q4, opts)
    bigger = fit.memory_breakdown(shape, Q4, dataclasses.replace(opts, ctx=opts.ctx + more_ctx))
    busier = fit.memory_breakdown(shape, Q4, dataclasses.replace(opts, users=opts.users + more_users))
    assert bigger.total_bytes >= base.total_bytes
    assert bigger.kv_cache_bytes >= base.kv_cache_bytes
    assert busier.total_bytes >= base.total_bytes


@settings(max_examples=40, deadline=None)
@given(shapes, options)
def test_it_never_needs_less_memory_for_more_bits(shape, opts):
    # The K-quant ladder, and any explicit bits per weight. (Across families the order can flip between near
    # neighbours: IQ4_XS keeps its embeddings at 4.25 bits where Q3_K_L keeps them at 3.44.)
    totals = [fit.memory_breakdown(shape, QuantSpec(name), opts).total_bytes for name in LADDER]
    assert totals == sorted(totals, reverse=True)
    bits = [fit.weights_bytes(shape, QuantSpec("custom", bits_per_weight=b))[0] for b in (16.0, 8.5, 5.0, 4.0, 2.5)]
    assert bits == sorted(bits, reverse=True)
    kv = [fit.kv_cache_bytes(shape, opts.ctx, t) for t in ("f32", "f16", "q8_0", "q4_0")]
    assert kv == sorted(kv, reverse=True)


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(1, 16), st.integers(0, 100_000))
def test_it_holds_swa_kv_constant_beyond_the_window(shape, users, beyond):
    if not shape.sliding_window:
        return
    window_cells = shape.sliding_window + 512
    at = fit.kv_cache_bytes(shape, window_cells, users=users)
    later = fit.kv_cache_bytes(shape, window_cells + beyond, users=users)
    swa = [il for il in range(shape.n_layers) if il in shape.swa_layers]
    for il in swa:
        assert fit.kv_layer_bytes(shape, il, window_cells, users=users) == fit.kv_layer_bytes(
            shape, il, window_cells + beyond, users=users
        )
    assert later >= at


@settings(max_examples=60, deadline=None)
@given(shapes, st.integers(1, 200_000), st.integers(1, 16), st.sampled_from(["f32", "f16", "q8_0", "q4_0"]))
def test_it_totals_the_kv_cache_as_the_sum_of_its_layers(shape, ctx, users, kv_type):
    by_layer = sum(fit.kv_layer_bytes(shape, il, ctx, kv_type, users) for il in range(shape.n_layers))
    assert fit.kv_cache_bytes(shape, ctx, kv_type, users) == by_layer


# --- one basis for the verdict (issue 10, item 6) -----------------------------------------------------------------
# Llama 3.1 8B Q4_K_M with an exact file size, 4,096 tokens, f16 KV, one user, flash attention, worked out by hand:
Q4_FILE = QuantSpec("Q4_K_M", file_bytes=4_920_733_696)
WEIGHTS = 4_920_733_696
KV_4K = 32 * 2 * 8 * 128 * 4096 * 2  # layers x (K, V) x KV heads x head dim x cells x f16 bytes = 536,870,912
COMPUTE = 512 * (128_256 + 2 * 4096) * 4  # ubatch x (vocab + 2 x hidden) x f32 = 279,445,504
OVERHEAD = 400 * MIB + 128_256 * 4  # CUDA context estimate + output buffer (vocab x f32) = 419,943,424
# The token embeddings stay in host memory with every layer on the GPU (llama.cpp's input layer is always on the CPU;
# the H200 fixture's CPU_Mapped buffer is exactly Llama 3.1 8B Q4_K_M's 295,501,824-byte token_embd). From a file size
# the engine scales its Q4_K_M mix to the file: token_embd 128,256 x 4,096 x 4.5 / 8 = 295,501,824 bytes, in a mix that
# totals 4.58 GiB = 4,917,737,553.92 bytes at this shape (llama.cpp's quantize table), scaled by 4,920,733,696 /
# 4,917,737,553.92: 295,681,859.12, so 295,681,859 bytes.
EMBED = 295_681_859
GPU_NEED = WEIGHTS - EMBED + KV_4K + COMPUTE  # 5,441,368,253


def test_it_measures_needs_usable_and_headroom_on_one_basis():
    device = DeviceSpec("24 GiB", "gpu", 24 * GIB, 1000.0)
    result = fit.fit(LLAMA_8B, Q4_FILE, device, FitOptions(ctx=4096))
    # Weights less the host-side token embeddings + KV + compute: the overhead is not "needed" twice.
    assert result.needed_bytes == GPU_NEED == 5_441_368_253
    assert result.usable_bytes == 25_769_803_776 - 419_943_424
    assert result.headroom_bytes == 25_769_803_776 - 419_943_424 - 5_441_368_253
    assert result.memory.total_bytes == WEIGHTS + KV_4K + COMPUTE + OVERHEAD == 6_156_993_536
    assert result.memory.host_weights_bytes == EMBED
    assert result.memory.gpu_weights_bytes == WEIGHTS - EMBED


@pytest.mark.parametrize(
    ("count", "memory_bytes", "headroom", "verdict"),
    [
        # One GPU: it fits exactly when capacity >= weights - token embeddings + KV + compute + overhead =
        # 4,920,733,696 - 295,681,859 + 536,870,912 + 279,445,504 + 419,943,424 = 5,861,311,677 bytes.
        (1, 5_861_311_677, 0, Verdict.FITS_GPU),
        (1, 5_861_311_676, -1, Verdict.PARTIAL_OFFLOAD),
        # Two GPUs: compute and overhead once per GPU on both sides: 2 x M >= 4,920,733,696 - 295,681,859
        # + 536,870,912 + 2 x 279,445,504 + 2 x 419,943,424 = 6,560,700,605, so M = 3,280,350,303 fits with 1 byte
        # to spare and one byte less each is 1 byte short.
        (2, 3_280_350_303, 1, Verdict.FITS_GPU),
        (2, 3_280_350_302, -1, Verdict.PARTIAL_OFFLOAD),
    ],
)
def test_it_flips_the_verdict_at_the_byte_where_headroom_turns_negative(count, memory_bytes, headroom, verdict):
    device = DeviceSpec("boundary", "gpu", memory_bytes, 1000.0, count=count)
    result = fit.fit(LLAMA_8B, Q4_FILE, device, FitOptions(ctx=4096, system_ram_bytes=64 * GIB))
    assert result.headroom_bytes == headroom
    assert result.headroom_bytes == result.usable_bytes - result.needed_bytes
    assert result.usable_bytes == count * memory_bytes - count * OVERHEAD
    assert result.needed_bytes == WEIGHTS - EMBED + KV_4K + count * COMPUTE
    assert result.verdict == verdict


def test_it_gives_the_per_user_speed_of_the_batched_plan():
    from catalog import speed

    one = fit.fit(LLAMA_8B, Q4, RTX_4090, FitOptions(ctx=4096, users=1))
    eight = fit.fit(LLAMA_8B, Q4, RTX_4090, FitOptions(ctx=4096, users=8))
    plan = speed.serving_plan(LLAMA_8B, Q4, RTX_4090, FitOptions(ctx=4096, users=8))
    assert eight.est_decode_tps == pytest.approx(plan.per_user_decode_tps)
    assert one.est_decode_tps is not None and eight.est_decode_tps is not None
    assert eight.est_decode_tps < one.est_decode_tps


def test_it_clamps_a_context_above_the_models_maximum():
    assert fit.clamp_ctx(32768, 2048) == (2048, True)
    assert fit.clamp_ctx(2048, 2048) == (2048, False)
    assert fit.clamp_ctx(1000, 2048) == (1000, False)
    assert fit.clamp_ctx(5000, None) == (5000, False)


def test_it_finds_the_largest_context_that_fits():
    # 8 GiB card, Llama 8B Q4_K_M (exact file), f16 KV: 131,072 bytes of KV per token (32 x 2 x 1024 x 2). Room for
    # KV = 8,589,934,592 - (4,920,733,696 - 295,681,859 host-side token embeddings) - 279,445,504 - 419,943,424 =
    # 3,265,493,827 bytes = 24,913.7 tokens, cut to whole 256-cell pages: 97 x 256 = 24,832 tokens.
    card = DeviceSpec("8 GiB", "gpu", 8 * GIB, 272.0)
    assert fit.max_context(LLAMA_8B, Q4_FILE, card, FitOptions(), limit=131_072) == 24_832
    at = fit.fit(LLAMA_8B, Q4_FILE, card, FitOptions(ctx=24_832))
    beyond = fit.fit(LLAMA_8B, Q4_FILE, card, FitOptions(ctx=24_832 + 1))
    assert (at.verdict, beyond.verdict) == (Verdict.FITS_GPU, Verdict.PARTIAL_OFFLOAD)
    # The model's own maximum caps it; a device too small for 256 tokens gets None.
    assert fit.max_context(LLAMA_8B, Q4_FILE, card, FitOptions(), limit=8192) == 8192
    assert fit.max_context(LLAMA_8B, Q4_FILE, DeviceSpec("4 GiB", "gpu", 4 * GIB, 200.0), FitOptions(), 8192) is None
    # q8_0 KV (34 bytes per 32 values) holds 3,265,493,827 / (32 x 2 x 1024 x 34 / 32) = 46,896.6 tokens: 183 pages.
    assert fit.max_context(LLAMA_8B, Q4_FILE, card, FitOptions(kv_type="q8_0"), limit=131_072) == 183 * 256


# --- --n-cpu-moe counts only the MoE layers (Llama 4 Maverick, DeepSeek's leading dense layers) -------------------
# A 10-layer MoE at 16 bits (an unknown quant name: 16 bits everywhere), worked out by hand:
#   token_embd and output 1,000 x 1,000 x 2 = 2,000,000 bytes each; layers (1,000,000,000 - 2,000,000) x 2 =
#   1,996,000,000 bytes; routed experts W x (1 - a) / (1 - k/E) = 1,996,000,000 x 0.6 / 0.75 = 1,596,800,000 bytes.
#   KV 10 layers x 2 x 1,000 x 2 bytes x 4,096 cells = 163,840,000; compute (flash) 512 x 3,000 x 4 = 6,144,000.
#   GPU need = 2,004,000,000 - 2,000,000 (token_embd on the host) + 163,840,000 + 6,144,000 = 2,167,984,000.
#   Overhead 400 MiB + 1,000 x 4 = 419,434,400. A GPU of 2,187,418,400 bytes: usable 1,767,984,000, 400,000,000 short.
MOE_10 = ModelShape(
    n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125, vocab_size=1000,
    n_active_params=400_000_000, n_experts=8, n_experts_used=2,
)  # fmt: skip
F16_ANY = QuantSpec("NOT_A_QUANT")
MOE_GPU = DeviceSpec("MoE test GPU", "gpu", 2_187_418_400, 1000.0)
MOE_OPTIONS = FitOptions(ctx=4096, system_ram_bytes=64 * GIB)


@pytest.mark.parametrize(
    ("moe_layers", "n_cpu_moe", "host_experts"),
    [
        # Every layer MoE: 159,680,000 of experts each; ceil(400,000,000 / 159,680,000) = 3 layers: --n-cpu-moe 3.
        (None, 3, 3 * 159_680_000),
        # Maverick's pattern (interleave_moe_layer_step 2: layers 1, 3, 5, 7, 9): 319,360,000 each; 2 MoE layers
        # cover the shortfall, and the first 4 layers hold two of them (1 and 3): --n-cpu-moe 4. The old count,
        # --n-cpu-moe 3, would move only layer 1's 319,360,000 bytes: 80,640,000 short on the GPU.
        (frozenset({1, 3, 5, 7, 9}), 4, 2 * 319_360_000),
        # Three leading dense layers (DeepSeek's first_k_dense_replace 3): 7 MoE layers of 228,114,285.7; 2 cover it,
        # layers 3 and 4: --n-cpu-moe 5.
        (frozenset(range(3, 10)), 5, 2 * 1_596_800_000 / 7),
    ],
)
def test_n_cpu_moe_moves_only_the_experts_of_the_moe_layers(moe_layers, n_cpu_moe, host_experts):
    from catalog import howto

    shape = dataclasses.replace(MOE_10, moe_layers=moe_layers)
    result = fit.fit(shape, F16_ANY, MOE_GPU, MOE_OPTIONS)
    assert (result.needed_bytes, result.usable_bytes) == (2_167_984_000, 1_767_984_000)
    assert (result.verdict, result.gpu_layers, result.cpu_moe_layers) == (Verdict.PARTIAL_OFFLOAD, 10, n_cpu_moe)
    assert fit.host_expert_bytes(shape, F16_ANY, n_cpu_moe) == pytest.approx(host_experts)
    assert fit.host_expert_bytes(shape, F16_ANY, n_cpu_moe - 1) < 400_000_000 <= host_experts
    assert howto.llama_cpp_flags(ctx=4096, kv_type="f16", result=result) == [
        "-c", "4096", "-ngl", "99", "--n-cpu-moe", str(n_cpu_moe),
    ]  # fmt: skip


def test_the_moe_layers_of_a_shape():
    assert fit.moe_layer_indices(MOE_10) == tuple(range(10))
    assert fit.moe_layer_indices(dataclasses.replace(MOE_10, moe_layers=[9, 1, 3, 42])) == (1, 3, 9)
    assert fit.moe_layer_indices(LLAMA_8B) == ()
    assert fit.host_expert_bytes(LLAMA_8B, Q4, 32) == 0.0
    # All of them in RAM: the whole 1,596,800,000 bytes, whatever the pattern.
    maverick_like = dataclasses.replace(MOE_10, moe_layers=frozenset({1, 3, 5, 7, 9}))
    assert fit.host_expert_bytes(maverick_like, F16_ANY, 10) == pytest.approx(1_596_800_000)


def test_a_tied_model_offloads_its_output_copy_first():
    # Tied 10-layer model at 16 bits (unknown quant name), by hand: token_embd 100,000 x 1,000 x 2 = 200,000,000 bytes,
    # on the host as the input layer and again on the GPU as the output layer's copy (llama.cpp TENSOR_DUPLICATED);
    # layers (1,000,000,000 - 100,000,000) x 2 / 10 = 180,000,000 each + KV 2 x 8 x 125 x 4,096 x 2 = 16,384,000.
    # 1 GiB GPU: compute 512 x (100,000 + 2 x 1,000) x 4 = 208,896,000, overhead 400 MiB + 400,000 = 419,830,400,
    # room 1,073,741,824 - 208,896,000 - 419,830,400 - 200,000,000 = 245,015,424: one layer of 196,384,000 (two
    # without the copy), so -ngl 2 (the output layer and the last layer).
    from catalog import howto

    tied = ModelShape(
        n_params=1_000_000_000, n_layers=10, hidden_size=1000, n_heads=8, n_kv_heads=8, head_dim=125,
        vocab_size=100_000, tied_embeddings=True,
    )  # fmt: skip
    result = fit.fit(tied, F16_ANY, DeviceSpec("1 GiB", "gpu", GIB, 100.0), MOE_OPTIONS)
    assert (result.verdict, result.gpu_layers) == (Verdict.PARTIAL_OFFLOAD, 1)
    assert howto.llama_cpp_flags(ctx=4096, kv_type="f16", result=result)[2:4] == ["-ngl", "2"]
    mem = result.memory
    assert (mem.host_weights_bytes, mem.output_copy_bytes, mem.gpu_weights_bytes) == (
        200_000_000,
        200_000_000,
        2_000_000_000,
    )
    # Fitting entirely, the GPU needs the whole file (the copy stands in for the host's token_embd): 2,000,000,000
    # + KV 163,840,000 + compute 208,896,000.
    big = fit.fit(tied, F16_ANY, DeviceSpec("80 GiB", "gpu", 80 * GIB, 100.0), MOE_OPTIONS)
    assert (big.verdict, big.needed_bytes) == (Verdict.FITS_GPU, 2_372_736_000)


def test_it_sizes_an_unstated_feed_forward_at_four_times_the_hidden_size():
    # GPT-2's convention (n_inner None: 4 x n_embd), which the compute buffer's attention phase assumes when a shape
    # does not state intermediate_size. Without flash attention at 4,096 tokens the attention phase sets the buffer
    # (the 5x width below gives another figure), so the width the engine assumes shows.
    options = FitOptions(ctx=4096, flash_attention=False)
    unstated = dataclasses.replace(LLAMA_8B, intermediate_size=0)
    four = dataclasses.replace(LLAMA_8B, intermediate_size=4 * LLAMA_8B.hidden_size)
    five = dataclasses.replace(LLAMA_8B, intermediate_size=5 * LLAMA_8B.hidden_size)
    assert fit.compute_bytes(unstated, options) == fit.compute_bytes(four, options)
    # One more hidden width per token of the 512-token ubatch, in F32.
    assert fit.compute_bytes(five, options) - fit.compute_bytes(four, options) == 512 * LLAMA_8B.hidden_size * 4
