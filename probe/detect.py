"""Detect the machine: OS, CPU, RAM and GPUs (NVIDIA through NVML, Apple Silicon, AMD through sysfs or rocm-smi).

Every read of the outside world goes through one `Sources` object, so tests replace that boundary only.
Detection never raises: whatever could not be read is listed in `HostReport.problems` with the reason.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.bandwidth import HostBandwidth

GIB = 1024**3

# Instruction-set features worth naming, in display order: /proc/cpuinfo flag -> label.
_X86_FEATURES: tuple[tuple[str, str], ...] = (
    ("avx", "AVX"),
    ("avx2", "AVX2"),
    ("fma", "FMA"),
    ("f16c", "F16C"),
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("amx_tile", "AMX"),
)
# ARM /proc/cpuinfo "Features" -> label.
_ARM_FEATURES: tuple[tuple[str, str], ...] = (
    ("asimd", "NEON"),
    ("asimddp", "NEON dot product"),
    ("sve", "SVE"),
    ("sve2", "SVE2"),
    ("i8mm", "I8MM"),
    ("bf16", "BF16"),
)


class Sources:
    """The one boundary between detection and the machine. Tests pass a fake with the same methods."""

    def system(self) -> str:
        return platform.system()

    def release(self) -> str:
        return platform.release()

    def machine(self) -> str:
        return platform.machine()

    def python_version(self) -> str:
        return platform.python_version()

    def processor(self) -> str:
        return platform.processor()

    def psutil(self) -> ModuleType:
        import psutil

        return psutil

    def nvml(self) -> ModuleType:
        import pynvml

        return pynvml

    def read_text(self, path: str) -> str:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def glob(self, pattern: str) -> list[str]:
        return sorted(_glob.glob(pattern))

    def host_read_bandwidth(self, available_bytes: int | None, seconds: float) -> HostBandwidth:
        """Measure this machine's RAM read bandwidth (probe.bandwidth): a boundary, as it times the hardware."""
        from probe.bandwidth import measure_host_bandwidth

        return measure_host_bandwidth(available_bytes=available_bytes, seconds=seconds)

    def run(self, argv: list[str], timeout: float = 5.0) -> str:
        """Run a command and return its stdout; raises OSError or subprocess errors when it fails."""
        if shutil.which(argv[0]) is None:
            raise FileNotFoundError(f"{argv[0]} is not installed")
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
        return completed.stdout


@dataclass(frozen=True)
class OSInfo:
    system: str
    release: str
    machine: str
    python: str


@dataclass(frozen=True)
class CPUInfo:
    model: str
    cores: int | None
    threads: int | None
    features: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int | None
    available_bytes: int | None


@dataclass(frozen=True)
class GPUInfo:
    vendor: str
    name: str
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    pcie_gen: int | None = None
    pcie_width: int | None = None
    power_limit_w: float | None = None
    unified_memory: bool = False
    source: str = ""
    # NVML's maximum memory and SM clocks and the memory bus width: what the GPU's bandwidth really is.
    memory_clock_mhz: int | None = None
    memory_bus_bits: int | None = None
    sm_clock_mhz: int | None = None

    @property
    def bandwidth_gbps(self) -> float | None:
        """Peak memory bandwidth from the clocks: double data rate, 2 x clock x bus width / 8 (an RTX 4090 reports
        10,501 MHz and 384 bits: 1,008 GB/s, its datasheet figure)."""
        if not self.memory_clock_mhz or not self.memory_bus_bits:
            return None
        return 2 * self.memory_clock_mhz * 1e6 * self.memory_bus_bits / 8 / 1e9


@dataclass(frozen=True)
class Problem:
    what: str
    reason: str


@dataclass
class HostReport:
    os: OSInfo
    cpu: CPUInfo
    memory: MemoryInfo
    gpus: list[GPUInfo] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def primary_gpu(self) -> GPUInfo | None:
        """The GPU with the most memory, or None on a CPU-only machine."""
        if not self.gpus:
            return None
        return max(self.gpus, key=lambda gpu: gpu.memory_total_bytes or 0)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- OS and CPU --------------------------------------------------------------------------------------------------


def _detect_os(sources: Sources, problems: list[Problem]) -> OSInfo:
    values = []
    for name in ("system", "release", "machine", "python_version"):
        try:
            values.append(str(getattr(sources, name)()))
        except Exception as exc:
            problems.append(Problem(f"os.{name}", _reason(exc)))
            values.append("unknown")
    return OSInfo(*values)


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first value of each key in /proc/cpuinfo (the first processor block describes them all)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _features_from_flags(flags: set[str], table: tuple[tuple[str, str], ...]) -> list[str]:
    return [label for flag, label in table if flag in flags]


def _detect_cpu(sources: Sources, os_info: OSInfo, problems: list[Problem]) -> CPUInfo:
    model = ""
    features: list[str] = []
    cores: int | None = None
    threads: int | None = None
    if os_info.system == "Darwin":
        try:
            model = sources.run(["sysctl", "-n", "machdep.cpu.brand_string"]).strip()
        except Exception as exc:
            problems.append(Problem("cpu.model", f"sysctl machdep.cpu.brand_string: {_reason(exc)}"))
        if os_info.machine in ("arm64", "aarch64"):
            features = ["NEON"]  # Every Apple Silicon core has Advanced SIMD.
        else:
            try:
                darwin_flags = sources.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"])
                flags = {flag.lower() for flag in darwin_flags.split()}  # "AVX1.0 FMA AVX2 AVX512F ..."
                flags |= {"avx"} if "avx1.0" in flags else set()
                features = _features_from_flags(flags, _X86_FEATURES)
            except Exception as exc:
                problems.append(Problem("cpu.features", f"sysctl machdep.cpu.features: {_reason(exc)}"))
    elif os_info.system == "Linux":
        try:
            info = _cpuinfo_fields(sources.read_text("/proc/cpuinfo"))
            model = info.get("model name") or info.get("Model") or info.get("Hardware") or ""
            if "flags" in info:
                features = _features_from_flags(set(info["flags"].split()), _X86_FEATURES)
            elif "Features" in info:
                features = _features_from_flags(set(info["Features"].split()), _ARM_FEATURES)
        except Exception as exc:
            problems.append(Problem("cpu.model", f"/proc/cpuinfo: {_reason(exc)}"))
    if not model:
        try:
            model = sources.processor() or ""
        except Exception as exc:
            problems.append(Problem("cpu.model", _reason(exc)))
    try:
        psutil = sources.psutil()
        cores = psutil.cpu_count(logical=False)
        threads = psutil.cpu_count(logical=True)
    except Exception as exc:
        problems.append(Problem("cpu.cores", f"psutil: {_reason(exc)}"))
        try:
            threads = os.cpu_count()
        except Exception:  # pragma: no cover - os.cpu_count does not raise in practice
            threads = None
    return CPUInfo(model=model or "unknown CPU", cores=cores, threads=threads, features=features)


def _detect_memory(sources: Sources, problems: list[Problem]) -> MemoryInfo:
    try:
        memory = sources.psutil().virtual_memory()
        return MemoryInfo(total_bytes=int(memory.total), available_bytes=int(memory.available))
    except Exception as exc:
        problems.append(Problem("memory", f"psutil: {_reason(exc)}"))
        return MemoryInfo(total_bytes=None, available_bytes=None)


# --- GPUs --------------------------------------------------------------------------------------------------------


def _nvml_optional(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:
        return None


def _positive_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _detect_nvidia(sources: Sources, problems: list[Problem]) -> list[GPUInfo]:
    try:
        nvml = sources.nvml()
    except Exception as exc:
        problems.append(Problem("nvidia", f"pynvml (nvidia-ml-py) not importable: {_reason(exc)}"))
        return []
    try:
        nvml.nvmlInit()
    except Exception as exc:
        problems.append(Problem("nvidia", f"NVML did not start (no NVIDIA driver?): {_reason(exc)}"))
        return []
    gpus: list[GPUInfo] = []
    try:
        driver = _nvml_optional(nvml.nvmlSystemGetDriverVersion)
        cuda_raw = _nvml_optional(nvml.nvmlSystemGetCudaDriverVersion)
        cuda = f"{cuda_raw // 1000}.{(cuda_raw % 1000) // 10}" if isinstance(cuda_raw, int) and cuda_raw else None
        count = nvml.nvmlDeviceGetCount()
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(nvml.nvmlDeviceGetName(handle))
            except Exception as exc:
                problems.append(Problem(f"nvidia.gpu{index}", _reason(exc)))
                continue
            total = free = None
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                total, free = int(memory.total), int(memory.free)
            except Exception as exc:
                problems.append(Problem(f"nvidia.gpu{index}.memory", _reason(exc)))
            power_mw = _nvml_optional(nvml.nvmlDeviceGetPowerManagementLimit, handle)
            mem_clock = _nvml_optional(nvml.nvmlDeviceGetMaxClockInfo, handle, getattr(nvml, "NVML_CLOCK_MEM", 2))
            sm_clock = _nvml_optional(nvml.nvmlDeviceGetMaxClockInfo, handle, getattr(nvml, "NVML_CLOCK_SM", 1))
            bus_bits = _nvml_optional(nvml.nvmlDeviceGetMemoryBusWidth, handle)
            gpus.append(
                GPUInfo(
                    vendor="NVIDIA",
                    name=name,
                    memory_total_bytes=total,
                    memory_free_bytes=free,
                    driver_version=_text(driver) if driver is not None else None,
                    cuda_version=cuda,
                    pcie_gen=_nvml_optional(nvml.nvmlDeviceGetCurrPcieLinkGeneration, handle),
                    pcie_width=_nvml_optional(nvml.nvmlDeviceGetCurrPcieLinkWidth, handle),
                    power_limit_w=power_mw / 1000 if isinstance(power_mw, (int, float)) else None,
                    source="NVML",
                    memory_clock_mhz=_positive_int(mem_clock),
                    memory_bus_bits=_positive_int(bus_bits),
                    sm_clock_mhz=_positive_int(sm_clock),
                )
            )
    except Exception as exc:
        problems.append(Problem("nvidia", _reason(exc)))
    finally:
        _nvml_optional(nvml.nvmlShutdown)
    return gpus


def _detect_apple(sources: Sources, os_info: OSInfo, cpu: CPUInfo, problems: list[Problem]) -> list[GPUInfo]:
    if os_info.system != "Darwin" or os_info.machine not in ("arm64", "aarch64"):
        return []
    total: int | None = None
    try:
        total = int(sources.run(["sysctl", "-n", "hw.memsize"]).strip())
    except Exception as exc:
        problems.append(Problem("apple.memory", f"sysctl hw.memsize: {_reason(exc)}"))
    name = cpu.model if cpu.model != "unknown CPU" else "Apple Silicon"
    return [GPUInfo(vendor="Apple", name=name, memory_total_bytes=total, unified_memory=True, source="sysctl")]


def _rocm_names(sources: Sources) -> dict[str, str]:
    """card name -> product name from `rocm-smi --showproductname --json`, empty when rocm-smi is absent."""
    try:
        data = json.loads(sources.run(["rocm-smi", "--showproductname", "--json"]))
    except Exception:
        return {}
    names = {}
    for card, fields in data.items():
        if isinstance(fields, dict):
            name = fields.get("Card Series") or fields.get("Card series") or fields.get("Card SKU") or ""
            if name:
                names[card] = str(name)
    return names


def _detect_amd(sources: Sources, problems: list[Problem]) -> list[GPUInfo]:
    try:
        devices = [path for path in sources.glob("/sys/class/drm/card*/device") if "-" not in path.split("/")[-2]]
    except Exception as exc:
        problems.append(Problem("amd", f"sysfs: {_reason(exc)}"))
        return []
    gpus: list[GPUInfo] = []
    rocm: dict[str, str] | None = None
    for device in devices:
        try:
            if sources.read_text(f"{device}/vendor").strip().lower() != "0x1002":
                continue
        except Exception:
            continue
        card = device.split("/")[-2]
        try:
            total = int(sources.read_text(f"{device}/mem_info_vram_total").strip())
        except Exception as exc:
            problems.append(Problem(f"amd.{card}.memory", f"mem_info_vram_total: {_reason(exc)}"))
            total = None
        free = None
        try:
            used = int(sources.read_text(f"{device}/mem_info_vram_used").strip())
            free = total - used if total is not None else None
        except Exception:
            pass
        name = ""
        with contextlib.suppress(Exception):
            name = sources.read_text(f"{device}/product_name").strip()
        if not name:
            rocm = _rocm_names(sources) if rocm is None else rocm
            name = rocm.get(card, "")
        if not name:
            try:
                device_id = sources.read_text(f"{device}/device").strip()
            except Exception:
                device_id = "unknown"
            name = f"AMD GPU (PCI device {device_id})"
            problems.append(Problem(f"amd.{card}.name", "no product name in sysfs and rocm-smi gave none"))
        gpus.append(GPUInfo(vendor="AMD", name=name, memory_total_bytes=total, memory_free_bytes=free, source="sysfs"))
    return gpus


# --- Public API --------------------------------------------------------------------------------------------------


def detect(sources: Sources | None = None) -> HostReport:
    """Read the machine. Never raises: failures become `problems`."""
    sources = sources or Sources()
    problems: list[Problem] = []
    os_info = _detect_os(sources, problems)
    cpu = _detect_cpu(sources, os_info, problems)
    memory = _detect_memory(sources, problems)
    gpus: list[GPUInfo] = []
    if os_info.system == "Darwin":
        gpus += _detect_apple(sources, os_info, cpu, problems)
    else:
        gpus += _detect_nvidia(sources, problems)
        if os_info.system == "Linux":
            gpus += _detect_amd(sources, problems)
    return HostReport(os=os_info, cpu=cpu, memory=memory, gpus=gpus, problems=problems)


def _gib(value: int | None) -> str:
    return f"{value / GIB:.1f} GiB" if value is not None else "? GiB"


def summarize(report: HostReport) -> str:
    """One line: CPU · cores/threads · best vector feature · RAM · GPUs."""
    cpu = report.cpu
    parts = [cpu.model]
    cores = "?" if cpu.cores is None else str(cpu.cores)
    threads = "?" if cpu.threads is None else str(cpu.threads)
    parts.append(f"{cores} cores / {threads} threads")
    best = next((f for f in ("AMX", "AVX-512", "AVX2", "AVX", "SVE2", "SVE", "NEON") if f in cpu.features), None)
    if best:
        parts.append(best)
    parts.append(f"{_gib(report.memory.total_bytes)} RAM")
    if report.gpus:
        for gpu in report.gpus:
            kind = "unified" if gpu.unified_memory else "VRAM"
            parts.append(f"{gpu.name} ({_gib(gpu.memory_total_bytes)} {kind})")
    elif report.os.system == "Darwin":
        parts.append("no GPU found")
    else:
        parts.append("no NVIDIA GPU")
    return " · ".join(parts)


def describe_host(sources: Sources | None = None) -> str:
    """A one-line description of this machine; never raises."""
    try:
        return summarize(detect(sources))
    except Exception as exc:  # Defensive: detect() already absorbs failures.
        return f"{platform.machine() or 'unknown machine'} (hardware detection failed: {_reason(exc)})"
