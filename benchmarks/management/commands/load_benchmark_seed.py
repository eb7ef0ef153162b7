"""Load the seeded benchmark runs of benchmarks/seed/runs.toml (each one cites its public source)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from benchmarks import services
from benchmarks.models import Channel

SEED = Path(__file__).resolve().parents[2] / "seed" / "runs.toml"
TESTS = {"pp512": {"n_prompt": 512, "n_gen": 0}, "tg128": {"n_prompt": 0, "n_gen": 128}}


def seed_payloads(entry: dict[str, Any]) -> list[dict[str, Any]]:
    if not entry.get("source_url"):
        raise CommandError(f"Seeded run without a source: {entry}")
    base = {k: v for k, v in entry.items() if k not in TESTS}
    base["notes"] = "Seeded from the cited source, which publishes means only (no samples or stddev)."
    return [{**base, **shape, "avg_ts": entry[test], "stddev_ts": 0} for test, shape in TESTS.items() if test in entry]


class Command(BaseCommand):
    help = "Load seeded benchmark runs (public sources only); runs already loaded are skipped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", type=Path, default=SEED)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        entries = tomllib.loads(file.read_text())["runs"]
        stored = skipped = 0
        for entry in entries:
            for payload in seed_payloads(entry):
                try:
                    run, _ = services.submit_run(data=payload, channel=Channel.SEED, submitter=None)
                except services.Duplicate:
                    skipped += 1
                    continue
                except services.Invalid as exc:
                    raise CommandError(f"{entry['source_url']}: {exc.errors}") from exc
                stored += 1
                self.stdout.write(f"#{run.pk} {run} -> {run.status}: {run.status_reason}")
        self.stdout.write(self.style.SUCCESS(f"Benchmark seed: {stored} stored, {skipped} already there."))
