"""The 2025-26 architectures against llama.cpp's own allocation report: sparse GGUFs of gpt-oss-20b, Llama 4 Scout,
LFM2-1.2B and a Granite 4.0 hybrid (Mamba-2 + attention) shape, loaded by llama.cpp at several contexts; KV, recurrent
state (RS) and compute buffers written to tests/fixtures/llamacpp/<name>.json with their provenance.

Same method as bench/validate_fit.py (whose GGUF helpers and probe it reuses): a GGUF whose header carries the
architecture and whose tensor data is a hole. Run:  .venv/bin/python bench/validate_fit_architectures.py [name ...]
(needs llama-cpp-python, `make bench-deps`; LLAMA_CPP_LIB_PATH may point at a local build of the same version).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_fit import FIXTURES, _mat, _vec, provenance, run_probe


def _f32(w: gguf.GGUFWriter, name: str, *ggml_shape: int) -> None:
    """An F32 tensor of ggml shape (ne0, ne1, ...), for the small tensors whose rows no block type fits."""
    n = int(np.prod(ggml_shape))
    w.add_tensor_info(name, list(reversed(ggml_shape)), np.dtype(np.float32), n * 4)


@dataclass
class ArchSpec:
    name: str
    arch: str
    source: str
    shape: dict[str, object]
    write: Callable[[gguf.GGUFWriter], None]
    ctxs: list[int] = field(default_factory=lambda: [512, 2048, 8192])


def _header(w: gguf.GGUFWriter, a: str, *, layers: int, hidden: int, ff: int, heads: int, kv: int | list[int]) -> None:
    w.add_uint32(f"{a}.block_count", layers)
    w.add_uint32(f"{a}.context_length", 131072)
    w.add_uint32(f"{a}.embedding_length", hidden)
    w.add_uint32(f"{a}.feed_forward_length", ff)
    w.add_uint32(f"{a}.attention.head_count", heads)
    if isinstance(kv, list):
        w.add_array(f"{a}.attention.head_count_kv", kv)
    else:
        w.add_uint32(f"{a}.attention.head_count_kv", kv)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32(f"{a}.rope.freq_base", 10000.0)


def _tokenizer(w: gguf.GGUFWriter, vocab: int) -> None:
    w.add_tokenizer_model("none")
    w.add_vocab_size(vocab)


# --- gpt-oss-20b: https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json ---------------------------------


def write_gpt_oss(w: gguf.GGUFWriter) -> None:
    a, h, layers, heads, kv, hd, ff, e, vocab = "gpt-oss", 2880, 24, 64, 8, 64, 2880, 32, 201088
    _header(w, a, layers=layers, hidden=h, ff=ff, heads=heads, kv=kv)
    w.add_uint32(f"{a}.attention.key_length", hd)
    w.add_uint32(f"{a}.attention.value_length", hd)
    w.add_uint32(f"{a}.rope.dimension_count", hd)
    w.add_uint32(f"{a}.attention.sliding_window", 128)
    w.add_uint32(f"{a}.expert_count", e)
    w.add_uint32(f"{a}.expert_used_count", 4)
    w.add_uint32(f"{a}.expert_feed_forward_length", ff)
    _tokenizer(w, vocab)
    _mat(w, "token_embd.weight", h, vocab)
    _vec(w, "output_norm.weight", h)
    _mat(w, "output.weight", h, vocab)
    for il in range(layers):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        _vec(w, p + "post_attention_norm.weight", h)
        _mat(w, p + "attn_q.weight", h, heads * hd)
        _mat(w, p + "attn_k.weight", h, kv * hd)
        _mat(w, p + "attn_v.weight", h, kv * hd)
        _vec(w, p + "attn_q.bias", heads * hd)
        _vec(w, p + "attn_k.bias", kv * hd)
        _vec(w, p + "attn_v.bias", kv * hd)
        _mat(w, p + "attn_output.weight", heads * hd, h)
        _vec(w, p + "attn_output.bias", h)
        _vec(w, p + "attn_sinks.weight", heads)  # one scalar per head: weights, no KV
        _mat(w, p + "ffn_gate_inp.weight", h, e)
        _vec(w, p + "ffn_gate_inp.bias", e)
        _mat(w, p + "ffn_gate_exps.weight", h, ff, e)
        _mat(w, p + "ffn_up_exps.weight", h, ff, e)
        _mat(w, p + "ffn_down_exps.weight", ff, h, e)
        _f32(w, p + "ffn_gate_exps.bias", ff, e)
        _f32(w, p + "ffn_up_exps.bias", ff, e)
        _f32(w, p + "ffn_down_exps.bias", h, e)


# --- Llama 4 Scout: https://huggingface.co/meta-llama/Llama-4-Scout-17B-16E-Instruct/blob/main/config.json ----------


# Eight of its 48 layers: the per-layer KV and the 3-chunked-1-full pattern are what is checked, and the whole model's
# sparse file is 21 GB of holes that llama.cpp maps with MAP_POPULATE (more than this machine's page cache).
LLAMA4_LAYERS = 8


def write_llama4(w: gguf.GGUFWriter) -> None:
    a, h, heads, kv, hd, e, ff_exp, ff, vocab = "llama4", 5120, 40, 8, 128, 16, 8192, 16384, 202048
    layers = LLAMA4_LAYERS
    _header(w, a, layers=layers, hidden=h, ff=ff, heads=heads, kv=kv)
    w.add_uint32(f"{a}.rope.dimension_count", hd)
    w.add_uint32(f"{a}.expert_count", e)
    w.add_uint32(f"{a}.expert_used_count", 1)
    w.add_uint32(f"{a}.expert_feed_forward_length", ff_exp)
    w.add_uint32(f"{a}.interleave_moe_layer_step", 1)
    # No sliding_window key: llama.cpp then uses chunked attention with n_swa = 8192, 3 of 4 layers.
    _tokenizer(w, vocab)
    _mat(w, "token_embd.weight", h, vocab)
    _vec(w, "output_norm.weight", h)
    _mat(w, "output.weight", h, vocab)
    for il in range(layers):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        _mat(w, p + "attn_q.weight", h, heads * hd)
        _mat(w, p + "attn_k.weight", h, kv * hd)
        _mat(w, p + "attn_v.weight", h, kv * hd)
        _mat(w, p + "attn_output.weight", heads * hd, h)
        _vec(w, p + "ffn_norm.weight", h)
        _mat(w, p + "ffn_gate_inp.weight", h, e)
        _mat(w, p + "ffn_gate_exps.weight", h, ff_exp, e)
        _mat(w, p + "ffn_up_exps.weight", h, ff_exp, e)
        _mat(w, p + "ffn_down_exps.weight", ff_exp, h, e)
        _mat(w, p + "ffn_gate_shexp.weight", h, ff_exp)
        _mat(w, p + "ffn_up_shexp.weight", h, ff_exp)
        _mat(w, p + "ffn_down_shexp.weight", ff_exp, h)


# --- LFM2-1.2B: https://huggingface.co/LiquidAI/LFM2-1.2B/blob/main/config.json --------------------------------------
LFM2_ATTN = [2, 5, 8, 10, 12, 14]


def write_lfm2(w: gguf.GGUFWriter) -> None:
    a, h, layers, heads, kv, ff, vocab = "lfm2", 2048, 16, 32, 8, 8192, 65536
    hd = h // heads
    _header(w, a, layers=layers, hidden=h, ff=ff, heads=heads, kv=[kv if il in LFM2_ATTN else 0 for il in range(16)])
    w.add_uint32(f"{a}.shortconv.l_cache", 3)
    _tokenizer(w, vocab)
    _mat(w, "token_embd.weight", h, vocab)
    _vec(w, "token_embd_norm.weight", h)
    for il in range(layers):
        p = f"blk.{il}."
        _vec(w, p + "ffn_norm.weight", h)
        _mat(w, p + "ffn_gate.weight", h, ff)
        _mat(w, p + "ffn_up.weight", h, ff)
        _mat(w, p + "ffn_down.weight", ff, h)
        _vec(w, p + "attn_norm.weight", h)
        if il in LFM2_ATTN:
            _vec(w, p + "attn_q_norm.weight", hd)
            _vec(w, p + "attn_k_norm.weight", hd)
            _mat(w, p + "attn_q.weight", h, h)
            _mat(w, p + "attn_k.weight", h, kv * hd)
            _mat(w, p + "attn_v.weight", h, kv * hd)
            _mat(w, p + "attn_output.weight", h, h)
        else:
            _f32(w, p + "shortconv.conv.weight", 3, h)
            _mat(w, p + "shortconv.in_proj.weight", h, 3 * h)
            _mat(w, p + "shortconv.out_proj.weight", h, h)


# --- Granite 4.0 hybrid: transformers' GraniteMoeHybrid test shape (tests/catalog/test_fit_architectures.py) ---------
GRANITE_ATTN = [3, 7]


def write_granite_hybrid(w: gguf.GGUFWriter) -> None:
    a, h, layers, heads, kv, ff, e, shexp, vocab = "granitehybrid", 512, 8, 8, 8, 1024, 8, 512, 49152
    d_conv, d_inner, d_state, n_group, n_ssm_head = 4, 2 * h, 128, 1, 8
    hd = h // heads
    kv_arr = [kv if il in GRANITE_ATTN else 0 for il in range(layers)]
    _header(w, a, layers=layers, hidden=h, ff=ff, heads=heads, kv=kv_arr)
    w.add_uint32(f"{a}.ssm.conv_kernel", d_conv)
    w.add_uint32(f"{a}.ssm.inner_size", d_inner)
    w.add_uint32(f"{a}.ssm.state_size", d_state)
    w.add_uint32(f"{a}.ssm.time_step_rank", n_ssm_head)
    w.add_uint32(f"{a}.ssm.group_count", n_group)
    w.add_uint32(f"{a}.expert_count", e)
    w.add_uint32(f"{a}.expert_used_count", 2)
    w.add_uint32(f"{a}.expert_shared_feed_forward_length", shexp)
    _tokenizer(w, vocab)
    _mat(w, "token_embd.weight", h, vocab)
    _vec(w, "output_norm.weight", h)
    d_in_proj = 2 * d_inner + 2 * n_group * d_state + n_ssm_head
    for il in range(layers):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        if il in GRANITE_ATTN:
            _mat(w, p + "attn_q.weight", h, heads * hd)
            _mat(w, p + "attn_k.weight", h, kv * hd)
            _mat(w, p + "attn_v.weight", h, kv * hd)
            _mat(w, p + "attn_output.weight", heads * hd, h)
        else:
            _mat(w, p + "ssm_in.weight", h, d_in_proj)
            _f32(w, p + "ssm_conv1d.weight", d_conv, d_inner + 2 * n_group * d_state)
            _vec(w, p + "ssm_conv1d.bias", d_inner + 2 * n_group * d_state)
            _vec(w, p + "ssm_dt.bias", n_ssm_head)
            _f32(w, p + "ssm_a", 1, n_ssm_head)
            _f32(w, p + "ssm_d", 1, n_ssm_head)
            _f32(w, p + "ssm_norm.weight", d_inner // n_group, n_group)
            _mat(w, p + "ssm_out.weight", d_inner, h)
        _vec(w, p + "ffn_norm.weight", h)
        _mat(w, p + "ffn_gate_inp.weight", h, e)
        _mat(w, p + "ffn_gate_exps.weight", h, ff, e)
        _mat(w, p + "ffn_up_exps.weight", h, ff, e)
        _mat(w, p + "ffn_down_exps.weight", ff, h, e)
        _mat(w, p + "ffn_gate_shexp.weight", h, shexp)
        _mat(w, p + "ffn_up_shexp.weight", h, shexp)
        _mat(w, p + "ffn_down_shexp.weight", shexp, h)


# --- Qwen3-Next-80B-A3B: https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json, 8 of 48 layers
QWEN3_NEXT_LAYERS = 8


def write_qwen3_next(w: gguf.GGUFWriter) -> None:
    a, h, heads, kv, hd, e, ff_exp, vocab = "qwen3next", 2048, 16, 2, 256, 512, 512, 151936
    layers = QWEN3_NEXT_LAYERS
    d_conv, d_state, n_group, n_v_heads = 4, 128, 16, 32
    key_dim, value_dim = d_state * n_group, d_state * n_v_heads
    _header(w, a, layers=layers, hidden=h, ff=5120, heads=heads, kv=kv)
    w.add_uint32(f"{a}.attention.key_length", hd)
    w.add_uint32(f"{a}.attention.value_length", hd)
    w.add_uint32(f"{a}.rope.dimension_count", 64)
    w.add_uint32(f"{a}.expert_count", e)
    w.add_uint32(f"{a}.expert_used_count", 10)
    w.add_uint32(f"{a}.expert_feed_forward_length", ff_exp)
    w.add_uint32(f"{a}.expert_shared_feed_forward_length", ff_exp)
    w.add_uint32(f"{a}.ssm.conv_kernel", d_conv)
    w.add_uint32(f"{a}.ssm.inner_size", value_dim)
    w.add_uint32(f"{a}.ssm.state_size", d_state)
    w.add_uint32(f"{a}.ssm.time_step_rank", n_v_heads)
    w.add_uint32(f"{a}.ssm.group_count", n_group)
    w.add_uint32(f"{a}.full_attention_interval", 4)
    _tokenizer(w, vocab)
    _mat(w, "token_embd.weight", h, vocab)
    _vec(w, "output_norm.weight", h)
    _mat(w, "output.weight", h, vocab)
    for il in range(layers):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        _vec(w, p + "post_attention_norm.weight", h)
        if (il + 1) % 4 == 0:
            _mat(w, p + "attn_q.weight", h, hd * heads * 2)  # queries and their output gate
            _mat(w, p + "attn_k.weight", h, kv * hd)
            _mat(w, p + "attn_v.weight", h, kv * hd)
            _mat(w, p + "attn_output.weight", hd * heads, h)
            _vec(w, p + "attn_q_norm.weight", hd)
            _vec(w, p + "attn_k_norm.weight", hd)
        else:
            _mat(w, p + "attn_qkv.weight", h, 2 * key_dim + value_dim)
            _mat(w, p + "attn_gate.weight", h, value_dim)
            _f32(w, p + "ssm_conv1d.weight", d_conv, 2 * key_dim + value_dim)
            _vec(w, p + "ssm_dt.bias", n_v_heads)
            _vec(w, p + "ssm_a", n_v_heads)
            _mat(w, p + "ssm_ba.weight", h, 2 * n_v_heads)
            _vec(w, p + "ssm_norm.weight", d_state)
            _mat(w, p + "ssm_out.weight", value_dim, h)
        _mat(w, p + "ffn_gate_inp.weight", h, e)
        _mat(w, p + "ffn_gate_exps.weight", h, ff_exp, e)
        _mat(w, p + "ffn_up_exps.weight", h, ff_exp, e)
        _mat(w, p + "ffn_down_exps.weight", ff_exp, h, e)
        _vec(w, p + "ffn_gate_inp_shexp.weight", h)
        _mat(w, p + "ffn_gate_shexp.weight", h, ff_exp)
        _mat(w, p + "ffn_up_shexp.weight", h, ff_exp)
        _mat(w, p + "ffn_down_shexp.weight", ff_exp, h)


def _shape(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "tied_embeddings": False,
        "sliding_window": None,
        "swa_layers": [],
        "kv_lora_rank": None,
        "qk_rope_head_dim": None,
        "n_experts": None,
        "n_experts_used": None,
        "attention_layers": None,
        "recurrent_layers": [],
        "recurrent_state_values": 0,
    }
    return {**base, **kw}


SPECS = [
    ArchSpec(
        "gpt-oss-20b",
        "gpt-oss",
        "https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json (mirror: EchoCog/gpt-oss-20b config.json)",
        _shape(
            n_layers=24,
            hidden_size=2880,
            n_heads=64,
            n_kv_heads=8,
            head_dim=64,
            vocab_size=201088,
            intermediate_size=2880,
            sliding_window=128,
            swa_layers=list(range(0, 24, 2)),
            n_experts=32,
            n_experts_used=4,
        ),
        write_gpt_oss,
    ),
    ArchSpec(
        "llama-4-scout-8-layers",
        "llama4",
        "https://huggingface.co/meta-llama/Llama-4-Scout-17B-16E-Instruct/blob/main/config.json (text_config), 8 of "
        "its 48 layers",
        _shape(
            n_layers=LLAMA4_LAYERS,
            hidden_size=5120,
            n_heads=40,
            n_kv_heads=8,
            head_dim=128,
            vocab_size=202048,
            intermediate_size=8192,
            sliding_window=8192,
            swa_layers=[il for il in range(LLAMA4_LAYERS) if il % 4 < 3],
            n_experts=16,
            n_experts_used=1,
        ),
        write_llama4,
        ctxs=[2048, 8192, 16384],
    ),
    ArchSpec(
        "lfm2-1.2b",
        "lfm2",
        "https://huggingface.co/LiquidAI/LFM2-1.2B/blob/main/config.json (attention layers, heads, conv_L_cache; the "
        "FFN width 8192 is llama.cpp's LLM_TYPE_1_2B n_ff)",
        _shape(
            n_layers=16,
            hidden_size=2048,
            n_heads=32,
            n_kv_heads=8,
            head_dim=64,
            vocab_size=65536,
            intermediate_size=8192,
            tied_embeddings=True,
            attention_layers=LFM2_ATTN,
            recurrent_layers=[il for il in range(16) if il not in LFM2_ATTN],
            recurrent_state_values=2048 * 2,
        ),
        write_lfm2,
    ),
    ArchSpec(
        "granite-hybrid-tiny",
        "granitehybrid",
        "transformers' GraniteMoeHybrid test config (hidden 512, 8 layers, attention at 3 and 7, Mamba-2 d_state 128)",
        _shape(
            n_layers=8,
            hidden_size=512,
            n_heads=8,
            n_kv_heads=8,
            head_dim=64,
            vocab_size=49152,
            intermediate_size=1024,
            tied_embeddings=True,
            n_experts=8,
            n_experts_used=2,
            attention_layers=GRANITE_ATTN,
            recurrent_layers=[il for il in range(8) if il not in GRANITE_ATTN],
            recurrent_state_values=3 * (1024 + 2 * 128) + 128 * 1024,
        ),
        write_granite_hybrid,
    ),
    ArchSpec(
        "qwen3-next-8-layers",
        "qwen3next",
        "https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json, 8 of its 48 layers (full "
        "attention every 4th, gated delta net elsewhere)",
        _shape(
            n_layers=QWEN3_NEXT_LAYERS,
            hidden_size=2048,
            n_heads=16,
            n_kv_heads=2,
            head_dim=256,
            vocab_size=151936,
            intermediate_size=512,
            n_experts=512,
            n_experts_used=10,
            attention_layers=[il for il in range(QWEN3_NEXT_LAYERS) if (il + 1) % 4 == 0],
            recurrent_layers=[il for il in range(QWEN3_NEXT_LAYERS) if (il + 1) % 4],
            recurrent_state_values=3 * (4096 + 2 * 16 * 128) + 128 * 4096,
        ),
        write_qwen3_next,
    ),
]

_RS = re.compile(r"RS buffer size =\s*([\d.]+) MiB")
_RS_CELLS = re.compile(r"llama_memory_recurrent: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers")


def write_gguf(spec: ArchSpec, path: Path) -> int:
    w = gguf.GGUFWriter(str(path), spec.arch)
    spec.write(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = sum(ti.nbytes for t in w.tensors for ti in t.values())
    padded = sum(-(-ti.nbytes // w.data_alignment) * w.data_alignment for t in w.tensors for ti in t.values())
    fout = w.fout[0]
    start = -(-fout.tell() // w.data_alignment) * w.data_alignment
    fout.truncate(start + padded)
    w.close()
    return total


def measure(spec: ArchSpec, workdir: Path) -> dict[str, object]:
    path = workdir / f"{spec.name}.gguf"
    tensor_bytes = write_gguf(spec, path)
    runs, log = [], ""
    configs = [(n_ctx, flash, 1, "f16") for n_ctx in spec.ctxs for flash in (False, True)]
    configs += [(2048, True, 4, "f16"), (2048, True, 1, "q8_0")]
    try:
        for n_ctx, flash, n_seq, kv_type in configs:
            report, log = run_probe(path, n_ctx, flash, False, n_seq, kv_type)
            rs = [float(m.group(1)) for m in _RS.finditer(log)]
            rs_cells = [
                {"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3))}
                for m in _RS_CELLS.finditer(log)
            ]
            runs.append(
                {
                    "n_ctx": n_ctx,
                    "flash_attn": flash,
                    "n_seq": n_seq,
                    "kv_type": kv_type,
                    **report,
                    "rs_buffer_mib": sum(rs),
                    "rs_caches": rs_cells,
                }
            )
            print(
                f"{spec.name:20s} ctx={n_ctx:6d} fa={int(flash)} seq={n_seq} {kv_type:4s}"
                f" KV {report['kv_buffer_mib']:9.2f} MiB  RS {sum(rs):8.2f} MiB"
                f"  compute {report['compute_buffer_mib']:9.2f} MiB",
                flush=True,
            )
    finally:
        path.unlink(missing_ok=True)
    return {
        "name": spec.name,
        "shape": spec.shape,
        "shape_source": spec.source,
        "gguf": {"tensor_bytes": tensor_bytes, "sparse": True, "arch": spec.arch},
        "runs": runs,
        "provenance": {
            **provenance(log),
            "how": "bench/validate_fit_architectures.py: sparse GGUF loaded in a subprocess, llama.cpp's stderr report",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    out = FIXTURES.parent / "llamacpp_arch"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rigfit-arch-") as tmp:
        for spec in SPECS:
            if args.names and spec.name not in args.names:
                continue
            data = measure(spec, Path(tmp))
            (out / f"{spec.name}.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
