"""The demo engine's settings, read from the environment with config.env's strict helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from config.env import env_bool, env_int, env_path, env_str

DEFAULT_MODEL_SLUG = "gemma-3-270m"


@dataclass(frozen=True)
class DemoSettings:
    model_path: Path | None  # a Gemma 3 GGUF file; None: the packaged Gemma 3 270M Q4_K_M
    model_slug: str  # the catalog slug the demo links to and submits under
    cache_dir: Path  # the packaged model's file is assembled here (gguf/)
    warm_start: bool  # load the model when the process starts instead of on first use
    max_concurrent: int  # generations running at once
    max_queue: int  # requests allowed to wait for a slot; beyond it: 429
    queue_timeout_s: float  # how long a queued request waits before a 503
    max_prompt_tokens: int
    max_new_tokens: int
    max_wall_s: float  # a generation stops after this many seconds, whatever max_new_tokens says
    n_threads: int
    vlm_path: Path | None  # a local vision-language model directory (Moondream 2 style); None: vision disabled
    image_cache_entries: int
    # Per client address, counted in the shared "limits" store (inference.slots.DemoGate): generation and vision
    # requests per window, each client at most one generation at a time. enabled=False: this host serves no demo.
    rate: int = 20
    rate_window_s: int = 600
    enabled: bool = True


def _default_cache_dir() -> Path:
    # Under RIGFIT_VAR_DIR (settings.VAR_DIR), as the README says; BASE_DIR/var when that is unset.
    var_dir = getattr(settings, "VAR_DIR", None) or Path(getattr(settings, "BASE_DIR", Path.cwd())) / "var"
    return Path(var_dir) / "models"


def load_settings() -> DemoSettings:
    return DemoSettings(
        model_path=env_path("RIGFIT_DEMO_MODEL_PATH", None),
        model_slug=env_str("RIGFIT_DEMO_MODEL_SLUG", DEFAULT_MODEL_SLUG),
        cache_dir=env_path("RIGFIT_DEMO_CACHE_DIR", _default_cache_dir()) or _default_cache_dir(),
        warm_start=env_bool("RIGFIT_DEMO_WARM_START", False),
        max_concurrent=env_int("RIGFIT_DEMO_MAX_CONCURRENT", 1, minimum=1),
        max_queue=env_int("RIGFIT_DEMO_MAX_QUEUE", 2, minimum=0),
        queue_timeout_s=float(env_int("RIGFIT_DEMO_QUEUE_TIMEOUT_S", 20, minimum=0)),
        max_prompt_tokens=env_int("RIGFIT_DEMO_MAX_PROMPT_TOKENS", 512, minimum=1),
        max_new_tokens=env_int("RIGFIT_DEMO_MAX_NEW_TOKENS", 256, minimum=1),
        max_wall_s=float(env_int("RIGFIT_DEMO_MAX_WALL_S", 60, minimum=1)),
        n_threads=env_int("RIGFIT_DEMO_THREADS", os.cpu_count() or 1, minimum=1),
        vlm_path=env_path("RIGFIT_DEMO_VLM_PATH", None),
        image_cache_entries=env_int("RIGFIT_DEMO_IMAGE_CACHE_ENTRIES", 32, minimum=1),
        rate=env_int("RIGFIT_DEMO_RATE", 20, minimum=1),
        rate_window_s=env_int("RIGFIT_DEMO_RATE_WINDOW_S", 600, minimum=1),
        enabled=env_bool("RIGFIT_DEMO_ENABLED", True),
    )
