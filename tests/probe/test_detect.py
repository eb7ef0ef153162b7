"""Detection against fake NVML, psutil, sysfs and sysctl readings (the `Sources` boundary only)."""

from __future__ import annotations

from probe.detect import describe_host, detect
from tests.probe.fakes import GIB, MIB, FakeNVML, FakePsutil, FakeSources

RTX_4090 = {"name": "NVIDIA GeForce RTX 4090", "total": 24564 * MIB, "free": 23000 * MIB, "power_mw": 450_000}
RTX_3060 = {"name": "NVIDIA GeForce RTX 3060", "total": 12288 * MIB, "free": 2048 * MIB, "pcie_gen": 3,
            "pcie_width": 8, "power_mw": 170_000}  # fmt: skip


def test_it_reports_a_cpu_only_machine():
    report = detect(FakeSources(nvml=FakeNVML([]), psutil=FakePsutil()))
    assert report.gpus == []
    assert report.cpu.model == "AMD Ryzen 9 7950X 16-Core Processor"
    assert (report.cpu.cores, report.cpu.threads) == (8, 16)
    assert report.cpu.features == ["AVX", "AVX2", "FMA", "F16C", "AVX-512", "AVX-512 BF16", "AVX-512 VNNI"]
    assert report.memory.total_bytes == 64 * GIB and report.memory.available_bytes == 48 * GIB
    assert report.os.system == "Linux"
    assert report.problems == []
    assert report.primary_gpu is None


def test_it_reads_one_nvidia_gpu():
    nvml = FakeNVML([RTX_4090])
    report = detect(FakeSources(nvml=nvml, psutil=FakePsutil()))
    (gpu,) = report.gpus
    assert gpu.vendor == "NVIDIA" and gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.memory_total_bytes == 24564 * MIB and gpu.memory_free_bytes == 23000 * MIB
    assert gpu.driver_version == "550.54.15" and gpu.cuda_version == "12.4"
    assert (gpu.pcie_gen, gpu.pcie_width) == (4, 16)
    assert gpu.power_limit_w == 450.0
    assert nvml.shutdown_called


def test_it_reads_two_different_gpus_and_picks_the_larger_as_primary():
    report = detect(FakeSources(nvml=FakeNVML([RTX_3060, RTX_4090]), psutil=FakePsutil()))
    assert [gpu.name for gpu in report.gpus] == ["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4090"]
    assert report.gpus[0].memory_free_bytes == 2048 * MIB  # another process holds most of it
    assert (report.gpus[0].pcie_gen, report.gpus[0].pcie_width) == (3, 8)
    assert report.primary_gpu.name == "NVIDIA GeForce RTX 4090"


def test_it_survives_nvml_failing_to_start():
    report = detect(FakeSources(nvml=FakeNVML([RTX_4090], fail_init=True), psutil=FakePsutil()))
    assert report.gpus == []
    assert [p.what for p in report.problems] == ["nvidia"]
    assert "Driver Not Loaded" in report.problems[0].reason


def test_it_survives_nvml_errors_on_single_queries():
    nvml = FakeNVML([RTX_4090], fail_on={"memory", "power", "pcie", "cuda"})
    report = detect(FakeSources(nvml=nvml, psutil=FakePsutil()))
    (gpu,) = report.gpus
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.memory_total_bytes is None and gpu.power_limit_w is None and gpu.cuda_version is None
    assert [p.what for p in report.problems] == ["nvidia.gpu0.memory"]
    assert nvml.shutdown_called


def test_it_survives_nvml_failing_to_count_devices():
    report = detect(FakeSources(nvml=FakeNVML([RTX_4090], fail_on={"count"}), psutil=FakePsutil()))
    assert report.gpus == [] and report.problems[0].what == "nvidia"


def test_it_survives_missing_libraries_and_files():
    report = detect(FakeSources(nvml=None, psutil=None, files={}))
    assert report.gpus == []
    assert report.memory.total_bytes is None
    whats = {p.what for p in report.problems}
    assert {"nvidia", "memory", "cpu.cores", "cpu.model"} <= whats
    assert "pynvml" in next(p.reason for p in report.problems if p.what == "nvidia")
    assert describe_host(FakeSources(nvml=None, psutil=None, files={}))  # still one line


def test_it_reads_apple_silicon_from_sysctl():
    sources = FakeSources(
        system="Darwin",
        machine="arm64",
        psutil=FakePsutil(cores=12, threads=12, total=96 * GIB),
        files={},
        commands={"sysctl -n machdep.cpu.brand_string": "Apple M2 Max\n", "sysctl -n hw.memsize": f"{96 * GIB}\n"},
    )
    report = detect(sources)
    assert report.cpu.model == "Apple M2 Max" and report.cpu.features == ["NEON"]
    (gpu,) = report.gpus
    assert gpu.vendor == "Apple" and gpu.name == "Apple M2 Max"
    assert gpu.memory_total_bytes == 96 * GIB and gpu.unified_memory
    assert report.problems == []
    assert "Apple M2 Max (96.0 GiB unified)" in describe_host(sources)


def test_it_reads_an_amd_gpu_from_sysfs():
    files = {
        "/proc/cpuinfo": "model name\t: AMD Ryzen 7 7700X\nflags\t: avx avx2\n",
        "/sys/class/drm/card0/device/vendor": "0x10de\n",  # an NVIDIA card NVML did not see: ignored here
        "/sys/class/drm/card1/device/vendor": "0x1002\n",
        "/sys/class/drm/card1/device/device": "0x744c\n",
        "/sys/class/drm/card1/device/mem_info_vram_total": f"{24 * GIB}\n",
        "/sys/class/drm/card1/device/mem_info_vram_used": f"{1 * GIB}\n",
    }
    rocm = '{"card1": {"Card Series": "Navi 31 [Radeon RX 7900 XT/7900 XTX]", "Card SKU": "D70701"}}'
    sources = FakeSources(nvml=FakeNVML([]), psutil=FakePsutil(), files=files,
                          commands={"rocm-smi --showproductname --json": rocm})  # fmt: skip
    report = detect(sources)
    (gpu,) = report.gpus
    assert gpu.vendor == "AMD" and gpu.source == "sysfs"
    assert gpu.name == "Navi 31 [Radeon RX 7900 XT/7900 XTX]"
    assert gpu.memory_total_bytes == 24 * GIB and gpu.memory_free_bytes == 23 * GIB


def test_it_names_an_amd_gpu_by_pci_id_without_rocm_smi():
    files = {
        "/sys/class/drm/card0/device/vendor": "0x1002\n",
        "/sys/class/drm/card0/device/device": "0x73bf\n",
        "/sys/class/drm/card0/device/mem_info_vram_total": f"{16 * GIB}\n",
    }
    report = detect(FakeSources(nvml=FakeNVML([]), psutil=FakePsutil(), files=files))
    (gpu,) = report.gpus
    assert gpu.name == "AMD GPU (PCI device 0x73bf)" and gpu.memory_free_bytes is None
    assert "amd.card0.name" in {p.what for p in report.problems}


def test_it_describes_the_host_in_one_line():
    line = describe_host(FakeSources(nvml=FakeNVML([RTX_4090]), psutil=FakePsutil()))
    assert line == (
        "AMD Ryzen 9 7950X 16-Core Processor · 8 cores / 16 threads · AVX-512 · 64.0 GiB RAM"
        " · NVIDIA GeForce RTX 4090 (24.0 GiB VRAM)"
    )
    assert describe_host(FakeSources(nvml=FakeNVML([]), psutil=FakePsutil())).endswith("· no NVIDIA GPU")


def test_it_describes_this_real_machine_without_raising():
    assert "RAM" in describe_host()


def test_it_serialises_the_report():
    data = detect(FakeSources(nvml=FakeNVML([RTX_4090]), psutil=FakePsutil())).to_dict()
    assert data["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"
    assert set(data) == {"os", "cpu", "memory", "gpus", "problems"}
