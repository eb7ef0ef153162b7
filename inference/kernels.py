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
import os

import torch
from torch import nn

logger = logging.getLogger(__name__)


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: returns (int8 [N, K], fp32 scale [N])."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


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


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise), so resident memory reflects the int8 model."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
