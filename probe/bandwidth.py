"""This machine's memory read bandwidth, measured.

Decode speed is bound by how fast weights stream from memory, and a catalog row only knows the maker's peak: a
laptop's single-channel RAM or a server's unpopulated channels read less. So `rigfit-probe fit` measures the host's
read bandwidth: every core reads its own share of a buffer far larger than the caches, and the best of several passes
in about two seconds counts. (An NVIDIA GPU's own bandwidth comes from NVML's clocks, in probe.detect.)
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MIB = 1024**2


@dataclass(frozen=True)
class HostBandwidth:
    gbps: float  # 10^9 bytes per second read
    buffer_bytes: int
    threads: int
    passes: int
    seconds: float


def buffer_size(available_bytes: int | None) -> int:
    """A quarter of the free RAM, between 256 MiB (several times any CPU's last-level cache) and 2 GiB."""
    if not available_bytes:
        return 512 * MIB
    return int(min(max(available_bytes // 4, 256 * MIB), 2048 * MIB))


def measure_host_bandwidth(
    *,
    available_bytes: int | None = None,
    seconds: float = 2.0,
    threads: int | None = None,
    buffer_bytes: int | None = None,
) -> HostBandwidth:
    """Read bandwidth: each thread reduces its own slice with np.max (a SIMD reduction that keeps up with memory,
    where np.sum's pairwise summation does not; numpy releases the GIL in it), timed per pass; the best pass counts,
    as STREAM reports its best."""
    import numpy as np

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    size = buffer_bytes or buffer_size(available_bytes)
    data = np.ones(size // 8, dtype=np.float64)  # written once, so every page is really in RAM
    slices = np.array_split(data, threads)
    best, passes = float("inf"), 0
    deadline = time.perf_counter() + seconds
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(np.max, slices))  # warm-up: page tables, thread start
        while passes < 3 or time.perf_counter() < deadline:
            start = time.perf_counter()
            list(pool.map(np.max, slices))
            best = min(best, time.perf_counter() - start)
            passes += 1
            if passes >= 50:
                break
    return HostBandwidth(
        gbps=data.nbytes / best / 1e9, buffer_bytes=data.nbytes, threads=threads, passes=passes, seconds=best
    )
