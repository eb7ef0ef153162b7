"""Build (once, cached by torch) and load the C++ forward pass in `native.cpp`.

The instruction set is chosen here, at build time, from the CPU's flags: AVX2 + FMA + F16C is the floor (x86-64 CPUs
since 2013); with AVX-512 VNNI the byte products use `vpdpbusd`. The module's name carries the choice, so torch's
build cache (`~/.cache/torch_extensions`, or `TORCH_EXTENSIONS_DIR`, keyed by the source's hash) never hands one
CPU's build to another. The first build takes about a minute; later loads a fraction of a second. Where the CPU lacks
AVX2 or no C++ compiler is installed, `load()` raises `NativeUnavailable` with the reason, which the engine shows as
its status: there is no second decode path to fall back to.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.cpp")
_BASE_FLAGS = {"avx2", "fma", "f16c"}
_VNNI_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}
_lock = threading.Lock()
_module: Any = None
_failed = ""
build_seconds: float | None = None  # how long the last load() took (a build, or a cached module's import)


class NativeUnavailable(RuntimeError):
    """The C++ step cannot run here (CPU, compiler, build error); the message says why."""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def build_flags(flags: set[str]) -> tuple[str, list[str]] | None:
    """(module name suffix, compiler flags) for a CPU with these /proc/cpuinfo flags; None below AVX2."""
    if not flags >= _BASE_FLAGS:
        return None
    cflags = ["-O3", "-ffp-contract=off", "-mavx2", "-mfma", "-mf16c"]
    if flags >= _VNNI_FLAGS:
        return "avx512vnni", [*cflags, "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]
    return "avx2", cflags


def failure() -> str:
    """Why the extension is not in use ('' when it is, or was never asked for)."""
    return _failed


def load() -> Any:
    """The compiled module (GemmaModel and the kernels); raises NativeUnavailable where it cannot be used here."""
    global _module, _failed, build_seconds
    with _lock:
        if _module is not None:
            return _module
        if _failed:
            raise NativeUnavailable(_failed)
        chosen = build_flags(cpu_flags())
        if chosen is None:
            _failed = "this CPU lacks AVX2, FMA or F16C, which the demo's C++ step needs"
            raise NativeUnavailable(_failed)
        suffix, cflags = chosen
        started = time.perf_counter()
        try:
            from torch.utils.cpp_extension import load as build

            _module = build(name=f"rigfit_gguf_{suffix}", sources=[str(SOURCE)], extra_cflags=cflags, verbose=False)
        except Exception as exc:  # no compiler, a build error
            _failed = f"the demo's C++ step could not be built ({type(exc).__name__}: {exc})"[:600]
            logger.warning("%s", _failed)
            raise NativeUnavailable(_failed) from exc
        build_seconds = time.perf_counter() - started
        return _module
