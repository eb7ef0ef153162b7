"""The demo model straight from its GGUF file: the header read here, the tensors memory-mapped as the file holds
them (llama.cpp's quantized blocks), the forward pass in `native.cpp`.

Nothing is converted and nothing is cached but the compiled extension: a warm start maps the file, reads its header
and hands the tensors' addresses to C++. `gguf.GGUFReader` reads the same header in about 30 s here (it makes a numpy
view per part of each of Gemma 3's 262,144 vocabulary strings), so `read_gguf` walks it with `struct` instead; the
constants (value types, block sizes) are the gguf package's, and a test holds the result to GGUFReader's.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

GGUF_MAGIC = b"GGUF"
_SCALARS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_NUMPY = {
    GGUFValueType.UINT8: np.uint8,
    GGUFValueType.INT8: np.int8,
    GGUFValueType.UINT16: np.uint16,
    GGUFValueType.INT16: np.int16,
    GGUFValueType.UINT32: np.uint32,
    GGUFValueType.INT32: np.int32,
    GGUFValueType.FLOAT32: np.float32,
    GGUFValueType.BOOL: np.bool_,
    GGUFValueType.UINT64: np.uint64,
    GGUFValueType.INT64: np.int64,
    GGUFValueType.FLOAT64: np.float64,
}


class GGUFError(ValueError):
    """Not a GGUF file, or one this engine cannot run (the message says which)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: int  # ggml type id (GGMLQuantizationType)
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    offset: int  # from the file's start

    @property
    def row_length(self) -> int:
        return self.shape[0]

    @property
    def rows(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def row_bytes(self) -> int:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(self.type)]
        return self.row_length // block * size

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes


@dataclass
class GGUFFile:
    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data: np.memmap  # the whole file, mapped read-only

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as [rows, row bytes] uint8 (F32 tensors: float32 [rows, row length]), no copy."""
        info = self.tensors[name]
        view = self.data[info.offset : info.offset + info.nbytes]
        if info.type == GGMLQuantizationType.F32:
            return view.view(np.float32).reshape(info.rows, info.row_length)
        return view.reshape(info.rows, info.row_bytes)


class _Cursor:
    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer
        self.at = 0

    def scalar(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buffer, self.at)[0]
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.scalar("<Q")
        raw = bytes(self.buffer[self.at : self.at + length])
        self.at += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        kind = GGUFValueType(kind)
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            item, count = self.scalar("<I"), self.scalar("<Q")
            if item == GGUFValueType.STRING:
                return self._strings(count)
            if item == GGUFValueType.ARRAY:
                return [self.value(GGUFValueType.ARRAY) for _ in range(count)]
            dtype = np.dtype(_NUMPY[GGUFValueType(item)]).newbyteorder("<")
            values = np.frombuffer(self.buffer, dtype=dtype, count=count, offset=self.at).copy()
            self.at += count * dtype.itemsize
            return values
        return self.scalar(_SCALARS[kind])

    def _strings(self, count: int) -> list[str]:
        buffer, at, out = self.buffer, self.at, []
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            (length,) = unpack(buffer, at)
            at += 8
            out.append(bytes(buffer[at : at + length]).decode("utf-8", errors="replace"))
            at += length
        self.at = at
        return out


def read_gguf(path: Path) -> GGUFFile:
    path = Path(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if bytes(data[:4]) != GGUF_MAGIC:
        raise GGUFError(f"{path.name} is not a GGUF file")
    header = memoryview(data)
    cursor = _Cursor(header)
    cursor.at = 4
    version = cursor.scalar("<I")
    if version not in (2, 3):
        raise GGUFError(f"{path.name}: GGUF version {version} is not supported (2 or 3)")
    n_tensors, n_kv = cursor.scalar("<Q"), cursor.scalar("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.scalar("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cursor.string()
        dims = tuple(cursor.scalar("<Q") for _ in range(cursor.scalar("<I")))
        kind, offset = cursor.scalar("<I"), cursor.scalar("<Q")
        infos.append((name, kind, dims, offset))
    alignment = int(metadata.get("general.alignment", 32))
    start = (cursor.at + alignment - 1) // alignment * alignment
    tensors = {name: TensorInfo(name, kind, dims, start + offset) for name, kind, dims, offset in infos}
    for info in tensors.values():
        if info.offset + info.nbytes > len(data):
            raise GGUFError(f"{path.name}: tensor {info.name} runs past the end of the file")
    return GGUFFile(path, metadata, tensors, data)


@dataclass(frozen=True)
class GemmaConfig:
    """The hyperparameters of a Gemma 3 text model, from the GGUF metadata (keys as llama.cpp writes them)."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    rope_base: float
    rope_base_local: float
    rope_factor: float
    sliding_window: int
    sliding_pattern: int
    attn_scale: float
    embed_scale: float
    context_length: int

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> GemmaConfig:
        arch = meta.get("general.architecture")
        if arch != "gemma3":
            raise GGUFError(f"the demo engine runs Gemma 3 text models; this file is {arch!r}")

        def key(name: str, default: Any = None) -> Any:
            value = meta.get(f"gemma3.{name}", default)
            if value is None:
                raise GGUFError(f"the GGUF metadata lacks gemma3.{name}")
            return value

        hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
        head_dim = int(key("attention.key_length", hidden // heads))
        scaling = meta.get("gemma3.rope.scaling.type")
        factor = float(meta.get("gemma3.rope.scaling.factor", 1.0)) if scaling == "linear" else 1.0
        layers = int(key("block_count"))
        # llama.cpp (src/llama-model.cpp, LLM_ARCH_GEMMA3): five sliding-window layers to one global, the local
        # layers' RoPE base 10,000, attention scaled by 1/sqrt(head_dim) except on the 27B (hidden / heads).
        attn_scale = (hidden / heads) ** -0.5 if layers == 62 else head_dim**-0.5
        return cls(
            layers=layers,
            hidden=hidden,
            ffn=int(key("feed_forward_length")),
            heads=heads,
            kv_heads=int(key("attention.head_count_kv", heads)),
            head_dim=head_dim,
            eps=float(key("attention.layer_norm_rms_epsilon")),
            rope_base=float(key("rope.freq_base", 1_000_000.0)),
            rope_base_local=10_000.0,
            rope_factor=factor,
            sliding_window=int(key("attention.sliding_window")),
            sliding_pattern=6,
            attn_scale=attn_scale,
            embed_scale=float(np.float32(math.sqrt(hidden))),
            context_length=int(key("context_length", 8192)),
        )

    def as_native(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.__dict__.items() if name != "context_length"}


# The output head's screening (native.cpp, `Screen`): rows whose 4-bit score is within this many nats of the best are
# recomputed exactly from the Q8_0 rows. The largest error of a 4-bit score of this head measured 5.3 nats over 197
# steps of 4 fixed texts (an int8 table then, with the same 4-bit grid), so a row that could be the best is always
# recomputed; a row left at its 4-bit score scored more than 8 below the best (e^-8: 0.03 % of its probability).
SCREEN_MARGIN = 8.0
SCREEN_CAP = 4096  # at most this many rows recomputed per step (the best-scored): a flat distribution would send more


class GGUFModel:
    """One Gemma 3 model over its memory-mapped GGUF: `forward(tokens, pos0)` returns the next token's logits."""

    def __init__(self, gguf: GGUFFile, *, max_len: int, max_threads: int, native: Any) -> None:
        from inference.native import NativeModel

        self.gguf = gguf
        self.config = GemmaConfig.from_metadata(gguf.metadata)
        self.max_len = max_len
        tensors = {name: (int(info.type), gguf.raw(name), info.row_length) for name, info in gguf.tensors.items()}
        self.step = NativeModel(
            native, tensors, self.config.as_native(), max_len=max_len, max_threads=max(1, max_threads)
        )
        self.vocab = self.step.vocab
        self.isa = native.isa
        self.n_params = sum(info.row_length * info.rows for info in gguf.tensors.values())
        self.size_bytes = sum(info.nbytes for info in gguf.tensors.values())
        self.architecture = str(gguf.metadata.get("general.architecture", ""))
        counts: dict[str, int] = {}
        for info in gguf.tensors.values():
            if info.rows > 1:
                kind = GGMLQuantizationType(info.type).name
                counts[kind] = counts.get(kind, 0) + 1
        self.weights_label = "as the GGUF stores them: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        head = gguf.tensors.get("output.weight") or gguf.tensors["token_embd.weight"]
        tied = "output.weight" not in gguf.tensors
        self.head_screened = self.step.set_screen(SCREEN_MARGIN, SCREEN_CAP)
        self.head_label = GGMLQuantizationType(head.type).name + (", tied to the embedding" if tied else "")
        if self.head_screened:
            self.head_label += f"; screened from a 4-bit copy, rows within {SCREEN_MARGIN:g} nats of the best exact"

    def use_temperature(self, temperature: float) -> None:
        """Widen the head's screening margin for sampling hotter than 1: the logits are divided by the temperature, so
        a row SCREEN_MARGIN below the best in logits is only SCREEN_MARGIN / T below it where tokens are drawn."""
        if self.head_screened:
            self.step.set_screen(SCREEN_MARGIN * max(1.0, temperature), SCREEN_CAP)

    def forward(self, tokens: list[int], pos0: int, *, logits: int = 1) -> Any:
        """logits: 1 the last token's [vocab] (float32 numpy), 2 every token's [T, vocab], 0 none (None)."""
        return self.step.forward(tokens, int(pos0), int(logits))

    def set_threads(self, threads: int) -> None:
        self.step.set_threads(max(1, min(int(threads), self.step.max_threads())))

    @property
    def threads(self) -> int:
        return self.step.threads()

    def cpu_seconds(self) -> float:
        """CPU time of the calling thread plus the step's helper threads (the thread governor's own share)."""
        import time

        return time.thread_time() + self.step.helpers_cpu_seconds()
