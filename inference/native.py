"""Build (once per source and CPU) and load the C++ forward pass in `native.cpp`, through ctypes.

The library is plain C++ with a C interface: no Python headers, no torch. `load()` compiles it with the system's C++
compiler into the cache directory, named by a hash of the source and the flags (the one cache file the demo keeps),
and later starts only `dlopen` it. The instruction set is chosen at build time from the CPU's flags: AVX2 + FMA +
F16C is the floor (x86-64 CPUs since 2013); with AVX-512 VNNI the byte products use `vpdpbusd`. Where the CPU lacks
AVX2 or no compiler is installed, `load()` raises `NativeUnavailable` with the reason, which the engine shows as its
status: there is no second decode path to fall back to.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.cpp")
_BASE_FLAGS = {"avx2", "fma", "f16c"}
_VNNI_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}
_ERR = 1024
_lock = threading.Lock()
_library: Library | None = None
_failed = ""


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
    """(instruction set name, compiler flags) for a CPU with these /proc/cpuinfo flags; None below AVX2."""
    if not flags >= _BASE_FLAGS:
        return None
    cflags = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-ffp-contract=off", "-mavx2", "-mfma", "-mf16c"]
    if flags >= _VNNI_FLAGS:
        return "avx512vnni", [*cflags, "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]
    return "avx2", cflags


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rigfit"


def library_path(cache_dir: Path, isa: str, cflags: list[str]) -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(cflags).encode()).hexdigest()[:12]
    return cache_dir / f"rigfit-native-{isa}-{digest}.so"


def remove_older_builds(path: Path) -> list[Path]:
    """Delete the other builds in `path`'s directory (an earlier source or other flags): one cache file stays."""
    removed = []
    for old in path.parent.glob("rigfit-native-*.so"):
        if old != path:
            old.unlink(missing_ok=True)
            removed.append(old)
    return removed


def failure() -> str:
    """Why the library is not in use ('' when it is, or was never asked for)."""
    return _failed


def load(cache_dir: Path | None = None) -> Library:
    """The loaded library (built first where this source and CPU have no build in the cache); raises
    NativeUnavailable where it cannot be used here."""
    global _library, _failed
    with _lock:
        if _library is not None:
            return _library
        if _failed:
            raise NativeUnavailable(_failed)
        chosen = build_flags(cpu_flags())
        if chosen is None:
            _failed = "this CPU lacks AVX2, FMA or F16C, which the demo's C++ step needs"
            raise NativeUnavailable(_failed)
        isa, cflags = chosen
        path = library_path(cache_dir or default_cache_dir(), isa, cflags)
        build_seconds = 0.0
        try:
            if not path.exists():
                build_seconds = _build(path, cflags)
            _library = Library(path, build_seconds)
        except NativeUnavailable as exc:
            _failed = str(exc)
            raise
        except OSError as exc:
            _failed = f"the demo's C++ step could not be loaded ({exc})"
            raise NativeUnavailable(_failed) from exc
        return _library


def _build(path: Path, cflags: list[str]) -> float:
    from inference.loader import exclusive

    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise NativeUnavailable("no C++ compiler (c++ or g++) is installed, which the demo's C++ step needs")
    started = time.perf_counter()
    with exclusive(path.with_name(f"{path.name}.lock")):
        if path.exists():  # another process built it while this one waited
            return 0.0
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        done = subprocess.run(
            [compiler, *cflags, str(SOURCE), "-o", str(tmp)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise NativeUnavailable(f"the demo's C++ step did not compile: {done.stderr.strip()[-500:]}")
        tmp.rename(path)
        remove_older_builds(path)
    seconds = time.perf_counter() - started
    logger.info("built %s in %.1f s", path.name, seconds)
    return seconds


_p = ctypes.c_void_p
_i64 = ctypes.c_int64
_ptr_f32 = ctypes.POINTER(ctypes.c_float)


class Library:
    """The C interface of native.cpp (every call that can fail raises RuntimeError with its message)."""

    def __init__(self, path: Path, build_seconds: float) -> None:
        self.path = path
        self.build_seconds = build_seconds  # 0 when the cached build was used
        lib = ctypes.CDLL(str(path))
        lib.rf_isa.restype = ctypes.c_char_p
        lib.rf_model_new.argtypes = [
            ctypes.POINTER(_p), _i64, ctypes.POINTER(ctypes.c_char_p), _p, ctypes.POINTER(_p), _p, _p,
            _i64, ctypes.POINTER(ctypes.c_char_p), _p, _i64, _i64, ctypes.c_char_p, _i64,
        ]  # fmt: skip
        lib.rf_model_free.argtypes = [_p]
        lib.rf_model_forward.argtypes = [_p, _p, _i64, _i64, _i64, _p, ctypes.c_char_p, _i64]
        lib.rf_model_set_screen.argtypes = [
            _p,
            ctypes.c_double,
            _i64,
            ctypes.POINTER(ctypes.c_int32),
            ctypes.c_char_p,
            _i64,
        ]
        for name in (
            "rf_model_vocab", "rf_model_threads", "rf_model_max_threads", "rf_model_last_rescored", "rf_model_last_jobs"
        ):  # fmt: skip
            getattr(lib, name).argtypes = [_p]
            getattr(lib, name).restype = _i64
        lib.rf_model_set_threads.argtypes = [_p, _i64]
        lib.rf_model_helpers_cpu_seconds.argtypes = [_p]
        lib.rf_model_helpers_cpu_seconds.restype = ctypes.c_double
        lib.rf_dequantize.argtypes = [ctypes.c_int32, _p, _i64, _i64, _p, ctypes.c_char_p, _i64]
        lib.rf_matmul.argtypes = [ctypes.c_int32, _p, _i64, _i64, _p, _i64, _p, _i64, ctypes.c_char_p, _i64]
        lib.rf_quantized_activation.argtypes = [_p, _i64, ctypes.c_int32, _p, ctypes.c_char_p, _i64]
        lib.rf_softmax.argtypes = [_p, _i64]
        lib.rf_softmax.restype = None
        lib.rf_gelu.argtypes = [_p, _i64]
        lib.rf_gelu.restype = None
        self.lib = lib
        self.isa = lib.rf_isa().decode()

    @staticmethod
    def check(code: int, err: Any) -> None:
        if code != 0:
            raise RuntimeError(err.value.decode("utf-8", errors="replace"))

    def dequantize(self, raw: np.ndarray, qtype: int, K: int) -> np.ndarray:
        raw = np.ascontiguousarray(raw)
        out = np.empty((raw.shape[0], K), dtype=np.float32)
        err = ctypes.create_string_buffer(_ERR)
        self.check(
            self.lib.rf_dequantize(int(qtype), raw.ctypes.data, raw.shape[0], K, out.ctypes.data, err, _ERR), err
        )
        return out

    def matmul(self, raw: np.ndarray, qtype: int, x: np.ndarray, threads: int = 1) -> np.ndarray:
        raw, x = np.ascontiguousarray(raw), np.ascontiguousarray(x, dtype=np.float32)
        T, K = x.shape
        y = np.empty((T, raw.shape[0]), dtype=np.float32)
        err = ctypes.create_string_buffer(_ERR)
        code = self.lib.rf_matmul(
            int(qtype), raw.ctypes.data, raw.shape[0], K, x.ctypes.data, T, y.ctypes.data, threads, err, _ERR
        )
        self.check(code, err)
        return y

    def quantized_activation(self, x: np.ndarray, k_quant: bool) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty_like(x)
        err = ctypes.create_string_buffer(_ERR)
        self.check(
            self.lib.rf_quantized_activation(x.ctypes.data, x.size, int(k_quant), out.ctypes.data, err, _ERR), err
        )
        return out

    def gelu(self, x: np.ndarray) -> np.ndarray:
        """GELU (tanh form) of a vector with the feed-forward's kernel."""
        out = np.array(x, dtype=np.float32)  # a copy: the kernel works in place
        self.lib.rf_gelu(out.ctypes.data, out.size)
        return out

    def softmax(self, x: np.ndarray) -> np.ndarray:
        """Softmax of a vector with attention's kernel (llama.cpp's vectorised exp)."""
        out = np.array(x, dtype=np.float32)  # a copy: the kernel works in place
        self.lib.rf_softmax(out.ctypes.data, out.size)
        return out


class NativeModel:
    """One GemmaModel of native.cpp over named tensors (numpy views of the mapped file, kept alive here)."""

    def __init__(
        self, library: Library, tensors: dict[str, tuple[int, np.ndarray, int]], config: dict[str, float],
        *, max_len: int, max_threads: int,
    ) -> None:  # fmt: skip
        """tensors: name -> (ggml type, array of the file's bytes or float32 values, row length)."""
        self.library, self.lib = library, library.lib
        self._arrays = [np.ascontiguousarray(array) for _, array, _ in tensors.values()]
        n = len(tensors)
        names = (ctypes.c_char_p * n)(*(name.encode() for name in tensors))
        types = np.array([qtype for qtype, _, _ in tensors.values()], dtype=np.int32)
        data = (_p * n)(*(array.ctypes.data for array in self._arrays))
        rows = np.array([array.shape[0] if array.ndim > 1 else 1 for array in self._arrays], dtype=np.int64)
        cols = np.array([length for _, _, length in tensors.values()], dtype=np.int64)
        keys = (ctypes.c_char_p * len(config))(*(key.encode() for key in config))
        values = np.array(list(config.values()), dtype=np.float64)
        handle = _p()
        err = ctypes.create_string_buffer(_ERR)
        code = self.lib.rf_model_new(
            ctypes.byref(handle), n, names, types.ctypes.data, data, rows.ctypes.data, cols.ctypes.data,
            len(config), keys, values.ctypes.data, max_len, max_threads, err, _ERR,
        )  # fmt: skip
        Library.check(code, err)
        self.handle = handle
        self.vocab = int(self.lib.rf_model_vocab(handle))
        self.max_len = max_len

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self.lib.rf_model_free(self.handle)
            self.handle = None

    def forward(self, tokens: list[int], pos0: int, logits: int = 1) -> np.ndarray | None:
        ids = np.asarray(tokens, dtype=np.int64)
        out = np.empty((len(ids) if logits == 2 else 1, self.vocab), dtype=np.float32) if logits else None
        err = ctypes.create_string_buffer(_ERR)
        code = self.lib.rf_model_forward(
            self.handle, ids.ctypes.data, len(ids), pos0, logits, None if out is None else out.ctypes.data, err, _ERR
        )
        Library.check(code, err)
        if out is None:
            return None
        return out if logits == 2 else out[0]

    def set_threads(self, threads: int) -> None:
        self.lib.rf_model_set_threads(self.handle, int(threads))

    def set_screen(self, margin: float, cap: int) -> bool:
        """Score the output head from its 4-bit copy (made on the first call) and recompute exactly every row within
        `margin` of the best, at most `cap` of them; margin 0: the whole head exactly. Returns whether it is in use
        (a Q8_0 head only)."""
        used = ctypes.c_int32(0)
        err = ctypes.create_string_buffer(_ERR)
        Library.check(
            self.lib.rf_model_set_screen(self.handle, float(margin), int(cap), ctypes.byref(used), err, _ERR), err
        )
        return bool(used.value)

    def last_rescored(self) -> int:
        """Head rows computed exactly at the last step (the whole vocabulary without the screen)."""
        return int(self.lib.rf_model_last_rescored(self.handle))

    def last_jobs(self) -> int:
        """Jobs the last step handed to the thread pool: its synchronisation points (each waits for every thread)."""
        return int(self.lib.rf_model_last_jobs(self.handle))

    def threads(self) -> int:
        return int(self.lib.rf_model_threads(self.handle))

    def max_threads(self) -> int:
        return int(self.lib.rf_model_max_threads(self.handle))

    def helpers_cpu_seconds(self) -> float:
        return float(self.lib.rf_model_helpers_cpu_seconds(self.handle))
