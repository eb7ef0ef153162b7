"""Create or update a Model from a Hugging Face config.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.text import slugify

from catalog.importers import ARCHITECTURE_FIELDS, ConfigError, model_fields_from_hf_config, sha256_file
from catalog.models import Modality, Model


def upsert_model(*, slug: str, fields: dict[str, Any], citation: str, new_model: dict[str, Any]) -> tuple[Model, bool]:
    """Set architecture `fields` on the model `slug` (created from `new_model` when missing), each cited to `citation`.

    Raises CommandError with the validation messages when the result is not a valid Model.
    """
    model = Model.objects.filter(slug=slug).first()
    created = model is None
    if model is None:
        model = Model(slug=slug, **new_model)
    for name in ARCHITECTURE_FIELDS:
        if name in fields:
            setattr(model, name, fields[name])
    sources = dict(model.sources or {})
    sources.update({name: citation for name in ARCHITECTURE_FIELDS if fields.get(name) is not None})
    model.sources = sources
    try:
        model.full_clean()
    except ValidationError as exc:
        raise CommandError(f"model {slug!r} is not valid: {exc.message_dict}") from exc
    model.save()
    return model, created


class Command(BaseCommand):
    help = "Create or update a model's architecture fields from a Hugging Face config.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Path to a config.json")
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", help="Display name for a new model (default: the slug)")
        parser.add_argument("--family", help="Model family for a new model (default: config model_type)")
        parser.add_argument("--publisher", default="Unknown")
        parser.add_argument("--license", default="unknown")
        parser.add_argument("--source-repo", help="Hugging Face repository, e.g. google/gemma-3-270m")
        parser.add_argument("--source-url", help="URL of the config.json to cite (default: the file and its sha256)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        slug = options["slug"]
        if slugify(slug) != slug:
            raise CommandError(f"--slug {slug!r} is not a slug (try {slugify(slug)!r})")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CommandError(f"{path}: no such file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}: not valid JSON ({exc})") from exc
        try:
            fields = model_fields_from_hf_config(config)
        except ConfigError as exc:
            raise CommandError(f"{path}: {exc}") from exc

        citation = options["source_url"] or f"config.json {path.name} (sha256 {sha256_file(path)})"
        text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        new_model = {
            "name": options["name"] or slug,
            "family": options["family"] or str(text.get("model_type") or config.get("model_type") or "unknown"),
            "publisher": options["publisher"],
            "license": options["license"],
            "source_repo": options["source_repo"] or slug,
            "modality": Modality.VISION if config.get("vision_config") else Modality.TEXT,
        }
        with transaction.atomic():
            model, created = upsert_model(slug=slug, fields=fields, citation=citation, new_model=new_model)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} {model.slug}: {model.n_params:,} parameters (estimated from the shape)")
