"""A MoE that does not fit the GPU keeps every layer there and moves routed experts to RAM (llama.cpp --n-cpu-moe)."""

from __future__ import annotations

import dataclasses

import pytest

from catalog import fit, howto, speed
from catalog.fit import DeviceSpec, FitOptions, ModelShape, QuantSpec, Verdict

GIB = 1024**3
# Qwen3-30B-A3B's shape (config.json: 48 layers, hidden 2048, 32 heads / 4 KV heads of 128, 128 experts, 8 used,
# vocabulary 151,936; 30.5B parameters, 3.3B active) as the seed catalog has it.
QWEN3_30B_A3B = ModelShape(
    n_params=30_532_122_624,
    n_layers=48,
    hidden_size=2048,
    n_heads=32,
    n_kv_heads=4,
    head_dim=128,
    vocab_size=151_936,
    intermediate_size=6144,
    n_active_params=3_300_000_000,
    n_experts=128,
    n_experts_used=8,
)
# 17.0 GiB of weights: a file size, so the split is exact and the arithmetic below can be followed by hand.
QUANT = QuantSpec("Q4_K_M", file_bytes=17 * GIB)
GPU_8GB = DeviceSpec("Test 8 GB", "gpu", 8 * GIB, 272.0, vendor="NVIDIA", matrix_tflops=100.0, clock_mhz=2500)
OPTIONS = FitOptions(ctx=4096, system_ram_bytes=64 * GIB)


def test_it_counts_the_routed_experts_from_the_active_share():
    split = fit.weights_split(QWEN3_30B_A3B, QUANT)
    share = 3_300_000_000 / 30_532_122_624
    # W x a = dense + experts x 8/128 and W = dense + experts.
    assert fit.expert_bytes(QWEN3_30B_A3B, QUANT) == pytest.approx(split.layers_bytes * (1 - share) / (1 - 8 / 128))
    dense = dataclasses.replace(QWEN3_30B_A3B, n_active_params=None, n_experts=None, n_experts_used=None)
    assert fit.expert_bytes(dense, QUANT) == 0


def test_it_moves_just_enough_experts_to_ram():
    result = fit.fit(QWEN3_30B_A3B, QUANT, GPU_8GB, OPTIONS)
    assert result.verdict == Verdict.PARTIAL_OFFLOAD
    assert result.gpu_layers == 48  # every layer's attention and KV stay on the GPU
    per_layer = fit.expert_bytes(QWEN3_30B_A3B, QUANT) / 48
    short = result.needed_bytes - result.usable_bytes
    # The fewest layers whose experts cover the shortfall: N - 1 would not, N does.
    n = result.cpu_moe_layers
    assert (n - 1) * per_layer < short <= n * per_layer
    assert 0 < n < 48


def test_the_recipe_says_what_the_verdict_placed():
    result = fit.fit(QWEN3_30B_A3B, QUANT, GPU_8GB, OPTIONS)
    flags = howto.llama_cpp_flags(ctx=4096, kv_type="f16", result=result)
    assert flags == ["-c", "4096", "-ngl", "99", "--n-cpu-moe", str(result.cpu_moe_layers)]


def test_it_reads_only_the_selected_experts_from_ram():
    result = fit.fit(QWEN3_30B_A3B, QUANT, GPU_8GB, OPTIONS)
    place = fit.placement_of(result)
    terms = speed.decode_terms(QWEN3_30B_A3B, QUANT, GPU_8GB, OPTIONS, place, 1)
    experts = fit.expert_bytes(QWEN3_30B_A3B, QUANT)
    # One token selects 8 of 128 experts per layer: RAM serves 8/128 of the host layers' experts.
    host_bytes = experts * (8 / 128) * result.cpu_moe_layers / 48
    assert terms.host_s == pytest.approx(host_bytes / (OPTIONS.system_bandwidth_gbps * 1e9))
    # Offloading whole layers instead would read every weight of those layers from RAM: slower.
    by_layers = dataclasses.replace(place, gpu_layers=48 - result.cpu_moe_layers, cpu_moe_layers=0)
    slower = speed.step_seconds(QWEN3_30B_A3B, QUANT, GPU_8GB, OPTIONS, by_layers, 1, speed.DEFAULT_SPEED)
    faster = speed.step_seconds(QWEN3_30B_A3B, QUANT, GPU_8GB, OPTIONS, place, 1, speed.DEFAULT_SPEED)
    assert faster < slower
    assert result.est_decode_tps == pytest.approx(1 / faster)


def test_a_dense_model_still_offloads_whole_layers():
    dense = dataclasses.replace(QWEN3_30B_A3B, n_active_params=None, n_experts=None, n_experts_used=None)
    result = fit.fit(dense, QUANT, GPU_8GB, OPTIONS)
    assert result.verdict == Verdict.PARTIAL_OFFLOAD and result.cpu_moe_layers == 0
    assert 0 < result.gpu_layers < 48
    # llama.cpp's -ngl N holds the output layer and the last N - 1 repeating layers.
    assert howto.llama_cpp_flags(ctx=4096, kv_type="f16", result=result)[3] == str(result.gpu_layers + 1)
