"""Int8 weight-only layers: fewer bytes read per generated token, which is what decode speed on a CPU is bound by.

Weights are stored as int8 with one fp32 scale per output row (symmetric, absmax / 127). For one token (decode) the
dequantize-multiply-reduce is written in plain torch and fused by `torch.compile` into one pass over the int8 weight,
which measured about 2x faster than the fp32 matrix-vector product on the 262144x640 output head (shared/FACTS.md);
torch's own `_weight_int8pack_mm` was 3x slower than that for a single row. Several tokens at once (prefill)
dequantize the weight and use the BLAS matmul, which is compute-bound there, not memory-bound.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import threading
import weakref
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: returns (int8 [N, K], fp32 scale [N])."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


SCREEN_BLOCK = 32


def quantize_q4_screen(
    weight: torch.Tensor, scale: torch.Tensor, *, chunk_rows: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4-bit screening copy of an int8 weight (native.cpp's `gemv_q4`): symmetric, one fp16 scale per block of 32
    (ggml's Q4_0 rounding: the block's largest-magnitude value maps to code 0, so w ~= d * (code - 8)).

    Returns (codes uint8 [N, K / 2], scales float16 [N, K / 32]); codes of blocks 2p and 2p + 1 share 32 bytes, the
    first in the low nibbles. Works in chunks of rows so that no fp32 copy of a large table is ever whole.
    """
    n_rows, k = weight.shape
    if k % (2 * SCREEN_BLOCK):
        raise ValueError(f"the screening copy needs a row length divisible by {2 * SCREEN_BLOCK}, not {k}")
    blocks = k // SCREEN_BLOCK
    codes = torch.empty(n_rows, k // 2, dtype=torch.uint8)
    scales = torch.empty(n_rows, blocks, dtype=torch.float16)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        w = (weight[start:stop].float() * scale[start:stop, None].float()).reshape(-1, blocks, SCREEN_BLOCK)
        extreme = w.gather(-1, w.abs().argmax(-1, keepdim=True))
        d = (extreme / -8.0).to(torch.float16)
        d32 = d.float()
        inverse = torch.where(d32 != 0, 1.0 / d32, torch.zeros_like(d32))
        q = torch.clamp(torch.floor(w * inverse + 8.5), 0, 15).to(torch.uint8).reshape(-1, blocks // 2, 2, SCREEN_BLOCK)
        codes[start:stop] = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, k // 2)
        scales[start:stop] = d.reshape(-1, blocks)
    return codes, scales


def dequantize_q4_screen(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """fp32 [N, K] from `quantize_q4_screen`'s output (the reference the tests hold the C++ product to)."""
    n_rows = codes.shape[0]
    pairs = codes.reshape(n_rows, -1, 1, SCREEN_BLOCK)
    q = torch.cat([pairs & 0x0F, pairs >> 4], dim=2).reshape(n_rows, -1, SCREEN_BLOCK).float() - 8.0
    return (q * scales.float()[:, :, None]).reshape(n_rows, -1)


def _int8_matvec_eager(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # x: [1, K]; weight: [N, K] int8 -> [1, N]. Compiled, this reads each int8 weight once, with no fp32 copy.
    return (x[:, None, :] * weight.to(x.dtype)).sum(dim=-1) * scale


_COMPILE = os.environ.get("RIGFIT_DEMO_COMPILE", "1") not in {"0", "false", "no", "off"}
_compiled_matvec = None


def int8_matvec(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    global _compiled_matvec
    from inference import native

    module = native._module  # the C++ kernel once the engine has loaded it: no inductor graph needed
    if module is not None and x.dtype == torch.float32 and x.shape[0] == 1:
        return module.int8_matvec(x[0], weight, scale)[None]
    if not _COMPILE:
        return _int8_matvec_eager(x, weight, scale)
    if _compiled_matvec is None:
        _compiled_matvec = torch.compile(_int8_matvec_eager, dynamic=False)
    return _compiled_matvec(x, weight, scale)


def int8_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    shape = x.shape
    rows = x.reshape(-1, shape[-1])
    if rows.shape[0] == 1:
        out = int8_matvec(rows, weight, scale)
    else:
        out = rows @ (weight.to(rows.dtype) * scale[:, None]).t()
    if bias is not None:
        out = out + bias
    return out.reshape(*shape[:-1], weight.shape[0])


class Int8Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        self.register_buffer("weight", weight, persistent=True)
        self.register_buffer("scale", scale, persistent=True)
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, s = quantize_rows(linear.weight)
        return cls(q, s, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int8_linear(x, self.weight, self.scale, self.bias)


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 rows; `embed_scale` keeps Gemma's sqrt(hidden) multiplier."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, embed_scale: float | torch.Tensor = 1.0) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.register_buffer("weight", weight, persistent=True)
        self.register_buffer("scale", scale, persistent=True)
        self.embed_scale = float(embed_scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight[ids].float() * self.scale[ids].unsqueeze(-1)
        return rows * self.embed_scale


def quantize_model(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear (output head included) and the input embedding with int8 weight-only versions.

    A tied output head shares the int8 embedding table, as it shared the fp32 one.
    """
    embeddings = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and embeddings is not None and head.weight.data_ptr() == embeddings.weight.data_ptr()
    q_emb = None
    if embeddings is not None:
        q, s = quantize_rows(embeddings.weight)
        embed_scale = getattr(embeddings, "embed_scale", 1.0)
        if isinstance(embed_scale, torch.Tensor):
            embed_scale = float(embed_scale.item())
        q_emb = Int8Embedding(q, s, embed_scale)
        model.set_input_embeddings(q_emb)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if not isinstance(child, nn.Linear):
                continue
            if child is head and tied and q_emb is not None:
                replacement = Int8Linear(q_emb.weight, q_emb.scale, child.bias)
            else:
                replacement = Int8Linear.from_linear(child)
            setattr(module, child_name, replacement)
            del child
    logger.debug("quantized %s to int8 weight-only", type(model).__name__)
    release_free_memory()
    return model


_sparse_tables: list[weakref.ref[torch.Tensor]] = []
_sparse_lock = threading.Lock()


def _page_range(tensor: torch.Tensor) -> tuple[int, int]:
    start = tensor.data_ptr() // mmap.PAGESIZE * mmap.PAGESIZE
    return start, tensor.data_ptr() + tensor.numel() * tensor.element_size() - start


def _mapped_from(start: int, length: int, path: Path) -> bool:
    """Whether [start, start + length) lies inside one private mapping of `path` (/proc/self/maps)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return False
    target = str(path.resolve())
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != target:
            continue
        low, high = (int(part, 16) for part in fields[0].split("-"))
        if low <= start and start + length <= high and fields[1].endswith("p"):
            return True
    return False


def mark_sparsely_read(tensor: torch.Tensor, path: Path) -> bool:
    """A read-only tensor memory-mapped from `path`, of which each step reads a few rows: no readahead
    (MADV_RANDOM), and `release_free_memory` unmaps its pages (MADV_DONTNEED) so they stop counting as resident
    between generations. Returns False, and does nothing, unless the tensor lies in a private mapping of that file:
    on anonymous memory MADV_DONTNEED would zero the weights.

    Linux maps the 16 neighbouring pages around every read of a file already in the page cache ("fault-around"), so a
    few thousand scattered rows make a whole table resident: clean, reclaimable file pages, but resident all the same.
    Dropping them loses nothing because nothing writes to the table: the next read maps them again from the page cache.
    """
    start, length = _page_range(tensor)
    if not _mapped_from(start, length, path):
        return False
    with _sparse_lock:
        _sparse_tables.append(weakref.ref(tensor))
    _madvise(start, length, mmap.MADV_RANDOM)
    return True


def _madvise(start: int, length: int, advice: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc / not Linux: only resident memory is at stake
        ctypes.CDLL("libc.so.6", use_errno=True).madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), advice)


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise), so resident memory reflects the int8 model,
    and unmap the pages of sparsely read tables (`mark_sparsely_read`)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with _sparse_lock:
        _sparse_tables[:] = [ref for ref in _sparse_tables if ref() is not None]
        for ref in _sparse_tables:
            tensor = ref()  # alive: its file mapping is too
            if tensor is not None:
                _madvise(*_page_range(tensor), mmap.MADV_DONTNEED)
