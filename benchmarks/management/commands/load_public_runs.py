"""Load the published llama.cpp measurements of benchmarks/seed/public_runs.csv as accepted community runs.

Every row goes through `RunForm` and `services.submit_cleaned`, the path of any submission (channel "seed", so a run
that passes the checks is accepted; one that fails them is stored flagged, as any other would be). Idempotent: a row
whose payload fingerprint is already stored is skipped before anything is written, so a second run writes nothing.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from benchmarks import services
from benchmarks.forms import RunForm
from benchmarks.models import BenchmarkRun, Channel
from catalog.models import Hardware, Model

PUBLIC_RUNS = Path(__file__).resolve().parents[2] / "seed" / "public_runs.csv"
REQUIRED = ("source", "source_url", "hardware", "gpu_count", "model_slug", "quant", "backend", "avg_ts")
OPTIONAL_NUMBERS = ("n_gpu_layers", "n_batch", "n_ubatch")


def read_rows(path: Path) -> list[dict[str, str]]:
    """The data rows of the file (lines starting with '#' are its header comment)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(f"{path}: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    for number, row in enumerate(rows, start=1):
        missing = [name for name in REQUIRED if not (row.get(name) or "").strip()]
        if missing:
            raise CommandError(f"{path}: row {number} lacks {', '.join(missing)}")
        if not row["source_url"].startswith("https://"):
            raise CommandError(f"{path}: row {number}: source_url must be an https URL")
    return rows


def gpu_count(row: dict[str, str]) -> int:
    return int(row["gpu_count"])


def payload(row: dict[str, str]) -> dict[str, Any]:
    """The submission (RunForm's fields) for one row."""
    count = gpu_count(row)
    notes = [f"Published llama.cpp result ({row['source']}), read from {row['source_url']}."]
    notes.append(f"GPU count: {count}" + (" (llama.cpp's layer split across them)." if count > 1 else "."))
    if row.get("date"):
        notes.append(f"test_time is the date the source published it ({row['date']}); the run is not later.")
    if not row.get("stddev_ts") or float(row["stddev_ts"]) == 0:
        notes.append("The source gives no standard deviation (stored as 0).")
    if row.get("note"):
        notes.append(row["note"])
    data: dict[str, Any] = {
        "model_slug": row["model_slug"],
        "quant": row["quant"],
        "hardware": row["hardware"],
        "runtime": "llama.cpp",
        "runtime_version": row.get("build_number", ""),
        "build_commit": row.get("build_commit", ""),
        "backend": row["backend"],
        "n_prompt": row.get("n_prompt") or 0,
        "n_gen": row.get("n_gen") or 0,
        "n_depth": row.get("n_depth") or 0,
        "avg_ts": row["avg_ts"],
        "stddev_ts": row.get("stddev_ts") or 0,
        "gpu_info": row.get("device", ""),
        "source_url": row["source_url"],
        "notes": " ".join(notes),
    }
    if count > 1 and not data["gpu_info"].startswith(f"{count}x "):
        data["gpu_info"] = f"{count}x {data['gpu_info']}"
    for name in OPTIONAL_NUMBERS:
        if row.get(name):
            data[name] = row[name]
    if row.get("flash_attn") in ("0", "1"):
        data["flash_attn"] = row["flash_attn"] == "1"
    if row.get("date"):
        data["test_time"] = f"{row['date']}T00:00:00Z"
    return data


class _RunForm(RunForm):
    """RunForm with the catalog's models looked up once for the whole file, not once per row."""

    def __init__(self, data: dict[str, Any], *, models: dict[str, Model]) -> None:
        super().__init__(data)
        self.models = models

    def clean_model_slug(self) -> Model:
        model = self.models.get(self.cleaned_data["model_slug"])
        return model if model is not None else super().clean_model_slug()


@dataclass
class LoadResult:
    stored: int = 0
    already: int = 0
    unmapped: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


def load(*, path: Path = PUBLIC_RUNS) -> LoadResult:
    """Store every row not stored before. Rows naming a model or hardware missing from the catalog are skipped and
    listed in `unmapped`; a row the form refuses stops the load (the file is wrong) and nothing is written."""
    rows = read_rows(path)
    models = {model.slug: model for model in Model.objects.all()}
    hardware = set(Hardware.objects.values_list("slug", flat=True))
    stored_hashes = set(BenchmarkRun.objects.filter(channel=Channel.SEED).values_list("payload_sha256", flat=True))
    result = LoadResult()
    with transaction.atomic():
        for number, row in enumerate(rows, start=1):
            if row["model_slug"] not in models or row["hardware"] not in hardware:
                result.unmapped.append(f"row {number}: {row['model_slug']} on {row['hardware']}")
                continue
            form = _RunForm(payload(row), models=models)
            if not form.is_valid():
                raise CommandError(f"{path}: row {number} ({row['source_url']}): {dict(form.errors)}")
            if services.payload_sha256(form.cleaned_data) in stored_hashes:
                result.already += 1
                continue
            try:
                run, _ = services.submit_cleaned(cleaned=form.cleaned_data, channel=Channel.SEED, submitter=None)
            except services.Duplicate:
                result.already += 1
                continue
            stored_hashes.add(run.payload_sha256)
            result.stored += 1
            result.statuses[run.status] += 1
    return result


class Command(BaseCommand):
    help = "Load published llama.cpp measurements (benchmarks/seed/public_runs.csv); rows already loaded are skipped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=PUBLIC_RUNS)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        result = load(path=file)
        for line in result.unmapped:
            self.stderr.write(f"Skipped (not in the catalog): {line}")
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(result.statuses.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Public runs: {result.stored} stored ({statuses or 'none'}), {result.already} already there, "
                f"{len(result.unmapped)} not in the catalog."
            )
        )
