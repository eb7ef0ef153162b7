"""Import a model from a Hugging Face repository: every GGUF file's exact size, config.json or a GGUF header."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.hf import CLI_LIMITS, HubImportError, HubLimits, import_repository
from catalog.models import ReviewStatus


class Command(BaseCommand):
    help = (
        "Import OWNER/NAME from the Hugging Face Hub (HF_ENDPOINT is honoured; RIGFIT_HF_TOKEN for gated or private "
        "repositories). The model is marked 'imported, not reviewed'; nothing is stored when any step fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("repo_id", help="Repository id, e.g. unsloth/gemma-3-270m-it-GGUF")
        parser.add_argument("--revision", help="Branch, tag or commit (default: main)")
        parser.add_argument(
            "--timeout", type=float, default=CLI_LIMITS.call_timeout_s, help="Seconds to wait for each HTTP answer"
        )
        parser.add_argument(
            "--total-timeout", type=float, default=CLI_LIMITS.total_s, help="Seconds the whole read may take"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["timeout"] <= 0 or options["total_timeout"] <= 0:
            raise CommandError("--timeout and --total-timeout must be positive")
        limits = HubLimits(call_timeout_s=options["timeout"], total_s=options["total_timeout"])
        try:
            result = import_repository(
                repo_id=options["repo_id"], revision=options["revision"], status=ReviewStatus.UNREVIEWED, limits=limits
            )
        except HubImportError as exc:
            raise CommandError(str(exc)) from exc
        model, snapshot = result.model, result.snapshot
        verb = "Created" if result.created else ("Updated" if result.changed else "Unchanged")
        self.stdout.write(
            f"{verb} {model.slug} from {snapshot.repo_id}@{snapshot.sha[:12]}: {model.family}, "
            f"{model.n_params:,} parameters, {len(snapshot.quants)} quantizations ({model.provenance})"
        )
        for quant in snapshot.quants:
            exact = f", {quant.tensor_bytes:,} tensor bytes" if quant.tensor_bytes else ""
            self.stdout.write(
                f"  {quant.format} {quant.name}: {quant.file_bytes:,} bytes in {quant.n_files} file(s){exact}"
            )
        for note in snapshot.notes:
            self.stdout.write(f"  note: {note}")
