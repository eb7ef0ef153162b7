"""Vision-language models: how long one image takes on a device, and the task benchmarks their publishers printed.

Time per image, estimated from the catalog's speed model (catalog.speed), in three parts:

- the vision encoder: a ViT runs each of its parameters over every image patch, as prefill runs the text model's
  over every prompt token. Its time is the speed model's prefill time for `image_tokens` tokens with F16 weights (the
  encoder file, mmproj, is F16) scaled by vision parameters / text parameters. One patch per image token: a model
  that merges patches into fewer tokens (SmolVLM's pixel shuffle) runs its encoder over more patches than this counts;
- prefill of the image tokens through the text model, at the chosen quant;
- a short caption, CAPTION_TOKENS tokens decoded after the image.

Pure apart from reading the task-score file; no Django.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from catalog import speed
from catalog.fit import DeviceSpec, FitOptions, FitResult, ModelShape, QuantSpec, Verdict, placement_of

# A short caption: about two dozen words ("A red car parked on a wet street beside ..."), ~32 tokens.
CAPTION_TOKENS = 32
TASK_SCORES_FILE = Path(__file__).resolve().parent / "seed" / "vlm_task_scores.toml"


@dataclass(frozen=True, slots=True)
class ImageTime:
    """Estimated seconds for one image: encoder, prefill of its tokens, and a CAPTION_TOKENS caption."""

    encoder_s: float
    prefill_s: float
    caption_s: float
    caption_tokens: int = CAPTION_TOKENS

    @property
    def total_s(self) -> float:
        return self.encoder_s + self.prefill_s + self.caption_s


def image_seconds(
    shape: ModelShape,
    quant: QuantSpec,
    device: DeviceSpec,
    options: FitOptions,
    result: FitResult,
    speed_model: speed.SpeedModel,
    *,
    caption_tokens: int = CAPTION_TOKENS,
) -> ImageTime | None:
    """Seconds to describe one image on `device` where `result` placed the model; None for a text-only model, a model
    that does not fit, or a device the speed model has no prompt-speed figure for."""
    if not shape.vision_params or not shape.image_tokens or result.verdict == Verdict.DOES_NOT_FIT:
        return None
    tokens = shape.image_tokens
    text_params = shape.n_params - shape.vision_params
    if text_params <= 0:
        return None
    place = placement_of(result)
    text_tps = speed.prefill_tps(shape, device, speed_model, quant, n_prompt=tokens, place=place)
    f16_tps = speed.prefill_tps(shape, device, speed_model, QuantSpec("F16"), n_prompt=tokens)
    decode_tps = speed.decode_tps_at(
        shape, quant, device, options, result, speed_model, depth=tokens + caption_tokens // 2
    )
    if not text_tps or not f16_tps or not decode_tps:
        return None
    encoder_s = tokens / f16_tps * shape.vision_params / text_params
    return ImageTime(
        encoder_s=encoder_s,
        prefill_s=tokens / text_tps,
        caption_s=caption_tokens / decode_tps,
        caption_tokens=caption_tokens,
    )


@dataclass(frozen=True, slots=True)
class TaskRelease:
    release: str
    scores: tuple[str | None, ...]  # one per column, None where the source prints none


@dataclass(frozen=True, slots=True)
class TaskTable:
    model: str
    source: str
    note: str
    columns: tuple[str, ...]
    releases: tuple[TaskRelease, ...]


@lru_cache(maxsize=4)
def _tables(path: Path) -> dict[str, TaskTable]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    tables: dict[str, TaskTable] = {}
    for raw in data.get("tables", []):
        columns = tuple(raw["columns"])
        unknown = {name for release in raw["releases"] for name in release["scores"]} - set(columns)
        if unknown:
            raise ValueError(f"{raw['model']}: scores for undeclared columns {sorted(unknown)}")
        if not str(raw["source"]).startswith("https://"):
            raise ValueError(f"{raw['model']}: every table needs its source URL")
        releases = tuple(
            TaskRelease(release=str(r["release"]), scores=tuple(r["scores"].get(name) for name in columns))
            for r in raw["releases"]
        )
        tables[raw["model"]] = TaskTable(raw["model"], raw["source"], raw.get("note", ""), columns, releases)
    return tables


def task_scores(slug: str, path: Path = TASK_SCORES_FILE) -> TaskTable | None:
    """The published task benchmarks of one model (by catalog slug), or None where none is on file."""
    return _tables(path).get(slug)
