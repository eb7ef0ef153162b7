"""Build (once, cached by torch) and load the C++ decode step in `native.cpp`.

The extension needs AVX-512 with VNNI (`vpdpwssd`) and a C++ compiler; where either is missing, or the build fails,
`load()` returns None and the engine keeps the `torch.compile` path. torch caches the build under
`~/.cache/torch_extensions` (or `TORCH_EXTENSIONS_DIR`) keyed by the source's hash: the first build takes about a
minute, later loads a fraction of a second. `RIGFIT_DEMO_NATIVE=0` turns it off.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.cpp")
_REQUIRED_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}
_lock = threading.Lock()
_module: Any = None
_failed = ""


def enabled() -> bool:
    return os.environ.get("RIGFIT_DEMO_NATIVE", "1").strip().lower() not in {"0", "false", "no", "off"}


def cpu_supported() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return _REQUIRED_FLAGS.issubset(line.split(":", 1)[1].split())
    return False


def failure() -> str:
    """Why the extension is not in use ('' when it is, or was never asked for)."""
    return _failed


def load() -> Any:
    """The compiled module (GemmaStep, int8_matvec), or None where it cannot be used here."""
    global _module, _failed
    with _lock:
        if _module is not None or _failed:
            return _module
        if not enabled():
            _failed = "turned off by RIGFIT_DEMO_NATIVE"
        elif not cpu_supported():
            _failed = "this CPU lacks AVX-512 VNNI"
        else:
            try:
                from torch.utils.cpp_extension import load as build

                _module = build(
                    name="rigfit_native",
                    sources=[str(SOURCE)],
                    extra_cflags=["-O3", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mfma"],
                    extra_ldflags=["-fopenmp"],
                    verbose=False,
                )
            except Exception as exc:  # no compiler, a build error: the compiled-graph path still works
                _failed = f"{type(exc).__name__}: {exc}"[:500]
                logger.warning("native decode step unavailable: %s", _failed)
        return _module
