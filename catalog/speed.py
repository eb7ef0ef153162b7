"""Speed estimates: how fast a model decodes and processes prompts on a device, given where `fit` placed it.

Pure and typed like catalog/fit.py (which owns memory and placement); no Django import. The formulas and their
sources are in docs/fit.md ("Speed").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from catalog.fit import (
    KV_TYPE_BLOCK,
    DeviceSpec,
    FitOptions,
    MemoryBreakdown,
    ModelShape,
    QuantSpec,
    Verdict,
    _check_kv_type,
    _check_positive,
    _Placement,
    _text_params,
    context_tokens,
    fit,
    weights_split,
)


@dataclass(frozen=True, slots=True)
class SpeedModel:
    """Efficiency factors of the speed estimates. Defaults are round figures, not yet calibrated: a later issue fits
    them to community llama-bench runs. Pass your own to `fit`, `serving_plan` to override."""

    decode_efficiency_gpu: float = 0.70  # share of peak bandwidth llama.cpp's decode reaches on a discrete GPU
    decode_efficiency_unified: float = 0.70
    decode_efficiency_cpu: float = 0.60
    per_token_overhead_s: float = 0.0005  # kernel launches, sampling, synchronisation per decode step
    prefill_efficiency: float = 0.35  # share of peak fp16 FLOPs reached by prompt processing
    basis: str = "default efficiency factors"  # what the factors rest on, for the pages


DEFAULT_SPEED = SpeedModel()


def _active_share(shape: ModelShape) -> float:
    if shape.n_active_params and shape.n_active_params < shape.n_params:
        return shape.n_active_params / _text_params(shape)
    return 1.0


def _read_per_token(shape: ModelShape, quant: QuantSpec) -> float:
    """Weight bytes one decode step reads: everything but the token embeddings (one row is looked up), scaled to
    the active share for a MoE (routed experts are read only when selected)."""
    split = weights_split(shape, quant)
    output = split.embed_bytes if shape.tied_embeddings else split.output_bytes
    return (split.layers_bytes + output) * _active_share(shape)


def _kv_read(shape: ModelShape, ctx: int, kv_type: str) -> float:
    """KV bytes one sequence's decode step reads at `ctx` tokens: every full-attention layer reads ctx tokens, a
    sliding-window layer at most its window (no padding: a lower bound on what llama.cpp touches)."""
    _check_kv_type(kv_type)
    block_bytes, block = KV_TYPE_BLOCK[kv_type]
    if shape.kv_lora_rank:
        per_token = (shape.kv_lora_rank + (shape.qk_rope_head_dim or 0)) * block_bytes / block
    else:
        per_token = 2 * shape.n_kv_heads * shape.head_dim * block_bytes / block
    total = 0.0
    for il in range(shape.n_layers):
        window = shape.sliding_window if il in shape.swa_layers and shape.sliding_window else None
        total += per_token * (min(ctx, window) if window else ctx)
    return total


def roofline_decode_tps(
    shape: ModelShape, quant: QuantSpec, bandwidth_gbps: float, ctx: int = 4096, kv_type: str = "f16"
) -> float:
    """The physical upper bound of single-sequence decode speed: bandwidth over the bytes one token must read
    (active weights + the KV of `ctx` tokens, unpadded), efficiency 1.0 and no overhead. A benchmark claiming more is
    implausible, with one caveat: a model small enough to sit in the chip's last-level cache (tens of MB) can beat
    a DRAM-bandwidth bound."""
    if bandwidth_gbps <= 0:
        raise ValueError("bandwidth_gbps must be positive")
    _check_positive("ctx", ctx)
    _check_kv_type(kv_type)
    read = _read_per_token(shape, quant) + _kv_read(shape, ctx, kv_type)
    return bandwidth_gbps * 1e9 / read


def _decode_efficiency(kind: str, speed: SpeedModel) -> float:
    return {
        "gpu": speed.decode_efficiency_gpu,
        "unified": speed.decode_efficiency_unified,
        "cpu": speed.decode_efficiency_cpu,
    }[kind]


def _weights_read(shape: ModelShape, quant: QuantSpec, batch: int) -> float:
    """Weight bytes one decode step for `batch` sequences reads. For a MoE, the routed experts are read only when
    selected: with dense bytes D and expert bytes X (from the active share a: W x a = D + X x k/E), a batch of B
    touches 1 - (1 - k/E)^B of the experts (independent routing), so it reads D + X x (1 - (1 - k/E)^B)."""
    read_one = _read_per_token(shape, quant)
    share = _active_share(shape)
    if share >= 1 or not shape.n_experts or not shape.n_experts_used or shape.n_experts_used >= shape.n_experts:
        return read_one
    whole = read_one / share
    used = shape.n_experts_used / shape.n_experts
    experts = min(whole * (1 - share) / (1 - used), whole)
    dense = whole - experts
    return dense + experts * (1 - (1 - used) ** batch)


def step_seconds(
    shape: ModelShape,
    quant: QuantSpec,
    device: DeviceSpec,
    options: FitOptions,
    place: _Placement,
    batch: int,
    speed: SpeedModel,
    *,
    compute_bound: bool = True,
) -> float | None:
    """Seconds of one decode step for `batch` sequences: weights read once per step, KV once per sequence, the
    GPU-resident share at the device's bandwidth and the host share at system RAM bandwidth (one after the other,
    as llama.cpp runs layers in order); not below the compute time of 2 x active params x batch FLOPs."""
    if device.bandwidth_gbps <= 0:
        return None
    ctx = context_tokens(shape, options)
    kv_one = _kv_read(shape, ctx, options.kv_type)
    total_read = _weights_read(shape, quant, batch) + batch * kv_one
    if device.kind == "cpu":
        gpu_share, host_bw = 0.0, device.bandwidth_gbps
    else:
        if place.verdict == Verdict.FITS_GPU:
            gpu_share = 1.0
        elif place.verdict == Verdict.PARTIAL_OFFLOAD:
            gpu_share = place.gpu_layers / shape.n_layers
        else:
            gpu_share = 0.0
        # Unified memory: the host share lives in the same RAM; a discrete GPU's host share in system RAM.
        host_bw = (
            device.bandwidth_gbps
            if device.kind == "unified"
            else (device.system_bandwidth_gbps or options.system_bandwidth_gbps)
        )
    gpu_read = total_read * gpu_share
    host_read = total_read - gpu_read
    seconds = speed.per_token_overhead_s
    if gpu_read:
        # Layers split over several GPUs run one after another, so one token sees one GPU's bandwidth.
        seconds += gpu_read / (_decode_efficiency(device.kind, speed) * device.bandwidth_gbps * 1e9)
    if host_read:
        seconds += host_read / (speed.decode_efficiency_cpu * host_bw * 1e9)
    if compute_bound and device.fp16_tflops and gpu_share == 1.0:
        flops = 2 * _text_params(shape) * _active_share(shape) * batch
        seconds = max(seconds, flops / (device.fp16_tflops * 1e12 * speed.prefill_efficiency))
    return seconds


def prefill_tps(shape: ModelShape, device: DeviceSpec, speed: SpeedModel) -> float | None:
    if not device.fp16_tflops:
        return None
    flops_per_token = 2 * _text_params(shape) * _active_share(shape)
    return device.fp16_tflops * 1e12 * speed.prefill_efficiency * device.count / flops_per_token


@dataclass(frozen=True, slots=True)
class ServingPlan:
    """Serving `users` concurrent sequences of `ctx` tokens: memory, verdict and batched decode speed."""

    users: int
    ctx: int
    memory: MemoryBreakdown
    verdict: Verdict
    gpu_layers: int
    headroom_bytes: int
    step_read_bytes: int  # bytes one batched decode step reads: weights once, KV once per user
    aggregate_decode_tps: float | None
    per_user_decode_tps: float | None
    bound: Literal["memory", "compute"] | None


def serving_plan(
    shape: ModelShape, quant: QuantSpec, device: DeviceSpec, options: FitOptions, speed: SpeedModel | None = None
) -> ServingPlan:
    """Memory for weights + users x KV and decode speed when all users are batched into each step: one step reads
    the weights once for everyone and each user's KV, so step time = overhead + (W + users x KV) / (eff x bandwidth),
    not below the compute time of 2 x active params x users FLOPs. Aggregate tokens/s = users / step time."""
    speed = speed or DEFAULT_SPEED
    result = fit(shape, quant, device, options, speed)
    ctx = context_tokens(shape, options)
    kv_one = _kv_read(shape, ctx, options.kv_type)
    step_read = round(_weights_read(shape, quant, options.users) + options.users * kv_one)
    aggregate = per_user = None
    bound: Literal["memory", "compute"] | None = None
    if result.verdict != Verdict.DOES_NOT_FIT:
        place = _Placement(result.verdict, result.gpu_layers, result.usable_bytes, result.headroom_bytes)
        seconds = step_seconds(shape, quant, device, options, place, options.users, speed)
        mem_only = step_seconds(shape, quant, device, options, place, options.users, speed, compute_bound=False)
        if seconds is not None:
            aggregate = options.users / seconds
            per_user = 1 / seconds
            bound = "compute" if mem_only is not None and seconds > mem_only * (1 + 1e-9) else "memory"
    return ServingPlan(
        users=options.users,
        ctx=options.ctx,
        memory=result.memory,
        verdict=result.verdict,
        gpu_layers=result.gpu_layers,
        headroom_bytes=result.headroom_bytes,
        step_read_bytes=step_read,
        aggregate_decode_tps=aggregate,
        per_user_decode_tps=per_user,
        bound=bound,
    )
