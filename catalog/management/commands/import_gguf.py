"""Create or update a Model and its Quantization from a GGUF file's header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.text import slugify

from catalog.importers import GgufError, model_fields_from_gguf, sha256_file
from catalog.management.commands.import_hf_config import upsert_model
from catalog.models import Modality, QuantFormat, Quantization


class Command(BaseCommand):
    help = "Create or update a model and its quantization (exact tensor bytes) from a GGUF file's header."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Path to a .gguf file")
        parser.add_argument("--slug", help="Model slug (default: from general.name)")
        parser.add_argument("--name", help="Display name for a new model (default: general.name)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            summary = model_fields_from_gguf(path)
        except GgufError as exc:
            raise CommandError(str(exc)) from exc
        slug = options["slug"] or slugify(summary.name)
        if not slug or slugify(slug) != slug:
            raise CommandError(f"--slug {slug!r} is not a slug")

        citation = f"GGUF header of {summary.file_name} (sha256 {sha256_file(path)})"
        new_model = {
            "name": options["name"] or summary.name,
            "family": summary.architecture,
            "publisher": "Unknown",
            "license": "unknown",
            "source_repo": f"gguf:{summary.file_name}",
            "modality": Modality.TEXT,
        }
        with transaction.atomic():
            model, created = upsert_model(slug=slug, fields=summary.fields, citation=citation, new_model=new_model)
            quant = Quantization.objects.filter(model=model, format=QuantFormat.GGUF, name=summary.quant_name).first()
            quant = quant or Quantization(model=model, format=QuantFormat.GGUF, name=summary.quant_name)
            quant.bits_per_weight = round(summary.bits_per_weight, 4)
            quant.tensor_bytes = summary.tensor_bytes
            quant.file_bytes = summary.file_bytes
            quant.file_name = summary.file_name
            quant.source = citation
            try:
                quant.full_clean(validate_constraints=False)
            except ValidationError as exc:
                raise CommandError(f"quantization {summary.quant_name!r} is not valid: {exc.message_dict}") from exc
            quant.save()
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} {model.slug} {quant.name}: {summary.n_params:,} parameters, "
            f"{summary.tensor_bytes:,} tensor bytes, {summary.bits_per_weight:.3f} bits per weight"
        )
