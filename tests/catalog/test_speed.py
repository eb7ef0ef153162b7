from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import fit, speed
from catalog.fit import DeviceSpec, FitOptions, QuantSpec, Verdict
from catalog.speed import PRIOR_CPU, PRIOR_GPU, SpeedModel
from tests.catalog.test_fit import DEEPSEEK_V2_LITE, LLAMA_8B

GIB = 1024**3
# The shapes the fit tests use, each cited there.
Q4 = QuantSpec("Q4_K_M")
# Test devices: figures chosen for the arithmetic, not claims about a product.
GPU = DeviceSpec("Test GPU", "gpu", 24 * GIB, 1000.0, vendor="NVIDIA", matrix_tflops=100.0, clock_mhz=2000)
MAC = DeviceSpec("Apple Test", "unified", 64 * GIB, 400.0, vendor="Apple", matrix_tflops=20.0)
CPU = DeviceSpec("Test CPU", "cpu", 64 * GIB, 100.0, vendor="AMD", matrix_tflops=1.0)
SIMPLE = SpeedModel(
    classes=(
        (
            "cuda",
            dataclasses.replace(
                PRIOR_GPU,
                overhead_s=0.001,
                per_layer_s=0.0001,
                quant_read_factor=2.0,
                float_read_factor=1.0,
                kv_read_factor=4.0,
                per_extra_gpu_s=0.002,
                prefill_token_s=1e-5,
                prefill_flop_factor=2.0,
                prefill_quant_flop_factor=2.0,
            ),
        ),
        ("cpu", PRIOR_CPU),
    )
)


def test_it_adds_up_a_decode_step_by_hand():
    options = FitOptions(ctx=1024)
    result = fit.fit(LLAMA_8B, Q4, GPU, options, SIMPLE)
    assert result.verdict == Verdict.FITS_GPU
    split = fit.weights_split(LLAMA_8B, Q4)
    weights = split.layers_bytes + split.output_bytes  # one embedding row is looked up, not read whole
    kv = 32 * 2 * 8 * 128 * 1024 * 2  # layers x (K, V) x KV heads x head dim x tokens x f16 = 134,217,728 bytes
    seconds = 0.001 + 0.0001 * 32 * (2000 / 2000) + 2.0 * weights / 1000e9 + 4.0 * kv / 1000e9
    assert result.est_decode_tps == pytest.approx(1 / seconds)


def test_it_times_layers_in_clock_cycles():
    slow_clock = dataclasses.replace(GPU, clock_mhz=1000)
    fast = fit.fit(LLAMA_8B, Q4, GPU, FitOptions(ctx=1024), SIMPLE).est_decode_tps
    slow = fit.fit(LLAMA_8B, Q4, slow_clock, FitOptions(ctx=1024), SIMPLE).est_decode_tps
    # Half the clock doubles the 32 x 0.1 ms per-layer part: 3.2 ms more per token.
    assert 1 / slow - 1 / fast == pytest.approx(0.0032)


def test_it_adds_a_hand_over_per_extra_gpu():
    two = dataclasses.replace(GPU, count=2)
    one_tps = fit.fit(LLAMA_8B, Q4, GPU, FitOptions(ctx=1024), SIMPLE).est_decode_tps
    two_tps = fit.fit(LLAMA_8B, Q4, two, FitOptions(ctx=1024), SIMPLE).est_decode_tps
    assert 1 / two_tps - 1 / one_tps == pytest.approx(0.002)


def test_it_estimates_prompt_processing_from_flops_by_hand():
    tps = speed.prefill_tps(LLAMA_8B, GPU, SIMPLE, Q4, n_prompt=512)
    attention = 4 * 32 * 32 * 128 * 512 * (0 + 256)  # layers x heads x head dim x tokens x (depth + tokens / 2)
    flops = 2 * LLAMA_8B.n_params * 512 + attention
    # The one 512-token ubatch streams every layer's weights and the output matrix once, at 1000 GB/s.
    split = fit.weights_split(LLAMA_8B, Q4)
    seconds = 512 * 1e-5 + flops * 2.0 / 100e12 + (split.layers_bytes + split.output_bytes) / 1000e9
    assert tps == pytest.approx(512 / seconds)
    # Deeper in the context, each prompt token attends to more: slower.
    assert speed.prefill_tps(LLAMA_8B, GPU, SIMPLE, Q4, n_prompt=512, depth=8192) < tps


def test_it_runs_quantized_prompts_on_the_int8_rate_where_known():
    with_int8 = dataclasses.replace(GPU, int8_tops=400.0)
    assert speed.prefill_tps(LLAMA_8B, with_int8, SIMPLE, Q4) > 2 * speed.prefill_tps(LLAMA_8B, GPU, SIMPLE, Q4)
    # F16 weights stay on the FP16 matrix rate.
    f16 = QuantSpec("F16")
    assert speed.prefill_tps(LLAMA_8B, with_int8, SIMPLE, f16) == speed.prefill_tps(LLAMA_8B, GPU, SIMPLE, f16)


def test_it_estimates_every_device_kind():
    for device in (GPU, MAC, CPU):
        result = fit.fit(LLAMA_8B, Q4, device, FitOptions(ctx=4096))
        assert result.est_decode_tps and result.est_prefill_tps, device.name


def test_it_picks_the_runtime_backend_of_each_device():
    assert speed.backend_of(GPU) == "cuda"
    assert speed.backend_of(MAC) == "metal"
    assert speed.backend_of(CPU) == "cpu"
    assert speed.backend_of(DeviceSpec("Radeon RX 7900 XTX", "gpu", 24 * GIB, 960.0, vendor="AMD")) == "rocm"
    assert speed.backend_of(DeviceSpec("Arc A770", "gpu", 16 * GIB, 560.0, vendor="Intel")) == "sycl"


def test_it_reads_only_active_experts_of_a_moe():
    dense = dataclasses.replace(DEEPSEEK_V2_LITE, n_active_params=None, n_experts=None, n_experts_used=None)
    assert speed.roofline_decode_tps(DEEPSEEK_V2_LITE, Q4, 1000.0) > 4 * speed.roofline_decode_tps(dense, Q4, 1000.0)


def test_it_touches_more_experts_as_a_moe_batch_grows():
    one = speed.serving_plan(DEEPSEEK_V2_LITE, Q4, GPU, FitOptions(ctx=512, users=1))
    many = speed.serving_plan(DEEPSEEK_V2_LITE, Q4, GPU, FitOptions(ctx=512, users=32))
    kv = fit.kv_cache_bytes(DEEPSEEK_V2_LITE, 512)
    assert many.step_read_bytes - 32 * kv > 3 * (one.step_read_bytes - kv)


def test_it_plans_serving_many_users_from_one_step():
    one = speed.serving_plan(LLAMA_8B, Q4, GPU, FitOptions(ctx=4096, users=1), SIMPLE)
    eight = speed.serving_plan(LLAMA_8B, Q4, GPU, FitOptions(ctx=4096, users=8), SIMPLE)
    assert eight.memory.kv_cache_bytes == 8 * one.memory.kv_cache_bytes
    assert one.aggregate_decode_tps == pytest.approx(one.per_user_decode_tps)
    split = fit.weights_split(LLAMA_8B, Q4)
    weights = split.layers_bytes + split.output_bytes
    kv_one = 32 * 2 * 8 * 128 * 4096 * 2
    assert eight.step_read_bytes == pytest.approx(weights + 8 * kv_one, rel=1e-9)
    # Weights once for all eight, each user's KV at the KV factor.
    step = 0.001 + 0.0032 + 2.0 * weights / 1000e9 + 4.0 * 8 * kv_one / 1000e9
    assert eight.per_user_decode_tps == pytest.approx(1 / step)
    assert eight.aggregate_decode_tps == pytest.approx(8 / step)
    assert eight.bound == "memory"
    many = speed.serving_plan(LLAMA_8B, Q4, GPU, FitOptions(ctx=512, users=256), SIMPLE)
    assert many.bound == "compute"


def test_the_prompt_ceiling_is_the_stated_peak():
    with_int8 = dataclasses.replace(GPU, int8_tops=400.0)
    # 400 TOPS over 2 x params per token: no fixed cost, every operation at the peak.
    assert speed.roofline_prefill_tps(LLAMA_8B, Q4, with_int8) == pytest.approx(400e12 / (2 * LLAMA_8B.n_params))
    assert speed.roofline_prefill_tps(LLAMA_8B, Q4, dataclasses.replace(GPU, matrix_tflops=None)) is None


# --- properties -----------------------------------------------------------------------------------------------

contexts = st.integers(1, 131_072)
bandwidths = st.floats(10.0, 8000.0)


@settings(max_examples=60, deadline=None)
@given(bandwidth=bandwidths, factor=st.floats(1.0, 4.0), ctx=contexts)
def test_more_bandwidth_is_never_slower(bandwidth, factor, ctx):
    slow = dataclasses.replace(GPU, bandwidth_gbps=bandwidth, memory_bytes=80 * GIB)
    fast = dataclasses.replace(slow, bandwidth_gbps=bandwidth * factor)
    options = FitOptions(ctx=ctx)
    assert fit.fit(LLAMA_8B, Q4, fast, options).est_decode_tps >= fit.fit(LLAMA_8B, Q4, slow, options).est_decode_tps


@settings(max_examples=60, deadline=None)
@given(ctx=contexts, more=st.integers(0, 65_536), device=st.sampled_from([GPU, MAC, CPU]))
def test_a_deeper_context_is_never_faster(ctx, more, device):
    device = dataclasses.replace(device, memory_bytes=256 * GIB)
    shallow = fit.fit(LLAMA_8B, Q4, device, FitOptions(ctx=ctx)).est_decode_tps
    deep = fit.fit(LLAMA_8B, Q4, device, FitOptions(ctx=ctx + more)).est_decode_tps
    assert deep <= shallow
    pp_shallow = speed.prefill_tps(LLAMA_8B, device, SpeedModel(), Q4, depth=ctx)
    pp_deep = speed.prefill_tps(LLAMA_8B, device, SpeedModel(), Q4, depth=ctx + more)
    assert pp_deep <= pp_shallow


@settings(max_examples=60, deadline=None)
@given(users=st.integers(1, 64), more=st.integers(1, 64), ctx=st.integers(256, 8192))
def test_more_users_are_never_faster_per_user(users, more, ctx):
    device = dataclasses.replace(GPU, memory_bytes=512 * GIB)
    few = speed.serving_plan(LLAMA_8B, Q4, device, FitOptions(ctx=ctx, users=users))
    many = speed.serving_plan(LLAMA_8B, Q4, device, FitOptions(ctx=ctx, users=users + more))
    assert many.per_user_decode_tps <= few.per_user_decode_tps
    assert many.aggregate_decode_tps >= few.aggregate_decode_tps * 0.999 or many.bound == "compute"


def test_a_hybrids_recurrent_layers_read_their_state_not_a_growing_cache():
    # Half the layers keep a KV cache, half a fixed 1 MiB state (262,144 f32 values): at 32K tokens the hybrid reads
    # half the dense model's KV, plus 2 x 1 MiB per recurrent layer (the state is read and written each step).
    layers = frozenset(range(0, 32, 2))
    hybrid = dataclasses.replace(
        LLAMA_8B,
        attention_layers=layers,
        recurrent_layers=frozenset(range(1, 32, 2)),
        recurrent_state_values=262_144,
    )
    dense_kv = speed._kv_read(LLAMA_8B, 32768, "f16")
    assert dense_kv == 32 * 2 * 8 * 128 * 2 * 32768
    assert speed._kv_read(hybrid, 32768, "f16") == dense_kv / 2 + 16 * 2 * 262_144 * 4
    # Flat in context on the recurrent layers: doubling the context adds only the attention layers' KV.
    grown = speed._kv_read(hybrid, 65536, "f16") - speed._kv_read(hybrid, 32768, "f16")
    assert grown == dense_kv / 2


def test_it_never_decodes_faster_without_flash_attention():
    # Llama 3 8B groups 32 query heads on 8 KV heads: without flash attention the KV cache is read 4 times. At 8192
    # tokens that is 32 layers x 2 x 8 x 128 x 2 bytes x 8192 = 1,073,741,824 bytes read once, 4,294,967,296 read 4
    # times: 3 x 1.0737e9 / 1000 GB/s x the KV read factor 4.0 = 12.88 ms more per token.
    on = fit.fit(LLAMA_8B, Q4, GPU, FitOptions(ctx=8192), SIMPLE)
    off = fit.fit(LLAMA_8B, Q4, GPU, FitOptions(ctx=8192, flash_attention=False), SIMPLE)
    assert off.verdict == on.verdict == Verdict.FITS_GPU
    assert 1 / off.est_decode_tps - 1 / on.est_decode_tps == pytest.approx(3 * 1_073_741_824 / 1000e9 * 4.0)


def test_it_streams_the_weights_once_per_ubatch_and_every_selected_expert_of_a_moe():
    # 1024 prompt tokens are two 512-token ubatches: the dense weights (layers and output matrix) stream twice.
    split = fit.weights_split(LLAMA_8B, Q4)
    dense = speed.prefill_terms(LLAMA_8B, Q4, GPU, n_prompt=1024)
    assert dense.weights_read_s == pytest.approx(2 * (split.layers_bytes + split.output_bytes) / 1000e9)
    # A MoE decodes one token from its active share but a 512-token ubatch touches nearly every expert: DeepSeek-V2
    # Lite routes each token to 6 of 64 experts, and 1 - (58 / 64)^512 of them is 1 to 21 decimals, so a prompt
    # streams (almost exactly) all the layer weights, against the active share's bytes for one decode step.
    moe_split = fit.weights_split(DEEPSEEK_V2_LITE, Q4)
    moe = speed.prefill_terms(DEEPSEEK_V2_LITE, Q4, GPU, n_prompt=512)
    assert moe.weights_read_s == pytest.approx((moe_split.layers_bytes + moe_split.output_bytes) / 1000e9, rel=1e-6)
    # The term makes a slower memory slower at the same matrix rate.
    slow = dataclasses.replace(GPU, bandwidth_gbps=250.0)
    assert speed.prefill_tps(DEEPSEEK_V2_LITE, slow, SIMPLE, Q4) < speed.prefill_tps(DEEPSEEK_V2_LITE, GPU, SIMPLE, Q4)


def test_it_works_out_a_cpu_rows_prompt_rate_by_hand(db):
    """The catalog's i5-4278U row (geerlingguy/ai-benchmarks#53 ran Llama 3.2 3B Q4_K_M on it: pp512 17.70 t/s) under
    the CPU starting point, worked out by hand. Its matrix rate is 2 cores x 32 FP32 FLOP per cycle (two 256-bit FMA
    ports) x 3.1 GHz max turbo = 198.4 GFLOP/s (Intel ARK; Haswell's two FMA units; both cores are what llama.cpp's
    default thread count uses, the run's threads 2); llama.cpp's int8 dot products of the k-quants (vpmaddubsw +
    vpmaddwd) run on Haswell's one vector-integer-multiply port, 16 products = 32 int8 ops per cycle, the same
    198.4 G/s, so the quantized rate is that figure either way."""
    from catalog.management.commands.load_seed import SEED_DIR, hardware_rows

    row = next(
        r for r in hardware_rows(SEED_DIR / "hardware.toml") if r["slug"] == "intel-core-i5-4278u-8gb-ddr3l-1600"
    )
    device = DeviceSpec(
        row["name"],
        "cpu",
        row["memory_bytes"],
        row["bandwidth_gbps"],
        matrix_tflops=row["matrix_tflops"],
        int8_tops=row["int8_tops"],
        fp32_tflops=row["fp32_tflops"],
    )
    # Llama 3.2 3B (meta-llama/Llama-3.2-3B-Instruct config.json): 28 layers, hidden 3072, 24 heads of 128, 8 KV
    # heads, FFN 8192, vocab 128256, tied embeddings: 3,212,749,824 parameters. Its Q4_K_M file: 2,019,377,696 bytes
    # (the size the download printed).
    llama_3b = fit.ModelShape(
        n_params=3_212_749_824,
        n_layers=28,
        hidden_size=3072,
        n_heads=24,
        n_kv_heads=8,
        head_dim=128,
        vocab_size=128256,
        intermediate_size=8192,
        tied_embeddings=True,
    )
    quant = QuantSpec("Q4_K_M", file_bytes=2_019_377_696)
    flops = 2 * 3_212_749_824 * 512 + 4 * 28 * 24 * 128 * 512 * 256  # 3,334,952,976,384
    # PRIOR_CPU: 0.1 us per token, 35 % of the matrix rate; the one ubatch streams the whole file (the tied output
    # matrix is the embedding) once at the row's 25.6 GB/s (2 channels x DDR3L-1600).
    seconds = 512 * 1e-7 + flops / (0.35 * 198.4e9) + 2_019_377_696 / 25.6e9  # 48.1053 s
    tps = speed.prefill_tps(llama_3b, device, speed.DEFAULT_SPEED, quant)
    assert tps == pytest.approx(512 / seconds, rel=1e-6)
    assert tps == pytest.approx(10.643, abs=0.001)  # 0.60x the 17.70 t/s the issue measured
