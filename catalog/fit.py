"""Hardware fit: how much memory a model needs for a context length, where it fits, and how fast it may run.

Pure and typed: dataclasses in, dataclasses out, bytes as integers, no Django import.
Every formula is explained, with its source, in docs/fit.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

KvType = Literal["f32", "f16", "bf16", "q8_0", "q4_0"]
DeviceKind = Literal["gpu", "unified", "cpu"]


class Verdict(StrEnum):
    FITS_GPU = "fits-gpu"  # everything in GPU (or unified) memory
    PARTIAL_OFFLOAD = "partial"  # some layers on the GPU, the rest in system RAM
    CPU_ONLY = "cpu-only"  # no GPU share worth having, but fits in system RAM
    DOES_NOT_FIT = "no-fit"  # not even system RAM holds it


@dataclass(frozen=True, slots=True)
class ModelShape:
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


@dataclass(frozen=True, slots=True)
class QuantSpec:
    name: str
    bits_per_weight: float | None = None
    file_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    kind: DeviceKind
    memory_bytes: int
    bandwidth_gbps: float
    fp16_tflops: float | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class FitOptions:
    ctx: int = 4096
    kv_type: KvType = "f16"
    users: int = 1
    flash_attention: bool = True
    ubatch: int = 512
    system_ram_bytes: int = 32 * 1024**3


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    vision_bytes: int
    total_bytes: int
    estimated: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class FitResult:
    memory: MemoryBreakdown
    verdict: Verdict
    gpu_layers: int
    n_layers: int
    usable_bytes: int
    headroom_bytes: int
    est_decode_tps: float | None
    est_prefill_tps: float | None
