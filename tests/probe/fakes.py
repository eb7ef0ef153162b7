"""Fakes for the detection boundary (`probe.detect.Sources`): NVML, psutil, files, commands."""

from __future__ import annotations

import fnmatch
import subprocess
from collections import namedtuple
from types import SimpleNamespace
from typing import Any

from probe.bandwidth import HostBandwidth

GIB = 1024**3
MIB = 1024**2

_Memory = namedtuple("_Memory", "total free used")


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError: detection must catch any exception NVML raises."""


class FakeNVML:
    """A pynvml lookalike over a list of GPUs: dicts with name, total, free, pcie_gen, pcie_width, power_mw."""

    NVMLError = FakeNVMLError

    def __init__(self, gpus: list[dict[str, Any]], *, driver: str = "550.54.15", cuda: int = 12040,
                 fail_init: bool = False, fail_on: set[str] | None = None) -> None:  # fmt: skip
        self.gpus = gpus
        self.driver = driver
        self.cuda = cuda
        self.fail_init = fail_init
        self.fail_on = fail_on or set()
        self.shutdown_called = False

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail_on:
            raise FakeNVMLError(f"{what}: Not Supported")

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise FakeNVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self) -> str:
        self._maybe_fail("driver")
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._maybe_fail("cuda")
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._maybe_fail("count")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        self._maybe_fail("name")
        return self.gpus[handle]["name"].encode()  # older pynvml returned bytes; detection accepts both

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:
        self._maybe_fail("memory")
        gpu = self.gpus[handle]
        return _Memory(gpu["total"], gpu["free"], gpu["total"] - gpu["free"])

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: int) -> int:
        self._maybe_fail("pcie")
        return self.gpus[handle].get("pcie_gen", 4)

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: int) -> int:
        self._maybe_fail("pcie")
        return self.gpus[handle].get("pcie_width", 16)

    def nvmlDeviceGetPowerManagementLimit(self, handle: int) -> int:
        self._maybe_fail("power")
        return self.gpus[handle].get("power_mw", 450_000)

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def nvmlDeviceGetMaxClockInfo(self, handle: int, clock_type: int) -> int:
        self._maybe_fail("clocks")
        key = {self.NVML_CLOCK_SM: "sm_clock", self.NVML_CLOCK_MEM: "mem_clock"}[clock_type]
        if key not in self.gpus[handle]:
            raise FakeNVMLError("Not Supported")
        return self.gpus[handle][key]

    def nvmlDeviceGetMemoryBusWidth(self, handle: int) -> int:
        self._maybe_fail("clocks")
        if "bus_bits" not in self.gpus[handle]:
            raise FakeNVMLError("Not Supported")
        return self.gpus[handle]["bus_bits"]


class FakePsutil:
    def __init__(self, *, cores: int = 8, threads: int = 16, total: int = 64 * GIB, available: int = 48 * GIB):
        self.cores, self.threads, self.total, self.available = cores, threads, total, available

    def cpu_count(self, logical: bool = True) -> int:
        return self.threads if logical else self.cores

    def virtual_memory(self) -> SimpleNamespace:
        return SimpleNamespace(total=self.total, available=self.available)


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD Ryzen 9 7950X 16-Core Processor
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512_bf16 avx512_vnni

processor\t: 1
model name\t: AMD Ryzen 9 7950X 16-Core Processor
"""


class FakeSources:
    """Same methods as probe.detect.Sources. Missing libraries raise ImportError, missing files OSError."""

    def __init__(self, *, system: str = "Linux", machine: str = "x86_64", nvml: Any = None, psutil: Any = None,
                 files: dict[str, str] | None = None, commands: dict[str, str] | None = None,
                 host_gbps: float = 61.4) -> None:  # fmt: skip
        self._system = system
        self._machine = machine
        self._nvml = nvml
        self._psutil = psutil
        self.files = {"/proc/cpuinfo": X86_CPUINFO} if files is None else files
        self.commands = commands or {}
        self.host_gbps = host_gbps

    def system(self) -> str:
        return self._system

    def release(self) -> str:
        return "6.8.0"

    def machine(self) -> str:
        return self._machine

    def python_version(self) -> str:
        return "3.11.9"

    def processor(self) -> str:
        return ""

    def psutil(self) -> Any:
        if self._psutil is None:
            raise ImportError("No module named 'psutil'")
        return self._psutil

    def nvml(self) -> Any:
        if self._nvml is None:
            raise ImportError("No module named 'pynvml'")
        return self._nvml

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def glob(self, pattern: str) -> list[str]:
        return sorted({p.rsplit("/", 1)[0] for p in self.files if fnmatch.fnmatch(p.rsplit("/", 1)[0], pattern)})

    def host_read_bandwidth(self, available_bytes: int | None, seconds: float) -> HostBandwidth:
        return HostBandwidth(gbps=self.host_gbps, buffer_bytes=512 * MIB, threads=16, passes=12, seconds=0.0087)

    def run(self, argv: list[str], timeout: float = 5.0) -> str:
        key = " ".join(argv)
        if key not in self.commands:
            raise subprocess.CalledProcessError(1, argv)
        return self.commands[key]
