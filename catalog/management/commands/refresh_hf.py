"""Re-read every imported model from its repository: new quant files, new revisions. Safe to run from cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.hf import CLI_LIMITS, HubImportError, HubLimits, read_repository, store_snapshot
from catalog.models import Model, ReviewStatus


class Command(BaseCommand):
    help = (
        "Re-read imported models from the Hub (each at the branch or tag it was imported from) and store what "
        "changed. One model's failure is reported and the others go on; exit status 1 when any failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Only these models (default: every imported model)")
        parser.add_argument("--timeout", type=float, default=CLI_LIMITS.call_timeout_s)
        parser.add_argument("--total-timeout", type=float, default=CLI_LIMITS.total_s, help="Per model")

    def handle(self, *args: Any, **options: Any) -> None:
        limits = HubLimits(call_timeout_s=options["timeout"], total_s=options["total_timeout"])
        models = Model.all_objects.imported().exclude(source_repo="").order_by("slug")
        if options["slugs"]:
            models = models.filter(slug__in=options["slugs"])
            missing = set(options["slugs"]) - set(models.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"not imported models: {', '.join(sorted(missing))}")
        failed = 0
        for model in models:
            try:
                snapshot = read_repository(repo_id=model.source_repo, revision=model.import_ref or None, limits=limits)
                result = store_snapshot(snapshot, status=ReviewStatus(model.review_status))
            except HubImportError as exc:
                failed += 1
                self.stderr.write(f"{model.slug}: {exc}")
                continue
            state = "updated" if result.changed else "unchanged"
            self.stdout.write(f"{model.slug}: {state} at {snapshot.sha[:12]}, {len(snapshot.quants)} quantizations")
        if failed:
            raise CommandError(f"{failed} of {models.count()} imported models could not be refreshed")
